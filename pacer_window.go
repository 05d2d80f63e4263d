package llmhttp

import (
	"math"
	"time"
)

// Window inference tuning.
const (
	// minUsedRoundings is how many rounding units (±round/2 of remaining, or
	// ±1 for exact counts) a report's used part (limit − remaining) must
	// hold before its reset says anything about the window: below it the
	// ratio reset·limit/used is dominated by the rounding.
	minUsedRoundings = 4
	// absoluteSkew is the clock difference allowed between this host and a
	// server that sends absolute resets (Anthropic's RFC 3339 instants).
	// ParseLimits measures them from the response's Date beyond 2 s of
	// skew; NTP-synchronised hosts are within tens of milliseconds.
	absoluteSkew = 250 * time.Millisecond
	// minPairShare is the least difference of the used shares of two
	// buckets for their resets to say something about their window.
	minPairShare = 0.1
	// narrowRange is the largest ratio of the bounds of a window interval
	// whose middle is believed: a wider one gives its bound nearest the
	// prior.
	narrowRange = 1.3
	// minWindow and maxWindow bound an inferred window.
	minWindow = 100 * time.Millisecond
	maxWindow = 48 * time.Hour
)

// winRange is an interval of window lengths, in seconds, that a bucket's
// reports allow. The zero winRange is "no evidence".
type winRange struct{ lo, hi float64 }

// ok reports whether r holds evidence.
func (r winRange) ok() bool { return r.hi > 0 }

// and returns the intersection of r and o, and false when they are
// disjoint. A side without evidence leaves the other as it is.
func (r winRange) and(o winRange) (winRange, bool) {
	switch {
	case !r.ok():
		return o, true
	case !o.ok():
		return r, true
	}
	x := winRange{lo: max(r.lo, o.lo), hi: min(r.hi, o.hi)}
	if x.lo > x.hi {
		return winRange{}, false
	}
	return x, true
}

// with returns the intersection of r and o, or r when they are disjoint
// (o contradicts what r holds, and is left out).
func (r winRange) with(o winRange) winRange {
	if x, ok := r.and(o); ok {
		return x
	}
	return r
}

// windowEvidence returns the windows a report allows. A token bucket of
// capacity limit refilling at limit/window that holds remaining is full
// again (limit − remaining)·window/limit later — which is what reset says
// (llm-wire §5.4: "(limit − remaining)/refill ≈ reset − now"). So
//
//	window = (reset − now) · limit / (limit − remaining)
//
// within the report's errors: remaining is rounded to round (±round/2;
// exact counts ±1), reset to grain (Anthropic: whole seconds) and was
// stamped up to lag before now. A report whose used part is within a few
// roundings of nothing, or whose remaining may hide a debt (0), or that
// lacks any of the three fields, says nothing.
func windowEvidence(now time.Time, rep *Limit, round float64, grain, lag time.Duration) winRange {
	if rep.Limit <= 0 || !rep.HasRemaining || rep.Reset.IsZero() || rep.Remaining <= 0 {
		return winRange{}
	}
	l := float64(rep.Limit)
	r := float64(min(rep.Remaining, rep.Limit))
	if r < round {
		return winRange{} // rounded from below half a unit: perhaps a debt
	}
	e := max(round/2, 1)
	usedLo, usedHi := l-r-e, l-r+e
	if usedLo < minUsedRoundings*e {
		return winRange{}
	}
	d := seconds(rep.Reset.Sub(now))
	dLo := max(d-seconds(grain), 0)
	dHi := d + seconds(grain) + seconds(lag)
	if dHi <= 0 {
		return winRange{}
	}
	return winRange{lo: dLo * l / usedHi, hi: dHi * l / usedLo}
}

// usedShare returns the bounds of the share of rep's capacity used, given
// the rounding of its remaining; ok is false when rep cannot say (a
// remaining that may hide a debt).
func usedShare(rep *Limit, round float64) (lo, hi float64, ok bool) {
	if rep.Limit <= 0 || !rep.HasRemaining || rep.Reset.IsZero() || rep.Remaining <= 0 {
		return 0, 0, false
	}
	l := float64(rep.Limit)
	r := float64(min(rep.Remaining, rep.Limit))
	if r < round {
		return 0, 0, false
	}
	e := max(round/2, 1)
	return max(l-r-e, 0) / l, min(l-r+e, l) / l, true
}

