package llmhttp

import (
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var pcT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pcAt returns t as an instant of a clock whose epoch is pcT0.
func pcAt(t time.Time) instant { return instantOf(pcT0, t) }

// TestInstantOf checks the buckets' clock: exact differences, the epoch at
// instantBase, times far away clamped so that no difference overflows, and
// the zero instant ("never") before every time.
func TestInstantOf(t *testing.T) {
	assert.Equal(t, instant(instantBase), pcAt(pcT0))
	a, b := pcAt(pcT0.Add(-90*time.Second)), pcAt(pcT0.Add(1500*time.Millisecond))
	assert.Equal(t, 91500*time.Millisecond, b.since(a))
	assert.Equal(t, -91500*time.Millisecond, a.since(b))

	lo, hi := pcAt(time.Time{}), pcAt(pcT0.Add(math.MaxInt64))
	assert.Greater(t, lo, instant(0), "the zero time is a time, after never")
	assert.Greater(t, hi.since(lo), time.Duration(0), "the widest difference does not overflow")
	assert.Less(t, lo, a)
	assert.Greater(t, hi, b)
	assert.Greater(t, a.since(0), 100*365*24*time.Hour, "never is long ago")
}

// syncAt resynchronises b from rep at t, as localStore.sync does.
func syncAt(b *pbucket, t time.Time, rep *Limit, uncounted, round float64) {
	var resetIn time.Duration
	if !rep.Reset.IsZero() {
		resetIn = rep.Reset.Sub(t)
	}
	b.sync(pcAt(t), rep, resetIn, uncounted, round)
}

// newTestBucket returns a bucket of capacity per minute, synced once to
// level (exactly).
func newTestBucket(capacity, level int64) *pbucket {
	b := &pbucket{}
	b.configure(pcAt(pcT0), capacity, time.Minute, true)
	b.level = float64(level)
	return b
}

// A rounded remaining is checked against reset: the lower level implied by
// the reset wins, within the rounding.
func TestBucketSyncCrossChecksReset(t *testing.T) {
	b := newTestBucket(8000, 8000)
	rate := 8000.0 / 60
	// The truth is 2600: Anthropic says 3000 (rounded) and full in 40.5 s,
	// rounded up to 41 s.
	syncAt(b, pcT0, &Limit{Limit: 8000, Remaining: 3000, HasRemaining: true, Reset: pcT0.Add(41 * time.Second), Window: time.Minute}, 0, 1000)
	assert.InDelta(t, 8000-41*rate, b.level, 1e-6)
	assert.InDelta(t, 2600, b.level, rate, "within a second of refill of the truth")

	// A reset far beyond what remaining allows (a fixed window's end) pulls
	// the level down by the rounding at most.
	b = newTestBucket(8000, 8000)
	syncAt(b, pcT0, &Limit{Limit: 8000, Remaining: 5000, HasRemaining: true, Reset: pcT0.Add(59 * time.Second)}, 0, 1000)
	assert.InDelta(t, 4000, b.level, 1e-6)
}

// An exhausted bucket in debt (output charged after the fact) is seen as
// the debt it is, and its reset beyond the window is not taken for a
// longer window.
func TestBucketSyncDebt(t *testing.T) {
	b := newTestBucket(8000, 100)
	b.synced = true
	syncAt(b, pcT0, &Limit{Limit: 8000, Remaining: 0, HasRemaining: true, Reset: pcT0.Add(90 * time.Second), Window: 24 * time.Hour}, 0, 1000)
	assert.Equal(t, time.Minute, b.window, "the window stays a minute")
	assert.InDelta(t, 8000-90*8000.0/60, b.level, 1e-6)
	assert.InDelta(t, float64(90*time.Second), float64(b.wait(pcAt(pcT0), 8000)), float64(time.Microsecond), "until the debt is paid and the bucket full")
}

// A cost above the capacity waits for a full bucket, never longer.
func TestBucketClampsCost(t *testing.T) {
	b := newTestBucket(1000, 0)
	assert.Equal(t, time.Minute, b.wait(pcAt(pcT0), 5000))
	b.take(pcAt(pcT0.Add(time.Minute)), 5000)
	assert.InDelta(t, 0, b.level, 1e-9, "a clamped cost takes the whole bucket, not more")
}

// Another client consuming half the refill is measured from the reports,
// and the bucket refills for this client at the other half.
func TestBucketMeasuresOtherClients(t *testing.T) {
	b := newTestBucket(60000, 0) // 1000 a second
	now := pcT0
	truth := 30000.0 // half full: no AIMD cut, which needs a low bucket
	syncAt(b, now, &Limit{Limit: 60000, Remaining: int64(truth), HasRemaining: true}, 0, 1)
	for range 40 {
		// Each second: 1000 refill, this client takes 500, another 500.
		for range 5 {
			now = now.Add(time.Second)
			b.take(pcAt(now), 500)
			truth += 1000 - 500 - 500
		}
		syncAt(b, now, &Limit{Limit: 60000, Remaining: int64(truth), HasRemaining: true}, 0, 1)
	}
	assert.InDelta(t, 500, b.fsigAt(pcAt(now)), 25, "the other client's rate")
	assert.InDelta(t, 500, b.refill(pcAt(now)), 25)
	// Silence: the estimate fades after foreignForget.
	later := now.Add(b.interval + foreignForget + 3*foreignForget)
	assert.Less(t, b.fsigAt(pcAt(later)), 500*0.1)
}

// A bucket refills lazily, and the wait is exact.
func TestBucketWait(t *testing.T) {
	b := newTestBucket(60, 0)
	assert.Equal(t, time.Second, b.wait(pcAt(pcT0), 1))
	assert.Equal(t, time.Duration(0), b.wait(pcAt(pcT0.Add(time.Second)), 1))
	b.take(pcAt(pcT0.Add(time.Second)), 1)
	assert.InDelta(t, 0, b.level, 1e-9)
	b.give(pcAt(pcT0.Add(time.Second)), 100)
	assert.InDelta(t, 60, b.level, 1e-9, "a refund never overfills")
}

func TestUsageScan(t *testing.T) {
	long := strings.Repeat("x", 3000)
	cases := []struct {
		name          string
		body          string
		output, input int64
	}{
		{"anthropic", `{"id":"msg","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":500,"output_tokens":7}}`, 7, 35},
		{"openai", `{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":30,"completion_tokens":200,"total_tokens":230}}`, 200, 30},
		{"anthropic stream", "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n" +
			"event: content_block_delta\ndata: {\"delta\":{\"text\":\"" + long + "\"}}\n\n" +
			"event: message_delta\ndata: {\"usage\":{\"output_tokens\":15}}\n\n", 15, 12},
		{"long openai", `{"choices":[{"message":{"content":"` + long + `"}}],"usage":{"prompt_tokens":3,"completion_tokens":900}}`, 900, 3},
		{"escaped lookalike", `{"content":"say \"output_tokens\": 99","usage":{"output_tokens":4}}`, 4, -1},
		{"none", `{"ok":true}`, -1, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				b := &pacerBody{rc: io.NopCloser(strings.NewReader(c.body)), pp: &pacerPart{}, f: &pflight{}}
				var r io.Reader = b
				if chunked {
					r = iotest.OneByteReader(b)
				}
				got, err := io.ReadAll(r)
				require.NoError(t, err)
				assert.Equal(t, c.body, string(got))
				// finish ran at EOF and gave the window back; recompute.
				w := &usageWin{}
				b2 := &pacerBody{win: w}
				b2.record([]byte(c.body))
				u := w.usage(int64(len(c.body)))
				assert.Equal(t, usage{output: c.output, input: c.input}, u)
			}
		})
	}
}

