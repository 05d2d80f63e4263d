package redis_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

var testKey = llmhttp.Partition{Host: "https://api.anthropic.com", Credential: llmhttp.Fingerprint("sk-ant-test"), Model: "claude"}

// limits returns limits for the requests (capacity 10, 1 a second) and
// tokens (capacity 1000, 100 a second) dimensions.
func limits() (l [llmhttp.NumDimensions]llmhttp.BucketLimit) {
	l[llmhttp.DimRequests] = llmhttp.BucketLimit{Capacity: 10, PerSecond: 1}
	l[llmhttp.DimTokens] = llmhttp.BucketLimit{Capacity: 1000, PerSecond: 100}
	return l
}

// gcra returns a pacer store on rdb that never declines a reservation
// (Horizon -1): every debit stands, whatever its wait.
func gcra(rdb goredis.UniversalClient) llmhttp.PacerStore {
	return llmredis.NewStore(rdb, llmredis.Settings{Horizon: -1}).Pacer()
}

func cost(requests, tokens float64) llmhttp.Amounts {
	var a llmhttp.Amounts
	a[llmhttp.DimRequests], a[llmhttp.DimTokens] = requests, tokens
	return a
}

func reserve(t *testing.T, s llmhttp.PacerStore, c llmhttp.Amounts) llmhttp.Grant {
	t.Helper()
	g, err := s.Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: c, Limits: limits()})
	require.NoError(t, err)
	return g
}

func settle(t *testing.T, s llmhttp.PacerStore, st llmhttp.Settlement) {
	t.Helper()
	st.Now = time.Now()
	st.Limits = limits()
	require.NoError(t, s.Settle(t.Context(), testKey, st))
}

// Reservations debit every dimension at once and always stand: once a
// bucket is empty each waits for the refill of its own cost after the
// ones before it (x/time/rate ReserveN), in the order they were made, so
// a large one is not overtaken by the small ones after it.
func TestReserveWaitsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		s := gcra(rdb)

		g := reserve(t, s, cost(1, 900))
		assert.Zero(t, g.Wait)
		assert.Equal(t, [llmhttp.NumDimensions]bool{true, false, true, false, false}, g.Known)
		assert.InDelta(t, 9, g.Levels[llmhttp.DimRequests], 1e-3)
		assert.InDelta(t, 100, g.Levels[llmhttp.DimTokens], 1e-3)

		big := reserve(t, s, cost(1, 600)) // 500 short: 5 s of refill
		assert.Equal(t, 5*time.Second, big.Wait)
		assert.InDelta(t, -500, big.Levels[llmhttp.DimTokens], 1e-3)

		small := reserve(t, s, cost(1, 100)) // behind the big one
		assert.Equal(t, 6*time.Second, small.Wait)

		time.Sleep(6 * time.Second)
		assert.Zero(t, reserve(t, s, cost(1, 0)).Wait, "the debt is paid")
	})
}

// A cost above a bucket's capacity is clamped to it: the wait is finite.
func TestReserveClampsCostToCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		s := gcra(rdb)
		g := reserve(t, s, cost(0, 1e9))
		assert.Zero(t, g.Wait)
		assert.InDelta(t, 0, g.Levels[llmhttp.DimTokens], 1e-3)
		g = reserve(t, s, cost(0, 1e9))
		assert.Equal(t, 10*time.Second, g.Wait, "a full bucket's refill, not 1e7 s")
	})
}

// A refund gives back at most the outstanding debt: a bucket never rises
// above its capacity, so a refund is no credit for later.
func TestRefundClampedToDebt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		s := gcra(rdb)
		reserve(t, s, cost(0, 300))
		settle(t, s, llmhttp.Settlement{Refund: cost(0, 200)})
		assert.InDelta(t, 900, reserve(t, s, cost(0, 0)).Levels[llmhttp.DimTokens], 1e-3)

		reserve(t, s, cost(0, 1000)) // 100 in debt
		settle(t, s, llmhttp.Settlement{Refund: cost(0, 5000)})
		g := reserve(t, s, cost(0, 0))
		assert.InDelta(t, 1000, g.Levels[llmhttp.DimTokens], 1e-3, "the whole debt, and no more")
		g = reserve(t, s, cost(0, 1000))
		assert.Zero(t, g.Wait)
		g = reserve(t, s, cost(0, 100))
		assert.Equal(t, time.Second, g.Wait, "the over-refund was not kept as credit")
	})
}

