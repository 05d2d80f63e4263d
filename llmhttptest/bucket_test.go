package llmhttptest

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucketRefillsExactly(t *testing.T) {
	b := newBucket(60, time.Minute, t0)
	b.take(60, t0)
	if got := b.level(t0); got != 0 {
		t.Fatalf("level after emptying = %d, want 0", got)
	}
	if got := b.until(1, t0); got != time.Second {
		t.Fatalf("until(1) = %v, want 1s", got)
	}
	if got := b.level(t0.Add(time.Second - 1)); got != 0 {
		t.Fatalf("level at 1s-1ns = %d, want 0", got)
	}
	if got := b.level(t0.Add(time.Second)); got != 1 {
		t.Fatalf("level at 1s = %d, want 1", got)
	}
	if got := b.level(t0.Add(30 * time.Second)); got != 30 {
		t.Fatalf("level at 30s = %d, want 30", got)
	}
	if got := b.untilFull(t0.Add(30 * time.Second)); got != 30*time.Second {
		t.Fatalf("untilFull at 30s = %v, want 30s", got)
	}
	if got := b.level(t0.Add(time.Hour)); got != 60 {
		t.Fatalf("level after an hour = %d, want the capacity 60", got)
	}
}

// A rate that does not divide the window keeps its fraction: 7 per minute
// is one every 8.571428571…s, and 7 tokens come back in exactly a minute,
// however the time is sliced.
func TestBucketKeepsFractions(t *testing.T) {
	b := newBucket(7, time.Minute, t0)
	b.take(7, t0)
	if got, want := b.until(1, t0), 8571428572*time.Nanosecond; got != want {
		t.Fatalf("until(1) = %v, want %v (rounded up)", got, want)
	}
	now := t0
	for range 6000 { // 10ms steps
		now = now.Add(10 * time.Millisecond)
		b.advance(now)
	}
	if got := b.level(now); got != 7 {
		t.Fatalf("level after 6000 × 10ms = %d, want 7", got)
	}
	b.take(7, now)
	now = now.Add(8571428571 * time.Nanosecond)
	if got := b.level(now); got != 0 {
		t.Fatalf("level 1ns before the first token = %d, want 0", got)
	}
	if got := b.until(1, now); got != time.Nanosecond {
		t.Fatalf("until(1) 1ns before = %v, want 1ns", got)
	}
	if got := b.exact(now); got <= 0.99 || got >= 1 {
		t.Fatalf("exact level = %v, want just under 1", got)
	}
}

func TestBucketDebtAndRefund(t *testing.T) {
	b := newBucket(100, time.Minute, t0)
	b.take(150, t0) // output charged after the fact
	if got := b.level(t0); got != -50 {
		t.Fatalf("level = %d, want -50", got)
	}
	if got, want := b.until(1, t0), 51*600*time.Millisecond; got != want {
		t.Fatalf("until(1) = %v, want %v", got, want)
	}
	if got, want := b.untilFull(t0), 150*600*time.Millisecond; got != want {
		t.Fatalf("untilFull = %v, want %v (longer than the window)", got, want)
	}
	b.give(30, t0)
	if got := b.level(t0); got != -20 {
		t.Fatalf("level after a refund of 30 = %d, want -20", got)
	}
	b.give(1000, t0)
	if got := b.level(t0); got != 100 {
		t.Fatalf("a refund never overfills: level = %d, want 100", got)
	}
}

func TestBucketEdges(t *testing.T) {
	b := newBucket(10, time.Minute, t0)
	if got := b.until(11, t0); got != math.MaxInt64 {
		t.Errorf("until(above capacity) = %v, want MaxInt64", got)
	}
	if got := b.until(5, t0); got != 0 {
		t.Errorf("until(available) = %v, want 0", got)
	}
	b.take(10, t0)
	b.advance(t0.Add(-time.Hour)) // time going backwards refills nothing
	if got := b.level(t0); got != 0 {
		t.Errorf("level after a backwards step = %d, want 0", got)
	}
	// A huge elapsed time and a huge capacity do not overflow.
	big := newBucket(math.MaxInt64/2, time.Nanosecond, t0)
	big.take(math.MaxInt64/2, t0)
	if got := big.level(t0.Add(200 * 365 * 24 * time.Hour)); got != math.MaxInt64/2 {
		t.Errorf("big bucket level = %d, want full", got)
	}
	// Debt is bounded, so until cannot overflow.
	d := newBucket(1, time.Hour, t0)
	d.take(math.MaxInt64, t0)
	d.take(math.MaxInt64, t0)
	if got := d.level(t0); got != minLevel {
		t.Errorf("debt = %d, want the floor %d", got, int64(minLevel))
	}
	if got := d.until(1, t0); got != math.MaxInt64 {
		t.Errorf("until(1) deep in debt = %v, want MaxInt64", got)
	}
}

func TestRounding(t *testing.T) {
	for _, c := range []struct{ v, g, want int64 }{
		{0, 1000, 0}, {499, 1000, 0}, {500, 1000, 1000}, {1499, 1000, 1000},
		{29_977, 1000, 30_000}, {7_400, 1000, 7_000}, {123, -1, 123}, {123, 1, 123},
	} {
		if got := roundTo(c.v, c.g); got != c.want {
			t.Errorf("roundTo(%d, %d) = %d, want %d", c.v, c.g, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "2000-01-01T00:00:00Z"},
		{time.Nanosecond, "2000-01-01T00:00:01Z"},
		{time.Second, "2000-01-01T00:00:01Z"},
		{90*time.Second + 1, "2000-01-01T00:01:31Z"},
	} {
		if got := rfc3339Reset(t0, c.d); got != c.want {
			t.Errorf("rfc3339Reset(%v) = %s, want %s", c.d, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {120 * time.Millisecond, "120ms"}, {11*time.Millisecond + 1, "12ms"},
		{time.Second, "1s"}, {6 * time.Minute, "6m0s"}, {3890 * time.Millisecond, "3.89s"},
	} {
		if got := durationReset(c.d); got != c.want {
			t.Errorf("durationReset(%v) = %s, want %s", c.d, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{
		{1, 1}, {time.Second, 1}, {time.Second + 1, 2}, {20 * time.Second, 20}, {22500 * time.Millisecond, 23},
		{math.MaxInt64, math.MaxInt64 / int64(time.Second)},
	} {
		if got := retryAfterSeconds(c.d); got != c.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}
