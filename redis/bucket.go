package redis

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/llmhttp/llmhttp"
)

// BucketKey returns the key of partition p's shared bucket for dimension d
// as a redis_rate v10 Limiter names it (redis_rate adds "rate:" in front),
// so that work outside llmhttp — a batch job on the same API key — can take
// from the bucket the pacers share:
//
//	lim := redis_rate.Limit{Rate: capacity, Burst: capacity, Period: window}
//	res, err := redis_rate.NewLimiter(rdb).AllowN(ctx, st.BucketKey(p, llmhttp.DimTokens), lim, n)
//
// with the capacity and window of [Store.Bucket]'s Limit.
func (st *Store) BucketKey(p llmhttp.Partition, d llmhttp.Dimension) string {
	if d < 0 || d >= llmhttp.NumDimensions {
		return ""
	}
	return st.pacer.keys.keys(p)[d][len(redisRatePrefix):]
}

// Bucket is the state of a shared bucket, for [Store.Bucket].
type Bucket struct {
	// Limit is the bucket's capacity and refill, as the pacers last gave
	// them; zero when none has.
	Limit llmhttp.BucketLimit
	// Remaining is what the bucket holds now, in whole tokens (0 while it
	// is in debt); RetryAfter how long until it is out of debt (0 when it
	// is not); ResetAfter how long until it is full.
	Remaining              int64
	RetryAfter, ResetAfter time.Duration
}

// RedisRateLimit returns the bucket's limit as a redis_rate Limit:
// Rate and Burst the capacity, Period the window. The zero Limit when the
// bucket has none.
func (b Bucket) RedisRateLimit() redis_rate.Limit {
	c := int(math.Round(b.Limit.Capacity))
	if c <= 0 || b.Limit.PerSecond <= 0 {
		return redis_rate.Limit{}
	}
	return redis_rate.Limit{Rate: c, Burst: c, Period: time.Duration(float64(c) / b.Limit.PerSecond * float64(time.Second))}
}

// Bucket reads partition p's shared bucket for dimension d: its limit, and
// its level through redis_rate's own GCRA script (a cost of 0: a look that
// changes nothing). Two round trips; for monitoring, not for each request.
func (st *Store) Bucket(ctx context.Context, p llmhttp.Partition, d llmhttp.Dimension) (Bucket, error) {
	if d < 0 || d >= llmhttp.NumDimensions {
		return Bucket{}, nil
	}
	keys := st.pacer.keys.keys(p)
	n := strconv.Itoa(int(d) + 1)
	var b Bucket
	err := st.call(ctx, func(ctx context.Context) error {
		v, err := st.rdb.HMGet(ctx, keys[llmhttp.NumDimensions], "c"+n, "r"+n).Result()
		if err != nil {
			return err
		}
		b.Limit.Capacity, b.Limit.PerSecond = asFloat(v[0]), asFloat(v[1])
		lim := b.RedisRateLimit()
		if lim.IsZero() {
			b.Limit = llmhttp.BucketLimit{}
			return nil
		}
		res, err := redis_rate.NewLimiter(st.rdb).AllowN(ctx, keys[d][len(redisRatePrefix):], lim, 0)
		if err != nil {
			return err
		}
		b.Remaining = int64(res.Remaining)
		b.RetryAfter = max(res.RetryAfter, 0)
		b.ResetAfter = max(res.ResetAfter, 0)
		return nil
	})
	return b, err
}

// asFloat returns a reply field v as a number, 0 when it is none.
func asFloat(v any) float64 {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}