// A force-debit charges output beyond the estimate without an admission
// check: the debt holds back the next reservations of every process.
func TestForceDebit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rdb := newMini(t)
		a := gcra(rdb)
		b := gcra(miniClient(t, m))
		reserve(t, a, cost(0, 800))
		settle(t, a, llmhttp.Settlement{Debit: cost(0, 700)})
		g := reserve(t, b, cost(0, 100))
		assert.InDelta(t, -600, g.Levels[llmhttp.DimTokens], 1e-3)
		assert.Equal(t, 6*time.Second, g.Wait)
	})
}

// The server's report is the truth: a shared level above it is lowered to
// it at once.
func TestReportLowers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		s := gcra(rdb)
		reserve(t, s, cost(1, 100))
		var st llmhttp.Settlement
		st.Reported[llmhttp.DimTokens], st.ReportedKnown[llmhttp.DimTokens] = 250, true
		settle(t, s, st)
		g := reserve(t, s, cost(0, 0))
		assert.InDelta(t, 250, g.Levels[llmhttp.DimTokens], 1e-3)
		assert.InDelta(t, 9, g.Levels[llmhttp.DimRequests], 1e-3, "unreported: unchanged")

		st.Reported[llmhttp.DimTokens] = 900 // higher: see TestReportRaises
		settle(t, s, st)
		assert.LessOrEqual(t, reserve(t, s, cost(0, 0)).Levels[llmhttp.DimTokens], 900.0)
	})
}

// One process's 429 closes the gate for all: another process's next
// reservation waits for it, and a later, shorter closing does not shorten
// it. The gate's key lapses when it opens.
func TestGateShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rdb := newMini(t)
		a := gcra(rdb)
		b := gcra(miniClient(t, m))
		start := time.Now()
		settle(t, a, llmhttp.Settlement{GateUntil: start.Add(10 * time.Second)})
		settle(t, a, llmhttp.Settlement{GateUntil: start.Add(2 * time.Second)})

		g := reserve(t, b, cost(1, 10))
		assert.Equal(t, start.Add(10*time.Second), g.GateUntil)
		assert.Equal(t, 10*time.Second, g.Wait, "the reservation waits for the gate")

		time.Sleep(10 * time.Second)
		g = reserve(t, b, cost(1, 10))
		assert.True(t, g.GateUntil.IsZero())
		assert.False(t, m.Exists(gateKey(m)), "the gate's key expired when it opened")
	})
}

// gateKey returns the key of testKey's gate in m.
func gateKey(m interface{ Keys() []string }) string {
	for _, k := range m.Keys() {
		if strings.HasSuffix(k, ":gate") {
			return k
		}
	}
	return "{llmhttp:pacer:" + testKey.String() + "}:gate"
}

// New limits (a server that changed its tier, a window learned anew) keep
// the level the old ones implied; a reservation that gives no limits uses
// those the store knows (a process that has not heard the headers yet).
func TestLimitsChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		s := gcra(rdb)
		reserve(t, s, cost(0, 400))
		l := limits()
		l[llmhttp.DimTokens] = llmhttp.BucketLimit{Capacity: 2000, PerSecond: 50}
		g, err := s.Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(0, 0), Limits: l})
		require.NoError(t, err)
		assert.InDelta(t, 600, g.Levels[llmhttp.DimTokens], 1e-3)

		g, err = s.Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(0, 1000)})
		require.NoError(t, err)
		assert.True(t, g.Known[llmhttp.DimTokens])
		assert.Equal(t, 8*time.Second, g.Wait, "400 short at the stored 50 a second")
	})
}

// Processes agree whatever their clocks say: the store keeps Redis's.
func TestServerClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		s := gcra(rdb)
		reserve(t, s, cost(0, 1000))
		skewed := time.Now().Add(-time.Hour)
		g, err := s.Reserve(t.Context(), testKey, llmhttp.Reservation{Now: skewed, Cost: cost(0, 100), Limits: limits()})
		require.NoError(t, err)
		assert.Equal(t, time.Second, g.Wait)
		require.NoError(t, s.Settle(t.Context(), testKey, llmhttp.Settlement{Now: skewed, GateUntil: skewed.Add(3 * time.Second)}))
		g, err = s.Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(0, 0)})
		require.NoError(t, err)
		assert.Equal(t, time.Now().Add(3*time.Second), g.GateUntil, "the gate closes for 3 s from now, whatever the clock")
	})
}

