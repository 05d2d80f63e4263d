package redis

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
)

// These tests drive the scripts with the store's default policy: a
// horizon, and higher reports believed beyond the young debits.

var ikey = llmhttp.Partition{Host: "https://api.openai.com", Credential: "fp", Model: "gpt"}

func ilimits() (l [llmhttp.NumDimensions]llmhttp.BucketLimit) {
	l[llmhttp.DimTokens] = llmhttp.BucketLimit{Capacity: 1000, PerSecond: 10} // a 100 s window
	return l
}

func icost(tokens float64) (a llmhttp.Amounts) {
	a[llmhttp.DimTokens] = tokens
	return a
}

// newTestStore returns a store on an in-memory miniredis, and a second
// store (another process) on the same server.
func newTestStore(t *testing.T) (*pacerStore, *pacerStore) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	t.Cleanup(m.Close)
	client := func() *goredis.Client {
		rdb := goredis.NewClient(&goredis.Options{
			Addr:                     "127.0.0.1:6379",
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
			Dialer:                   func(context.Context, string, string) (net.Conn, error) { return m.Dial() },
			ContextTimeoutEnabled:    true,
			DisableIdentity:          true,
		})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	return &NewStore(client(), Settings{}).pacer, &NewStore(client(), Settings{}).pacer
}

var declining = reservePolicy{horizon: time.Second, countLag: 2 * time.Second, gain: reportGain}

func (p *pacerStore) try(t *testing.T, tokens float64) (llmhttp.Grant, bool) {
	t.Helper()
	g, ok, err := p.reserve(t.Context(), ikey, llmhttp.Reservation{Now: time.Now(), Cost: icost(tokens), Limits: ilimits()}, declining)
	require.NoError(t, err)
	return g, ok
}

// A reservation that would wait longer than the horizon is declined:
// nothing is debited, and the wait says when it would fit the horizon.
func TestDeclineBeyondHorizon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := newTestStore(t)
		_, ok := a.try(t, 1000)
		require.True(t, ok)
		g, ok := a.try(t, 5) // 0.5 s: within the horizon
		assert.True(t, ok)
		assert.Equal(t, 500*time.Millisecond, g.Wait)

		g, ok = a.try(t, 20) // 2.5 s
		assert.False(t, ok)
		assert.Equal(t, 1500*time.Millisecond, g.Wait, "back when the wait is down to the horizon")
		g, ok = a.try(t, 100) // 10.5 s
		assert.False(t, ok)
		assert.Equal(t, 5*time.Second, g.Wait, "back in 5 horizons at most, to check again")
		assert.InDelta(t, -5, g.Levels[llmhttp.DimTokens], 1e-3, "nothing debited")
	})
}

// The horizon of a bucket is at most a 50th of its window, so a short
// window is not reserved far ahead.
func TestHorizonShortWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := newTestStore(t)
		l := ilimits()
		l[llmhttp.DimTokens] = llmhttp.BucketLimit{Capacity: 1000, PerSecond: 200} // a 5 s window: 100 ms
		try := func(n float64) (llmhttp.Grant, bool) {
			g, ok, err := a.reserve(t.Context(), ikey, llmhttp.Reservation{Now: time.Now(), Cost: icost(n), Limits: l}, declining)
			require.NoError(t, err)
			return g, ok
		}
		_, ok := try(1000)
		require.True(t, ok)
		_, ok = try(20)
		assert.True(t, ok, "100 ms")
		g, ok := try(2)
		assert.False(t, ok, "110 ms")
		assert.InDelta(t, 10*time.Millisecond, g.Wait, float64(time.Microsecond))
	})
}

// waiter is a request that asks again when told, as a pacer does.
type waiter struct {
	s    *pacerStore
	cost float64
	at   time.Time // when it asks next; zero once reserved
}

// serve drives ws, each asking at its time and again when declined, until
// all are reserved; it returns their costs in the order they were
// reserved, and the number of calls.
func serve(t *testing.T, ws []*waiter) (order []float64, calls int) {
	for len(order) < len(ws) {
		next := -1
		for i, w := range ws {
			if !w.at.IsZero() && (next < 0 || w.at.Before(ws[next].at)) {
				next = i
			}
		}
		w := ws[next]
		time.Sleep(time.Until(w.at))
		calls++
		g, ok := w.s.try(t, w.cost)
		if ok {
			order = append(order, w.cost)
			w.at = time.Time{}
		} else {
			w.at = time.Now().Add(g.Wait)
		}
	}
	return order, calls
}

// A declined request takes a ticket: requests after it, from any process,
// leave room for it, so small requests do not starve a large one.
func TestQueueKeepsLargeRequestFromStarving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newTestStore(t)
		_, ok := a.try(t, 1000)
		require.True(t, ok)

		g, ok := a.try(t, 900) // 90 s away
		require.False(t, ok)
		assert.Equal(t, 5*time.Second, g.Wait, "checks again every 5 horizons")

		// Without the queue, these would fit at once, one after the other.
		ws := []*waiter{{s: a, cost: 900, at: time.Now().Add(g.Wait)}}
		for i := range 5 {
			ws = append(ws, &waiter{s: b, cost: 10, at: time.Now().Add(time.Duration(i) * 100 * time.Millisecond)})
		}
		order, _ := serve(t, ws)
		assert.Equal(t, []float64{900, 10, 10, 10, 10, 10}, order, "the large request goes first")
	})
}

