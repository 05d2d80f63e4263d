package llmhttp

import (
	"math"
	"time"
)

// pdim is one rate-limit dimension the pacer keeps a bucket for.
type pdim int

const (
	pdRequests pdim = iota
	pdRequestsPerDay
	pdTokens // combined tokens: OpenAI TPM, or Anthropic's tokens-* alone
	pdInput
	pdOutput
	pdCount
)

// pdimNames are the dimensions' names in wait causes and stats.
var pdimNames = [pdCount]string{"requests", "requests_per_day", "tokens", "input_tokens", "output_tokens"}

// limitOf returns dimension d of l.
func limitOf(l *Limits, d pdim) *Limit {
	switch d {
	case pdRequests:
		return &l.Requests
	case pdRequestsPerDay:
		return &l.RequestsPerDay
	case pdTokens:
		return &l.Tokens
	case pdInput:
		return &l.InputTokens
	case pdOutput:
		return &l.OutputTokens
	}
	return &Limit{}
}

// pcost is a request's cost in each dimension.
type pcost [pdCount]float64

func (c *pcost) add(o *pcost) {
	for d := range c {
		c[d] += o[d]
	}
}

// Bucket tuning.
const (
	// upGain is the share of the difference believed when the server
	// reports more than the pacer thinks is left: a higher report may be
	// stale, and other clients on the same key read it too.
	upGain = 0.5
	// firstGain is the share of a bucket's first report believed: every
	// client of a shared key starting together reads a full bucket.
	firstGain = 0.25
	// foreignWindow is the shortest time over which other clients'
	// consumption is measured (reports closer together say little: their
	// rounding dwarfs what was consumed between them); foreignSmooth the
	// time constant of the estimate.
	foreignWindow = 5 * time.Second
	foreignSmooth = 15 * time.Second
	// foreignMaxWeight bounds the weight of one measurement in that
	// estimate, which keeps the estimates of several clients reading each
	// other's consumption from oscillating when reports are sparse.
	foreignMaxWeight = 0.3
	// foreignForget is how long the estimate holds without a measurement,
	// and then the time constant of its fading.
	foreignForget = 15 * time.Second
	// demandForget is the time constant of that fading while requests
	// wait on the bucket.
	demandForget = 2 * time.Minute
	// contended is the foreign consumption, as a share of the rate, above
	// which a bucket counts as contended by other clients.
	contended = 0.15
	// While a bucket is contended, a request waits for its cost plus a
	// margin against what other clients take between two reports: one
	// average request of this client (contentionRequests), or
	// contentionMargin of the capacity, whichever is more. (Four clients
	// on one key, headers only, 30 runs each: 0.05 let 2.5 % of OpenAI's
	// reserved-rule attempts draw a 429, 0.15 lets 0.9 %, for 0.02 of
	// goodput; 0.2 gains nothing more. notes/pacer-results.md.)
	contentionMargin   = 0.15
	contentionRequests = 1
	// lowWater is how low a contended bucket's report must be to cut this
	// client's share.
	lowWater = 0.25
	// shareCut is the multiplicative decrease of the share; shareRise how
	// many windows the additive increase takes to add the whole rate (two:
	// a client waiting with nothing in flight hears no report, and probes
	// the others' share by this rise alone — a faster one, a 429 more
	// often); cutSpacing the least time between two cuts (about one round
	// trip).
	shareCut   = 0.7
	shareRise  = 2
	cutSpacing = 2 * time.Second
	// staleShare is the error assumed of the estimate of other clients'
	// consumption, as a share of it, for the margin of a wary bucket.
	staleShare = 0.25
	// waryMeasurements is how many measurements of other clients'
	// consumption a bucket keeps the contention margin for, and
	// waryAfterCut how long after a 429 it did not expect (see wary).
	waryMeasurements = 3
	// waryReports is how many reports a bucket takes as the start, when
	// every client of a shared key may have just read a full bucket.
	waryReports  = 3
	waryAfterCut = time.Minute
	// minShare is the least share of the refill rate the pacer keeps for
	// itself, however much other clients seem to consume.
	minShare = 1.0 / 16
	// slackEpsilon absorbs float rounding when comparing a level with a
	// cost, so a waiter woken at its computed time does not wait again for
	// a billionth of a token.
	slackEpsilon = 1e-6
)