// The body wrapper closes the body once and keeps its error.
func TestPacerBodyCloseOnce(t *testing.T) {
	closes := 0
	rc := struct {
		io.Reader
		io.Closer
	}{strings.NewReader("x"), closerFunc(func() error { closes++; return io.ErrClosedPipe })}
	b := &pacerBody{rc: rc, pp: &pacerPart{}, f: &pflight{}}
	assert.ErrorIs(t, b.Close(), io.ErrClosedPipe)
	assert.ErrorIs(t, b.Close(), io.ErrClosedPipe)
	assert.Equal(t, 1, closes)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func TestLearnedCost(t *testing.T) {
	l := newLearned(OutputAuto, ProviderAnthropic)
	assert.Equal(t, OutputGenerated, l.rule)
	c, need, unc := l.cost(Estimate{InputTokens: 100, MaxOutputTokens: 1000})
	assert.True(t, unc)
	assert.EqualValues(t, 1000, c[pdOutput], "before any usage, max_tokens is the prior")
	assert.Equal(t, c, need)
	l.observeOutput(200)
	c, need, _ = l.cost(Estimate{InputTokens: 100, MaxOutputTokens: 1000})
	assert.EqualValues(t, 200, c[pdOutput])
	assert.EqualValues(t, 1000, need[pdOutput], "room for max_tokens until the rule is confirmed")
	l.confirmed = true
	c, need, _ = l.cost(Estimate{InputTokens: 100, MaxOutputTokens: 50})
	assert.EqualValues(t, 50, c[pdOutput], "capped by max_tokens")
	assert.Equal(t, c, need)

	l = newLearned(OutputAuto, ProviderOpenAI)
	assert.Equal(t, OutputReserved, l.rule)
	c, _, unc = l.cost(Estimate{InputTokens: 100, MaxOutputTokens: 1000})
	assert.False(t, unc)
	assert.EqualValues(t, 1100, c[pdTokens])

	l.observeInput(100, 150)
	assert.InDelta(t, 1.1, l.inputRatio, 1e-9)
	l.observeInput(100, 10)
	assert.GreaterOrEqual(t, l.inputRatio, 1.0, "the correction never lowers an estimate")
}

// The room for max_tokens a request needs beyond its cost (the unconfirmed
// generated rule) is checked against this client's share of the output
// bucket: with what the requests in flight may hold on top until a second
// report could show other clients, and while the reports show them (even
// with nothing in flight); without it once reports show none; and at the
// start, with nothing in flight, only against the server's bucket as this
// client's charges predict it.
func TestStoreWaitRoomForMaxTokens(t *testing.T) {
	now := pcT0
	store := func(reports int, wary bool) *localStore {
		s := &localStore{}
		s.at(now)
		b := s.bucket(pdOutput)
		b.configure(pcAt(now), 8000, time.Minute, true) // the shadow: full
		b.level, b.reports, b.synced, b.syncedAt = 1900, reports, true, pcAt(now)
		if wary {
			b.cutAt = pcAt(now) // a 429 it did not expect
		}
		return s
	}
	var c, need, hold pcost
	c[pdOutput], need[pdOutput], hold[pdOutput] = 100, 1500, 1400
	rate := 8000.0 / 60
	shareWait := func(n float64) time.Duration { return secondsToDuration((n - 1900) / rate) }

	w, _ := store(1, false).wait(now, c, need, hold, true, true)
	assert.Equal(t, shareWait(1500+1400), w, "first report: room on top of the requests in flight")
	w, _ = store(2, false).wait(now, c, need, hold, true, true)
	assert.Zero(t, w, "no other client in two reports: 1,500 fits the share")
	w, _ = store(5, true).wait(now, c, need, hold, true, true)
	assert.Equal(t, shareWait(1500+1400+contentionMargin*8000), w, "other clients seen: on top, with their margin")

	need[pdOutput] = 2500
	w, _ = store(1, false).wait(now, c, need, pcost{}, true, false)
	assert.Zero(t, w, "nothing in flight at the start: the server's bucket holds 2,500")
	w, _ = store(5, true).wait(now, c, need, pcost{}, true, false)
	assert.Equal(t, shareWait(2500+contentionMargin*8000), w, "other clients seen: the share, in flight or not")
}

func TestNextMonthUTC(t *testing.T) {
	assert.Equal(t, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), nextMonthUTC(time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)))
	assert.Equal(t, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), nextMonthUTC(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)))
}

