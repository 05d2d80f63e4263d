package redis_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// The scripts against a real redis-server (LLMHTTP_REDIS_ADDR): its Lua,
// its number formatting, its TIME and its expiry, which miniredis only
// imitates. Keys go under a prefix of the test's own.

func realStore(t *testing.T, s llmredis.Settings) (*llmredis.Store, string) {
	rdb := realClient(t)
	s.Prefix = "test:" + t.Name() + ":" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	st := llmredis.NewStore(rdb, s)
	t.Cleanup(func() {
		keys, _ := rdb.Keys(t.Context(), "*"+s.Prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(t.Context(), keys...)
		}
	})
	return st, s.Prefix
}

func TestRealPacerScripts(t *testing.T) {
	st, prefix := realStore(t, llmredis.Settings{Horizon: -1})
	rdb := realClient(t)
	s := st.Pacer()

	g := reserve(t, s, cost(1, 900))
	assert.Zero(t, g.Wait)
	assert.InDelta(t, 100, g.Levels[llmhttp.DimTokens], 1)
	g = reserve(t, s, cost(1, 600))
	assert.InDelta(t, 5*time.Second, g.Wait, float64(50*time.Millisecond), "500 short at 100 a second")

	settle(t, s, llmhttp.Settlement{Refund: cost(0, 5000)})
	g = reserve(t, s, cost(0, 0))
	assert.InDelta(t, 1000, g.Levels[llmhttp.DimTokens], 5, "the refund clamped to the debt")

	settle(t, s, llmhttp.Settlement{Debit: cost(0, 1500)})
	g = reserve(t, s, cost(0, 0))
	assert.InDelta(t, -500, g.Levels[llmhttp.DimTokens], 5, "force-debited into debt")

	settle(t, s, llmhttp.Settlement{GateUntil: time.Now().Add(2 * time.Second)})
	g = reserve(t, s, cost(0, 0))
	assert.InDelta(t, 2*time.Second, time.Until(g.GateUntil), float64(100*time.Millisecond))

	tag := "{" + prefix + "pacer:" + testKey.String() + "}"
	ttl := rdb.PTTL(t.Context(), tag+":gate").Val()
	assert.InDelta(t, 2*time.Second, ttl, float64(100*time.Millisecond), "the gate expires when it opens")
	ttl = rdb.TTL(t.Context(), "rate:"+tag+":tokens").Val()
	assert.InDelta(t, 15*time.Second, ttl, float64(time.Second), "the bucket expires when full again")
	assert.InDelta(t, 24*time.Hour, rdb.TTL(t.Context(), tag+":limits").Val(), float64(time.Minute))

	// redis_rate sees the same bucket.
	b, err := st.Bucket(t.Context(), testKey, llmhttp.DimTokens)
	require.NoError(t, err)
	assert.InDelta(t, 5*time.Second, b.RetryAfter, float64(100*time.Millisecond))
	res, err := redis_rate.NewLimiter(rdb).AllowN(t.Context(), st.BucketKey(testKey, llmhttp.DimTokens), b.RedisRateLimit(), 1)
	require.NoError(t, err)
	assert.Zero(t, res.Allowed, "in debt for redis_rate too")

	// After SCRIPT FLUSH (a restarted or failed-over Redis) the scripts load
	// again on their own (NOSCRIPT, then EVAL).
	require.NoError(t, rdb.ScriptFlush(t.Context()).Err())
	reserve(t, s, cost(0, 0))
	assert.Zero(t, st.Stats().Failures)
}

func TestRealDeclineAndQueue(t *testing.T) {
	st, _ := realStore(t, llmredis.Settings{})
	s := st.Pacer()
	reserve(t, s, cost(0, 1000))
	g := reserve(t, s, cost(0, 500)) // 5 s: beyond the horizon (a 10 s window's 200 ms)
	assert.InDelta(t, time.Second, g.Wait, float64(50*time.Millisecond), "back in 5 horizons to check again")
	g = reserve(t, s, cost(0, 0))
	assert.InDelta(t, 0, g.Levels[llmhttp.DimTokens], 5, "nothing debited")
}

func TestRealBudgetScript(t *testing.T) {
	st, _ := realStore(t, llmredis.Settings{})
	b := st.Budgets()
	var mem llmhttp.MemoryBudgetStore
	w := llmhttp.BudgetWindow{Width: time.Second, Slots: 3}
	got := make([]llmhttp.BudgetCounts, 3)
	want := make([]llmhttp.BudgetCounts, 3)
	start := time.Now()
	for i, d := range []llmhttp.BudgetCounts{{Requests: 1, InputTokens: 100}, {OutputTokens: -30}, {Requests: 1, OutputTokens: 7}} {
		now := start.Add(time.Duration(i) * 700 * time.Millisecond)
		require.NoError(t, b.Add(t.Context(), "k", w, start, now, d, got))
		require.NoError(t, mem.Add(t.Context(), "k", w, start, now, d, want))
		assert.Equal(t, want, got, "step %d", i)
	}
}