// pbucket is one continuously refilling token bucket, like the provider's
// own (Anthropic documents a token bucket "continuously replenished up to
// your maximum limit"), kept in step with the server's reports.
//
// Why not golang.org/x/time/rate.Limiter here: its level cannot be set
// (golang/go#68677 asks for exactly this, to follow
// anthropic-ratelimit-*-remaining), refunds rely on an undocumented negative
// n (golang/go#54082), a cost above the burst is an error rather than
// clamped, SetLimitAt does not recompute reservations already taken, and
// reservations are taken on credit in call order, which a priority queue
// cannot reorder. The pacer's slow-down cap, which needs none of that, is a
// rate.Limiter (see slowDown).
//
// The level advances lazily from the time of each call; it may go below
// zero (what the server will charge for requests in flight). A bucket whose
// capacity is 0 is unknown and never limits.
type pbucket struct {
	capacity float64       // tokens; 0: unknown
	window   time.Duration // over which capacity refills (see win)
	rate     float64       // refill, tokens per second: capacity/window
	level    float64       // at last
	last     instant

	// win is what the reports showed of the window, around its prior.
	win windowTrack

	// shared reports that the bucket mirrors one in a PacerStore, which
	// accounts for other processes exactly: it refills at the full rate,
	// with none of the estimates below.
	shared bool

	// synced reports that the level came from a server report at least
	// once (the last at syncedAt); until then it is an up-front limit's
	// assumption.
	synced   bool
	syncedAt instant
	reports  int // reports synced from

	// fsig is the estimated consumption of other clients of the same
	// bucket, in tokens per second, as of anchorAt (the start of the
	// measurement under way); the bucket refills for this client at
	// rate − fsig, when positive. It is measured as what the reports lost
	// beyond what this client's own charges explain: shadow is the level
	// the server's bucket would have without other clients — the last
	// report, plus the full refill (capped at the capacity, as the server
	// caps it), less this client's charges since — and lost the sum of
	// shadow − report over the reports of the measurement.
	fsig     float64
	interval time.Duration // between measurements
	measured int           // measurements made
	demandAt instant       // the last request that waited for the bucket
	anchorAt instant
	lost     float64
	shadow   float64
	shadowAt instant

	// share caps the refill while other clients contend for the bucket:
	// an AIMD share of the rate, in tokens per second, as of shareAt; 0
	// when not engaged. It is cut multiplicatively (shareCut) when a report
	// shows a contended bucket below lowWater, or after a 429 the pacer did
	// not expect, and rises additively by the whole rate every shareRise
	// windows;
	// once back at the rate it disengages. The same cut seen by every
	// client, and the same rise, make the shares converge to equal ones
	// (the TCP congestion-avoidance argument), where the foreign estimate
	// alone would let whoever started first keep the bucket.
	share   float64
	shareAt instant
	cutAt   instant

	// avgTake is the average charge of this client's requests.
	avgTake float64
	// margin is how much more than a cost the bucket must hold before it
	// is admitted: the uncertainty of a rounded report.
	margin float64

	// reported is the last report, for Stats.
	reported Limit
}

// known reports whether the bucket limits anything.
func (b *pbucket) known() bool { return b.capacity > 0 }

// refill returns the rate at which the bucket refills for this client at
// now: the limit's rate less other clients' consumption, never below
// minShare of it, and at most the AIMD share while that is engaged.
func (b *pbucket) refill(now instant) float64 {
	if b.shared {
		return b.rate
	}
	r := max(b.rate-max(b.fsigAt(now), 0), b.rate*minShare)
	if b.share > 0 {
		sh := b.share + b.rate*max(seconds(now.since(b.shareAt)), 0)/(shareRise*seconds(b.window))
		if sh >= b.rate {
			b.share = 0
		} else {
			r = min(r, sh)
		}
	}
	return r
}