// The ticket of a request that never comes back lapses: two horizons and
// a second after it should have.
func TestQueueTicketLapses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newTestStore(t)
		a.try(t, 1000)
		g, ok := a.try(t, 900)
		require.False(t, ok)
		time.Sleep(g.Wait + 2*time.Second + time.Second - time.Millisecond)
		_, ok = b.try(t, 10)
		assert.False(t, ok, "still queued")
		time.Sleep(2 * time.Millisecond)
		_, ok = b.try(t, 10)
		assert.True(t, ok, "lapsed")
	})
}

// Declined requests are served in the order they were first declined,
// across processes, asking about once per wait or per 5 horizons.
func TestQueueOrderAndPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newTestStore(t)
		_, ok := a.try(t, 1000)
		require.True(t, ok)
		var ws []*waiter
		costs := []float64{300, 50, 120, 10, 500, 70}
		for i, cost := range costs {
			s := []*pacerStore{a, b}[i%2]
			g, ok := s.try(t, cost)
			require.False(t, ok)
			ws = append(ws, &waiter{s: s, cost: cost, at: time.Now().Add(g.Wait)})
		}
		start := time.Now()
		order, calls := serve(t, ws)
		assert.Equal(t, costs, order, "first declined, first served")
		// 1,050 tokens at 10 a second, each checking again every 5 s.
		waited := time.Since(start)
		assert.Less(t, waited, 106*time.Second)
		assert.LessOrEqual(t, calls, len(ws)*(int(waited/(5*time.Second))+2))
		t.Logf("%d calls in %v", calls, waited)
	})
}

// A report above the shared level is believed in part, beyond the debits
// too young for the server to have counted: what a lost refund took comes
// back while the bucket stays busy.
func TestReportRaises(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := newTestStore(t)
		report := func(level float64) {
			var s llmhttp.Settlement
			s.Now, s.Limits = time.Now(), ilimits()
			s.Reported[llmhttp.DimTokens], s.ReportedKnown[llmhttp.DimTokens] = level, true
			require.NoError(t, a.settle(t.Context(), ikey, s, declining))
		}
		level := func() float64 {
			g, _ := a.try(t, 0)
			return g.Levels[llmhttp.DimTokens]
		}
		_, ok := a.try(t, 800) // a refund of 600 of it will be lost
		require.True(t, ok)
		time.Sleep(time.Minute) // the young debit is forgotten
		require.InDelta(t, 800, level(), 1e-3)
		report(900) // the refund was lost: the server has 100 more

		assert.InDelta(t, 850, level(), 1e-3, "half of the difference")
		report(900)
		assert.InDelta(t, 875, level(), 1e-3)

		// A young debit is kept out of a higher report.
		_, ok = a.try(t, 300) // 575 left
		require.True(t, ok)
		report(875) // made before the server counted the 300
		assert.InDelta(t, 575, level(), 1, "not raised: the report cannot include the young 300")
	})
}

// Without declines (a negative Horizon), a reservation may wait far longer
// than CountLag: a higher report is not believed.
func TestReportNotRaisedWithoutDeclines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := newTestStore(t)
		def := a.policy()
		assert.Equal(t, time.Second, def.horizon, "the default declines")
		assert.Equal(t, reportGain, def.gain)
		a.st.s.Horizon = -1
		pol := a.policy()
		assert.Zero(t, pol.gain)
		assert.Zero(t, pol.horizon)
		_, _, err := a.reserve(t.Context(), ikey, llmhttp.Reservation{Now: time.Now(), Cost: icost(500), Limits: ilimits()}, pol)
		require.NoError(t, err)
		var s llmhttp.Settlement
		s.Now, s.Limits = time.Now(), ilimits()
		s.Reported[llmhttp.DimTokens], s.ReportedKnown[llmhttp.DimTokens] = 1000, true
		require.NoError(t, a.settle(t.Context(), ikey, s, pol))
		g, _, err := a.reserve(t.Context(), ikey, llmhttp.Reservation{Now: time.Now(), Limits: ilimits()}, pol)
		require.NoError(t, err)
		assert.InDelta(t, 500, g.Levels[llmhttp.DimTokens], 1e-3)
	})
}

// A fast-mode partition (Anthropic's own token limits for "speed": "fast")
// keeps its buckets, gate and queue under keys of its own; a standard
// partition's keys are unchanged by the lane field.
func TestKeysPerLane(t *testing.T) {
	c := &keyCache{prefix: "llmhttp:"}
	std := llmhttp.Partition{Host: "https://api.anthropic.com", Credential: "ee6827de75b65095", Model: "claude-opus-4-8"}
	fast := std
	fast.Lane = llmhttp.LaneFast
	assert.Equal(t, "{llmhttp:pacer:https://api.anthropic.com|ee6827de75b65095|claude-opus-4-8}", c.tag(std))
	assert.Equal(t, "{llmhttp:pacer:https://api.anthropic.com|ee6827de75b65095|claude-opus-4-8|fast}", c.tag(fast))
	ks, kf := c.keys(std), c.keys(fast)
	for i := range ks {
		assert.NotEqual(t, ks[i], kf[i])
	}
}