// pairEvidence returns the windows two buckets of one report, which share
// their window, allow. Each is full again its used share of the window
// later, so the difference of their resets is the window times the
// difference of their used shares. Unlike a single report's evidence,
// this is immune to the clock difference between client and server and to
// the time the report took to arrive, which shift both resets alike; what
// is left is the rounding of each reset (grain: the coarser of the two)
// and of each remaining.
func pairEvidence(a, b *Limit, roundA, roundB float64, grain time.Duration) winRange {
	aLo, aHi, okA := usedShare(a, roundA)
	bLo, bHi, okB := usedShare(b, roundB)
	if !okA || !okB {
		return winRange{}
	}
	if aLo+aHi < bLo+bHi {
		a, b = b, a
		aLo, aHi, bLo, bHi = bLo, bHi, aLo, aHi
	}
	dxLo, dxHi := aLo-bHi, aHi-bLo
	if dxLo < minPairShare {
		return winRange{}
	}
	dd := seconds(a.Reset.Sub(b.Reset))
	g := seconds(grain)
	if dd+g <= 0 {
		return winRange{}
	}
	return winRange{lo: max(dd-g, 0) / dxHi, hi: (dd + g) / dxLo}
}

// resetGrain returns the resolution of a reset d from now reported by
// provider p: a second for Anthropic's RFC 3339 instants; for relative
// resets, the coarsest unit d is a whole number of (Azure sends seconds,
// OpenAI milliseconds).
func resetGrain(p Provider, d time.Duration) time.Duration {
	switch {
	case p == ProviderAnthropic:
		return time.Second
	case d%time.Second == 0:
		return time.Second
	case d%time.Millisecond == 0:
		return time.Millisecond
	}
	return time.Microsecond
}

// windowTrack is what a bucket learned of its window from the reports.
//
// Each report allows an interval of windows (windowEvidence); the
// intervals of successive reports are intersected, so the rounding of
// remaining and of reset, which differs from report to report, averages
// out and the interval closes in on the server's window. An interval
// disjoint from what was learned (the limits changed) starts over. The
// window used is the prior — the headers' own (a minute for every
// per-minute family) or the one given up front — clamped into the
// interval: the evidence moves it only as far as it must, to the bound
// nearest the prior (which errs on the slow side when the server's window
// is shorter), or to the interval's middle once that is narrow.
//
// A server that is not a token bucket (a fixed window, whose reset is the
// window's end) betrays itself in consecutive reports: its remaining falls
// while its reset draws nearer, where a bucket's reset moves away as it is
// drained. A bucket seen doing that stops inferring and keeps its prior.
type windowTrack struct {
	prior time.Duration
	r     winRange
	// fixed reports that the server was seen not to be a token bucket.
	fixed bool
	// last is the previous report's remaining and reset, for the
	// consistency check.
	lastRem   float64
	lastReset instant
	lastErr   float64 // the reset's uncertainty, seconds
}

// observe learns from report rep, whose reset is the instant reset: its
// evidence ev, and its consistency with the previous report. It reports
// whether what was learned changed.
func (w *windowTrack) observe(rep *Limit, reset instant, ev winRange, round float64, grain, lag time.Duration) bool {
	if w.fixed || !rep.HasRemaining || rep.Reset.IsZero() {
		return false
	}
	rem := float64(rep.Remaining)
	e := max(round/2, 1)
	gs := seconds(grain + lag)
	if w.lastReset != 0 && rem > 0 && w.lastRem > 0 {
		// Between two reports a bucket's remaining rises by the refill less
		// what was taken, and its reset instant moves later by what was
		// taken over the refill rate: remaining falling by more than its
		// rounding while the reset instant comes nearer (beyond the
		// resolution of both) is no token bucket.
		dRem := rem - w.lastRem
		dReset := seconds(reset.since(w.lastReset))
		if dRem < -2*e && dReset < -(gs+w.lastErr) {
			w.fixed, w.r = true, winRange{}
			return true
		}
	}
	w.lastRem, w.lastReset, w.lastErr = rem, reset, gs
	if !ev.ok() {
		return false
	}
	old := w.r
	if x, ok := w.r.and(ev); ok {
		w.r = x
	} else {
		w.r = ev
	}
	return w.r != old
}

// window returns the window to use: the prior when the reports allow it;
// otherwise the (geometric) middle of what they allow once that is narrow
// (within narrowRange), and until then its bound nearest the prior.
func (w *windowTrack) window() time.Duration {
	p := w.prior
	if p <= 0 {
		p = time.Minute
	}
	if w.fixed || !w.r.ok() {
		return p
	}
	s := p.Seconds()
	switch {
	case s >= w.r.lo && s <= w.r.hi:
	case w.r.lo > 0 && w.r.hi <= narrowRange*w.r.lo:
		s = math.Sqrt(w.r.lo * w.r.hi)
	default:
		s = min(max(s, w.r.lo), w.r.hi)
	}
	s = min(max(s, minWindow.Seconds()), maxWindow.Seconds())
	if math.IsNaN(s) {
		return p
	}
	return time.Duration(s * float64(time.Second))
}