// fsigAt returns the estimate of other clients' consumption at t. Without
// a measurement for foreignForget (beyond the measuring interval) it fades,
// with that time constant: a client that sends nothing hears no reports,
// and must not stay shut out after the others have stopped. It fades eight
// times slower while requests wait on the bucket: a client waiting with
// nothing in flight hears no reports either, and fading fast would make it
// send on an ever rosier guess of what the others left — a 429 — where
// holding lets it send at about the rate the others were seen to leave,
// and its answer's report tells it more.
func (b *pbucket) fsigAt(t instant) float64 {
	f := b.fsig
	if f <= 0 {
		return f
	}
	el := t.since(b.anchorAt) - foreignForget - b.interval
	if el <= 0 {
		return f
	}
	tau := foreignForget
	if t.since(b.demandAt) < foreignForget {
		tau = demandForget
	}
	return f * math.Exp(-seconds(el)/seconds(tau))
}

// isContended reports whether other clients were seen to drain the bucket.
func (b *pbucket) isContended(now instant) bool {
	return !b.shared && b.fsigAt(now) > contended*b.rate
}

// wary reports whether requests should keep a margin against other
// clients: while the bucket is contended; before other clients'
// consumption could be measured, as soon as the reports show some (clients
// of a shared key that start together race for the first buckets before
// any of them can tell); and for a while after a 429 the pacer did not
// expect.
func (b *pbucket) wary(now instant) bool {
	if b.shared {
		return false
	}
	early := b.measured < waryMeasurements && b.lost > 2*max(b.margin, 1)
	return b.isContended(now) || early || (b.cutAt != 0 && now.since(b.cutAt) < waryAfterCut)
}

// blind reports whether the bucket's reports cannot have shown other
// clients yet: what they take shows as the difference between two reports,
// and there has been one at most.
func (b *pbucket) blind() bool { return b.reports < 2 }

// rising reports whether the bucket's refill is below its rate and rising
// (the AIMD share is engaged).
func (b *pbucket) rising(now instant) bool {
	b.refill(now)
	return b.share > 0
}

// cut lowers the AIMD share to shareCut of the current refill, at most once
// per cutSpacing.
func (b *pbucket) cut(now instant) {
	if !b.known() || b.shared || now.since(b.cutAt) < cutSpacing {
		return
	}
	b.advance(now)
	b.share = max(b.refill(now)*shareCut, b.rate*minShare)
	b.shareAt, b.cutAt = now, now
}

// advance refills the bucket up to now, at the refill rate of the start of
// the interval (the share only rises, so this never overfills).
func (b *pbucket) advance(now instant) {
	if !b.known() {
		return
	}
	if dt := now.since(b.last); dt > 0 {
		b.level = min(b.capacity, b.level+seconds(dt)*b.refill(b.last))
		b.last = now
	}
}

// wait returns how long from now until the bucket holds n tokens; n is
// clamped to the capacity, so the wait is always finite.
func (b *pbucket) wait(now instant, n float64) time.Duration {
	if !b.known() || n <= 0 {
		return 0
	}
	b.demandAt = now
	b.advance(now)
	n += b.margin
	if b.wary(now) {
		// Other clients drain this bucket between reports: keep a margin
		// for what they may take before the next one, and for the error of
		// the estimate of their consumption, which grows with the time
		// since the last report (at most one more request's worth).
		n += max(contentionMargin*b.capacity, contentionRequests*b.avgTake)
		if b.synced {
			stale := staleShare * max(b.fsigAt(now), 0) * max(seconds(now.since(b.syncedAt)), 0)
			n += min(stale, b.avgTake)
		}
	}
	return b.waitRaw(min(n, b.capacity))
}

// waitRaw is wait for an unclamped n (the sum of several costs), the bucket
// advanced already.
func (b *pbucket) waitRaw(n float64) time.Duration {
	deficit := n - b.level
	if deficit <= slackEpsilon*max(1, n) {
		return 0
	}
	return secondsToDuration(deficit / b.refill(b.last))
}

// take debits n tokens (clamped to the capacity).
func (b *pbucket) take(now instant, n float64) {
	if !b.known() || n <= 0 {
		return
	}
	b.advance(now)
	n = min(n, b.capacity)
	b.level -= n
	b.advanceShadow(now)
	b.shadow -= n
	if b.avgTake == 0 {
		b.avgTake = n
	} else {
		b.avgTake += 0.1 * (n - b.avgTake)
	}
}