// TestSlowDownSendRate checks the measured sending rate against its
// definition, an exponentially decayed count of admissions: admissions
// 100 µs apart, which decay ages a millisecond at a time, and 2 s apart,
// each aged exactly.
func TestSlowDownSendRate(t *testing.T) {
	for _, gap := range []time.Duration{100 * time.Microsecond, 2 * time.Second} {
		var s slowDown
		t0 := time.Unix(1_700_000_000, 0)
		n := min(int(2*sendRateWindow/gap), 20_000)
		var now time.Time
		for i := range n {
			now = t0.Add(time.Duration(i) * gap)
			s.take(now)
		}
		want := 0.0
		for i := range n {
			want += math.Exp(-now.Sub(t0.Add(time.Duration(i)*gap)).Seconds() / sendRateWindow.Seconds())
		}
		s.decay(now)
		assert.InEpsilon(t, want, s.sent, 2e-4, "gap %v: %d admissions", gap, n)
	}
}

// TestNowAfter checks that nowAfter is the current time and the time
// elapsed since the one given, for a time with a monotonic reading, one
// without, and the zero time.
func TestNowAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		time.Sleep(1500 * time.Millisecond) // fake time
		now := time.Now()
		for _, from := range []time.Time{start, start.Round(0), {}} {
			got, took := nowAfter(from)
			assert.True(t, got.Equal(now), "from %v: %v, want %v", from, got, now)
			assert.Equal(t, now.Sub(from), took, "from %v", from)
		}
	})
}