// Keys expire on their own: a bucket when it is full again, the gate when
// it opens, the limits after a day without use.
func TestKeysExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rdb := newMini(t)
		s := gcra(rdb)
		reserve(t, s, cost(1, 500))
		settle(t, s, llmhttp.Settlement{GateUntil: time.Now().Add(time.Second)})
		require.Len(t, m.Keys(), 4) // requests, tokens, limits, gate
		for _, k := range m.Keys() {
			assert.Positive(t, m.TTL(k), k)
		}
		time.Sleep(2 * time.Second)
		m.Exists("x") // miniredis expires lazily, on access
		assert.Len(t, m.Keys(), 2, "the requests bucket is full again, the gate open: %v", m.Keys())
		time.Sleep(3 * time.Second)
		m.Exists("x")
		assert.Len(t, m.Keys(), 1, "the tokens bucket is full again: %v", m.Keys())
		time.Sleep(24 * time.Hour)
		m.Exists("x")
		assert.Empty(t, m.Keys())
	})
}

// The API key is in no Redis key or value: partitions are named by its
// fingerprint.
func TestKeysHoldNoCredential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rdb := newMini(t)
		st := llmredis.NewStore(rdb, llmredis.Settings{})
		const secret = "sk-ant-api03-SECRET-do-not-store"
		key := llmhttp.Partition{Host: "https://api.anthropic.com", Credential: llmhttp.Fingerprint(secret), Model: "claude"}
		_, err := st.Pacer().Reserve(t.Context(), key, llmhttp.Reservation{Now: time.Now(), Cost: cost(1, 10), Limits: limits()})
		require.NoError(t, err)
		require.NotEmpty(t, m.Keys())
		for _, k := range m.Keys() {
			assert.NotContains(t, k, secret)
			assert.Contains(t, k, llmhttp.Fingerprint(secret))
			assert.NotContains(t, m.Dump(), secret)
		}
	})
}

// The buckets are redis_rate's GCRA keys: a redis_rate Limiter sees the
// level the pacers left, and what it takes holds them back.
func TestRedisRateInterop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		st := llmredis.NewStore(rdb, llmredis.Settings{Horizon: -1})
		s := st.Pacer()
		reserve(t, s, cost(0, 300))

		b, err := st.Bucket(t.Context(), testKey, llmhttp.DimTokens)
		require.NoError(t, err)
		assert.Equal(t, llmhttp.BucketLimit{Capacity: 1000, PerSecond: 100}, b.Limit)
		assert.EqualValues(t, 700, b.Remaining)
		assert.Equal(t, 3*time.Second, b.ResetAfter)
		lim := b.RedisRateLimit()
		assert.Equal(t, redis_rate.Limit{Rate: 1000, Burst: 1000, Period: 10 * time.Second}, lim)

		res, err := redis_rate.NewLimiter(rdb).AllowN(t.Context(), st.BucketKey(testKey, llmhttp.DimTokens), lim, 600)
		require.NoError(t, err)
		assert.Equal(t, 600, res.Allowed)
		g := reserve(t, s, cost(0, 200))
		assert.InDelta(t, -100, g.Levels[llmhttp.DimTokens], 1e-3)
		assert.Equal(t, time.Second, g.Wait)

		b, err = st.Bucket(t.Context(), testKey, llmhttp.DimTokens)
		require.NoError(t, err)
		assert.Zero(t, b.Remaining)
		assert.Equal(t, time.Second, b.RetryAfter, "in debt for a second")

		b, err = st.Bucket(t.Context(), testKey, llmhttp.DimInputTokens)
		require.NoError(t, err)
		assert.Zero(t, b, "no limit known")
	})
}

// A caller that gave up does not make Redis count as failed.
func TestCallerCancelIsNoFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		st := llmredis.NewStore(rdb, llmredis.Settings{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := st.Pacer().Reserve(ctx, testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(1, 1)})
		require.Error(t, err)
		assert.Equal(t, llmredis.ModeShared, st.Stats().Mode)
		assert.Zero(t, st.Stats().Failures)
	})
}

// A debit too small to move the arrival time at the clock's precision (a
// huge refill rate) is no error.
func TestTinyDebit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rdb := newMini(t)
		st := llmredis.NewStore(rdb, llmredis.Settings{Horizon: -1})
		var lim [llmhttp.NumDimensions]llmhttp.BucketLimit
		lim[llmhttp.DimTokens] = llmhttp.BucketLimit{Capacity: 1e12, PerSecond: 1e12}
		for range 3 {
			g, err := st.Pacer().Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(0, 314), Limits: lim})
			require.NoError(t, err)
			assert.Zero(t, g.Wait)
		}
		assert.Zero(t, st.Stats().Failures)
	})
}
