package llmhttp

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wtServer is a token bucket server reporting like Anthropic (remaining
// rounded to round, reset rounded up to the second) or exactly.
type wtServer struct {
	limit  float64
	window time.Duration
	level  float64
	at     time.Time
	round  float64
	anth   bool
}

func (s *wtServer) advance(now time.Time) {
	s.level = min(s.limit, s.level+now.Sub(s.at).Seconds()*s.limit/s.window.Seconds())
	s.at = now
}

func (s *wtServer) report(now time.Time) Limit {
	s.advance(now)
	rem := max(s.level, 0)
	if s.round > 1 {
		rem = math.Floor(rem/s.round+0.5) * s.round
	} else {
		rem = math.Floor(rem)
	}
	until := time.Duration((s.limit - s.level) / s.limit * float64(s.window))
	reset := now.Add(until)
	if s.anth {
		if r := reset.Truncate(time.Second); r.Before(reset) {
			reset = r.Add(time.Second)
		}
	}
	return Limit{Limit: int64(s.limit), Remaining: int64(rem), HasRemaining: true, Reset: reset, Window: time.Minute}
}

// The window is learned from the resets of Anthropic-style reports
// (remaining rounded to the thousand, resets to the second) of a six-second
// server, close enough to pace at its rate; a minute server keeps the
// minute.
func TestStoreLearnsWindow(t *testing.T) {
	for _, tc := range []struct {
		window time.Duration
		tol    float64
	}{{6 * time.Second, 0.1}, {time.Minute, 0}, {2 * time.Minute, 0.05}} {
		rng := rand.New(rand.NewPCG(1, 2))
		in := &wtServer{limit: 30000, window: tc.window, level: 30000, at: pcT0, round: 1000, anth: true}
		req := &wtServer{limit: 50, window: tc.window, level: 50, at: pcT0, round: 1, anth: true}
		st := &localStore{}
		now := pcT0
		for range 200 {
			now = now.Add(time.Duration(rng.Float64() * float64(tc.window) / 20))
			in.advance(now)
			req.advance(now)
			if in.level > 3000 {
				in.level -= 500 + rng.Float64()*2500
				req.level--
			}
			rr, ri := req.report(now), in.report(now)
			r := report{skew: absoluteSkew}
			r.reps[pdRequests], r.reps[pdInput] = &rr, &ri
			r.round[pdInput], r.round[pdRequests] = 1000, 1
			r.grain[pdInput], r.grain[pdRequests] = time.Second, time.Second
			st.sync(now, &r)
		}
		got := st.bucket(pdInput).window
		assert.InDelta(t, tc.window.Seconds(), got.Seconds(), tc.tol*tc.window.Seconds(), "window %v", tc.window)
		assert.Equal(t, got, st.bucket(pdRequests).window, "one window for the report's buckets")
		assert.InDelta(t, 30000/got.Seconds(), st.bucket(pdInput).rate, 1e-9)
	}
}

// Each report bounds the window; two buckets of one report bound it free
// of clock skew; reports that do not say enough say nothing.
func TestWindowEvidence(t *testing.T) {
	rep := func(rem int64, reset time.Duration) *Limit {
		return &Limit{Limit: 30000, Remaining: rem, HasRemaining: true, Reset: pcT0.Add(reset)}
	}
	// Half used, full in 3 s: a 6 s window, within the roundings.
	ev := windowEvidence(pcT0, rep(15000, 3*time.Second), 1000, time.Second, 0)
	require.True(t, ev.ok())
	assert.InDelta(t, 2*30000/15500.0, ev.lo, 1e-9)
	assert.InDelta(t, 4*30000/14500.0, ev.hi, 1e-9)
	assert.False(t, windowEvidence(pcT0, rep(29000, time.Second), 1000, time.Second, 0).ok(), "used within the rounding")
	assert.False(t, windowEvidence(pcT0, rep(0, 9*time.Second), 1000, time.Second, 0).ok(), "an empty bucket may be in debt")
	assert.False(t, windowEvidence(pcT0, &Limit{Limit: 30000, Remaining: 1000, HasRemaining: true}, 1000, time.Second, 0).ok(), "no reset")

	// Requests 10 % used, input 90 %: resets 0.6 s and 5.4 s apart by 4.8 s
	// (6 s × 0.8), each to the second, the shift of both by a skew
	// cancelled.
	skew := 1500 * time.Millisecond
	pe := pairEvidence(
		&Limit{Limit: 50, Remaining: 45, HasRemaining: true, Reset: pcT0.Add(skew + 1*time.Second)},
		&Limit{Limit: 30000, Remaining: 3000, HasRemaining: true, Reset: pcT0.Add(skew + 6*time.Second)},
		1, 1000, time.Second)
	require.True(t, pe.ok())
	assert.True(t, pe.lo <= 6 && 6 <= pe.hi, "%v", pe)
	assert.False(t, pairEvidence(rep(15000, 3*time.Second), rep(15500, 3*time.Second), 1000, 1000, time.Second).ok(), "shares too close")

	assert.Equal(t, time.Second, resetGrain(ProviderAnthropic, 1500*time.Millisecond))
	assert.Equal(t, time.Second, resetGrain(ProviderOpenAI, 17*time.Second))
	assert.Equal(t, time.Millisecond, resetGrain(ProviderOpenAI, 12*time.Millisecond))
}

// The window interval narrows with consistent reports, starts over when
// the reports contradict it, and a fixed-window server (reset = the
// window's end, nearer as the bucket drains) is recognised and keeps the
// prior.
func TestWindowTrack(t *testing.T) {
	w := windowTrack{prior: time.Minute}
	assert.Equal(t, time.Minute, w.window(), "no evidence: the prior")
	rep := &Limit{Limit: 100, Remaining: 50, HasRemaining: true, Reset: pcT0.Add(3 * time.Second)}
	w.observe(rep, pcAt(rep.Reset), winRange{lo: 4, hi: 8}, 1, time.Millisecond, 0)
	assert.Equal(t, 8*time.Second, w.window(), "a wide interval: its bound nearest the prior")
	w.observe(rep, pcAt(rep.Reset), winRange{lo: 5.5, hi: 6.5}, 1, time.Millisecond, 0)
	assert.InDelta(t, math.Sqrt(5.5*6.5), w.window().Seconds(), 1e-6, "a narrow one: its middle")
	w.observe(rep, pcAt(rep.Reset), winRange{lo: 50, hi: 70}, 1, time.Millisecond, 0)
	assert.Equal(t, time.Minute, w.window(), "disjoint: start over, and the prior fits")

	f := windowTrack{prior: time.Minute}
	r1 := &Limit{Limit: 100, Remaining: 80, HasRemaining: true, Reset: pcT0.Add(50 * time.Second)}
	f.observe(r1, pcAt(r1.Reset), winRange{lo: 200, hi: 300}, 1, time.Second, 0)
	assert.Equal(t, 200*time.Second, f.window())
	r2 := &Limit{Limit: 100, Remaining: 40, HasRemaining: true, Reset: pcT0.Add(40 * time.Second)}
	f.observe(r2, pcAt(r2.Reset), winRange{lo: 60, hi: 70}, 1, time.Second, 0)
	assert.True(t, f.fixed, "drained while the reset came nearer: no token bucket")
	assert.Equal(t, time.Minute, f.window())
}