// give credits n tokens back, up to the capacity.
func (b *pbucket) give(now instant, n float64) {
	if !b.known() || n <= 0 {
		return
	}
	b.advance(now)
	b.level = min(b.capacity, b.level+n)
	b.advanceShadow(now)
	b.shadow = min(b.capacity, b.shadow+n)
}

// advanceShadow refills the shadow level (see fsig) up to now.
func (b *pbucket) advanceShadow(now instant) {
	if dt := now.since(b.shadowAt); dt > 0 {
		b.shadow = min(b.capacity, b.shadow+seconds(dt)*b.rate)
		b.shadowAt = now
	}
}

// shadowWait returns how long from now until the server's bucket, as the
// shadow level predicts it, holds n tokens (clamped to the capacity).
func (b *pbucket) shadowWait(now instant, n float64) time.Duration {
	if !b.known() || n <= 0 {
		return 0
	}
	b.advanceShadow(now)
	deficit := min(n, b.capacity) - b.shadow
	if deficit <= slackEpsilon*max(1, n) {
		return 0
	}
	return secondsToDuration(deficit / b.rate)
}

// configure sets the capacity and refill from a limit of capacity limit
// over window (0: a minute). A bucket seen for the first time starts full
// when full is set (limits given up front), else empty: the first report
// then fills it gradually, like any higher report, since other clients of
// the key read that report too.
func (b *pbucket) configure(now instant, limit int64, window time.Duration, full bool) {
	if limit <= 0 {
		return
	}
	c := float64(limit)
	if c == b.capacity && (window <= 0 || window == b.win.prior) {
		return // the same limit again: the common case
	}
	if window > 0 {
		b.win.prior = window
	}
	b.advance(now)
	if !b.known() {
		b.level = 0
		if full {
			b.level = c
		}
		b.last = now
		b.shadow, b.shadowAt = b.level, now
	}
	b.capacity = c
	b.level = min(b.level, c)
	b.applyWindow()
}

// applyWindow sets the window and the refill rate from what was learned;
// the bucket must have been advanced to now.
func (b *pbucket) applyWindow() {
	b.window = b.win.window()
	b.rate = b.capacity / b.window.Seconds()
}

// fastestRate returns the fastest refill the reports allow: the rate of
// the shortest window they leave possible, at most half as fast again as
// the rate in use.
func (b *pbucket) fastestRate() float64 {
	w := b.window.Seconds()
	if b.win.r.ok() && !b.win.fixed {
		w = max(min(w, b.win.r.lo), w/1.5)
	}
	return b.capacity / w
}

// learnWindow learns from report rep, whose reset is resetIn from now and
// whose evidence about the window (with that of the other buckets of its
// report that share its prior) is ev, and adopts the window it implies
// from now on.
func (b *pbucket) learnWindow(now instant, rep *Limit, resetIn time.Duration, ev winRange, round float64, grain, lag time.Duration) {
	if !b.known() {
		return
	}
	if !b.win.observe(rep, now+instant(resetIn), ev, round, grain, lag) {
		return
	}
	if w := b.win.window(); w != b.window {
		b.advance(now)
		b.advanceShadow(now)
		b.applyWindow()
	}
}

