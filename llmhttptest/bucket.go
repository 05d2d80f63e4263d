package llmhttptest

import (
	"math"
	"math/bits"
	"time"
)

// bucket is a continuously refilling token bucket, the algorithm Anthropic
// documents ("your capacity is continuously replenished up to your maximum
// limit, rather than being reset at fixed intervals"): capacity tokens refill
// evenly over window. The level is advanced lazily from the time of each
// call, so there is no goroutine and no ticker, and testing/synctest's fake
// clock drives it.
//
// The arithmetic is exact: the level is tokens + frac/window, with frac the
// partial token as a numerator over the window in nanoseconds, so after a
// 60 RPM bucket is emptied exactly one request is back after exactly one
// second, and no rounding drifts over a long run. The level may be negative
// (a debt), when output is charged after the fact.
//
// A bucket is not safe for concurrent use; the handler's mutex guards it.
type bucket struct {
	capacity int64         // tokens; > 0
	window   time.Duration // > 0
	tokens   int64         // floor of the level; may be negative
	frac     uint64        // partial token, numerator over window (ns); < window
	last     time.Time     // when the level was last advanced
}

// newBucket returns a full bucket of capacity tokens refilled over window.
func newBucket(capacity int64, window time.Duration, now time.Time) *bucket {
	return &bucket{capacity: capacity, window: window, tokens: capacity, last: now}
}

// advance refills the bucket for the time since its last call. Time going
// backwards (a wall-clock step) refills nothing.
func (b *bucket) advance(now time.Time) {
	if !now.After(b.last) {
		return
	}
	elapsed := now.Sub(b.last)
	b.last = now
	if b.tokens >= b.capacity {
		b.tokens, b.frac = b.capacity, 0
		return
	}
	// added = (elapsed×capacity + frac) / window, in 128 bits.
	hi, lo := bits.Mul64(uint64(elapsed), uint64(b.capacity))
	var carry uint64
	lo, carry = bits.Add64(lo, b.frac, 0)
	hi += carry
	w := uint64(b.window)
	if hi >= w { // the quotient overflows 64 bits: certainly full
		b.tokens, b.frac = b.capacity, 0
		return
	}
	q, r := bits.Div64(hi, lo, w)
	if q >= uint64(b.capacity-b.tokens) { // capacity−tokens > 0 here
		b.tokens, b.frac = b.capacity, 0
		return
	}
	b.tokens += int64(q)
	b.frac = r
}

// level returns the whole tokens in the bucket at now (possibly negative).
func (b *bucket) level(now time.Time) int64 {
	b.advance(now)
	return b.tokens
}

// exact returns the level at now as a float, fraction included.
func (b *bucket) exact(now time.Time) float64 {
	b.advance(now)
	return float64(b.tokens) + float64(b.frac)/float64(b.window)
}

// until returns how long from now until the level reaches n tokens: 0 if
// it already has, and the largest duration if it never will (n above the
// capacity) or the wait overflows.
func (b *bucket) until(n int64, now time.Time) time.Duration {
	b.advance(now)
	if b.tokens >= n {
		return 0
	}
	if n > b.capacity {
		return math.MaxInt64
	}
	// wait = ceil(((n−tokens)×window − frac) / capacity) nanoseconds.
	deficit := uint64(n) - uint64(b.tokens) // exact: 0 < n−tokens < 2^63 + 2^62
	hi, lo := bits.Mul64(deficit, uint64(b.window))
	var borrow uint64
	lo, borrow = bits.Sub64(lo, b.frac, 0)
	hi -= borrow
	c := uint64(b.capacity)
	if hi >= c {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, c)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

// untilFull returns how long from now until the bucket is full again.
func (b *bucket) untilFull(now time.Time) time.Duration { return b.until(b.capacity, now) }

// take removes n tokens (n may exceed the level: the bucket goes into debt).
func (b *bucket) take(n int64, now time.Time) {
	b.advance(now)
	b.tokens = max(satSub(b.tokens, n), minLevel)
}

// minLevel bounds a bucket's debt, so that the arithmetic in until never
// overflows.
const minLevel = -1 << 62

// give returns n tokens (a refund), up to the capacity.
func (b *bucket) give(n int64, now time.Time) {
	b.advance(now)
	b.tokens = satAdd(b.tokens, n)
	if b.tokens >= b.capacity {
		b.tokens, b.frac = b.capacity, 0
	}
}

// satAdd and satSub add and subtract without wrapping around.
func satAdd(a, b int64) int64 {
	s := a + b
	if (s > a) != (b > 0) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		return satAdd(satAdd(a, math.MaxInt64), 1)
	}
	return satAdd(a, -b)
}