// sync resynchronises the bucket from a server report rep at now, whose
// reset is resetIn from now, minus uncounted: the cost of this client's requests in flight that the report
// cannot include yet. round is the granularity the provider may round
// remaining to (1000 for Anthropic's token counts).
//
// The reported level is remaining, cross-checked with reset ("fully
// replenished at"), which implies the level capacity − rate·(reset − now):
// the lower of the two is believed, within the rounding of remaining, so an
// exhausted bucket in debt (remaining 0, reset far off) is seen as the debt
// it is. A report lower than the pacer's level wins at once; a higher one
// is believed in part — by half (upGain), by a quarter the first time
// (firstGain), and less for a client with a small share of a contended
// bucket — because it may be stale and other clients of the key read it
// too. What the reports show beyond this client's own charges is other
// clients' consumption (fsig), which lowers this client's refill; when it
// is large the bucket is contended: requests wait for a margin on top of
// their cost, and the AIMD share (share) is cut when the bucket runs low.
func (b *pbucket) sync(now instant, rep *Limit, resetIn time.Duration, uncounted, round float64) {
	b.reported = *rep
	if !b.known() || !rep.HasRemaining {
		return
	}
	b.margin = 0
	if round > 1 {
		// A rounded remaining is known, through the reset, to a second of
		// refill at best: wait for that much more than the cost.
		b.margin = min(round/2, b.rate)
	}
	b.advance(now)
	target := float64(rep.Remaining)
	if !rep.Reset.IsZero() {
		implied := b.capacity - b.rate*max(seconds(resetIn), 0)
		if rep.Remaining <= 0 {
			target = min(0, implied)
		} else {
			// Remaining may be rounded (Anthropic: to the thousand) and
			// reset to the second; believe the lower, but not below what
			// the rounding of remaining allows: a reset rounded up to the
			// second says a second of refill less than the truth, which
			// for a short window or a large limit is far more than the
			// rounding of remaining.
			target = max(min(target, implied), target-max(round, 1))
		}
	}
	target -= uncounted

	b.measure(now, target, round)
	if b.isContended(now) && target < lowWater*b.capacity {
		b.cut(now)
	}
	switch {
	case target < b.level:
		b.level = target
	default:
		// Believe a higher report by half, and by less for a client whose
		// share of a contended bucket is small: each client sharing the
		// key reads the same report.
		gain := upGain
		if !b.synced {
			gain = firstGain
		}
		b.level += gain * b.refill(now) / b.rate * (target - b.level)
	}
	b.synced, b.syncedAt = true, now
	b.reports++
}

// measure updates the estimate of other clients' consumption from a report
// of target at now: what the reports lost, over at least foreignWindow,
// beyond what this client's own charges explain. The estimate is signed
// (noise, such as Anthropic's rounding to the thousand, averages out
// instead of piling up), and only its positive part slows the refill.
func (b *pbucket) measure(now instant, target, round float64) {
	b.advanceShadow(now)
	if !b.synced {
		b.shadow, b.anchorAt, b.lost = target, now, 0
		return
	}
	b.lost += b.shadow - target
	b.shadow = target
	// Measure over at least foreignWindow, and long enough that the
	// rounding of remaining is a tenth of the refill.
	b.interval = max(foreignWindow, secondsToDuration(10*round/b.rate))
	dt := now.since(b.anchorAt)
	if dt < b.interval {
		return
	}
	w := min(1-math.Exp(-seconds(dt)/seconds(foreignSmooth)), foreignMaxWeight)
	f := b.fsigAt(now)
	f += w * (b.lost/seconds(dt) - f)
	b.fsig = min(max(f, -b.rate), b.rate)
	b.anchorAt, b.lost = now, 0
	b.measured++
}

// instant is a time on a partition's clock (see localStore.at), in
// nanoseconds: a bucket keeps instants where it would keep time.Time
// values. Subtracting two is a subtraction where Time.Sub is a call, and
// storing one writes no pointer (a time.Time holds its Location), so no
// write barrier runs while the garbage collector marks. The zero instant
// means "never" and lies long before every other, as the zero time.Time
// does: a clock's epoch is instantBase.
type instant int64

// instantBase is the instant of a clock's epoch: about 146 years after the
// zero instant, and as long before the largest.
const instantBase = 1 << 62

// instantOf returns t on the clock whose epoch is epoch, clamped to the
// clock's range (146 years either way), so that the difference of two
// instants never overflows.
func instantOf(epoch, t time.Time) instant {
	d := t.Sub(epoch)
	return instant(min(max(d, 1-instantBase), instantBase-1)) + instantBase
}

// since returns how long after u the instant t is.
func (t instant) since(u instant) time.Duration { return time.Duration(t - u) }

// seconds is d.Seconds() for the pacer's per-request arithmetic, in one
// division where Duration.Seconds splits d in two first. It is the exact
// quotient rounded once, so whole and round numbers of seconds come out
// exact, as with Seconds.
func seconds(d time.Duration) float64 { return float64(d) / 1e9 }

// secondsToDuration converts seconds to a Duration, rounding up and
// saturating.
func secondsToDuration(s float64) time.Duration {
	if s <= 0 || math.IsNaN(s) {
		return 0
	}
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(math.Ceil(s * float64(time.Second)))
}
