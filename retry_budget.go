package llmhttp

import (
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [RetryBudget].
const (
	defaultBudgetCapacity = 20
	defaultBudgetRatio    = 0.25
	defaultBudgetRefill   = time.Minute
)

// RetryBudget bounds the retries of one partition (see [Partition]) so that
// an outage does not turn into a retry storm. It is the token bucket of gRPC's
// retry throttling (gRFC A6), chosen over Envoy's concurrency budget because
// it bounds the number of retries, not only how many run at once, and costs
// nothing while all is well; a slow refill with time is added so that a
// low-traffic partition, which gets few successes to earn tokens back, does
// not stay without retries for long after an outage.
//
// Every attempt that fails like an outage (Overloaded, Server, Timeout,
// Network) takes one token; every success gives back Ratio; time gives back
// Capacity per RefillPeriod; the level stays within [0, Capacity]. A retry
// the budget governs is sent only while more than half of Capacity remains.
// Throttles, client errors and refusals neither take nor give.
//
// The budget governs every retry except a throttle (429, slow_down) whose
// wait the server dictated and the wait for an open circuit's half-open:
// waiting as told is not a storm.
type RetryBudget struct {
	// Capacity is the size of each partition's bucket. 0 means 20: from a
	// full bucket, a burst of failures gets at most 9 retries before the
	// partition sees a success. A negative Capacity disables the budget.
	Capacity float64
	// Ratio is what a success gives back. Values ≤ 0 mean 0.25: retries keep
	// flowing while at most one attempt in five fails (Envoy's 20 %), and stop
	// when more do.
	Ratio float64
	// RefillPeriod is how long an empty bucket takes to refill by time alone.
	// 0 means 1 min: under a failing flood of more than Capacity attempts a
	// minute the refill is negligible, while a partition sending a request
	// every few seconds keeps its retries. A negative RefillPeriod disables
	// the refill (pure gRFC A6).
	RefillPeriod time.Duration
}

// budgets keeps the RetryBudget state of every partition that is below its
// capacity; a full bucket is the same as no entry, so partitions whose
// budget refilled are dropped and the map only holds recent trouble.
type budgets struct {
	capacity float64
	ratio    float64
	perSec   float64 // refill rate, tokens per second; 0 for none

	mu     sync.Mutex
	levels map[Partition]budgetLevel
	n      atomic.Int64 // len(levels), read without mu on the success path
}

// budgetLevel is a bucket's level at a time.
type budgetLevel struct {
	tokens float64
	at     time.Time
}

// newBudgets returns the state for s, or nil when s disables the budget.
func newBudgets(s RetryBudget) *budgets {
	if s.Capacity < 0 {
		return nil
	}
	b := &budgets{capacity: s.Capacity, ratio: s.Ratio, levels: make(map[Partition]budgetLevel)}
	if b.capacity == 0 {
		b.capacity = defaultBudgetCapacity
	}
	if b.ratio <= 0 {
		b.ratio = defaultBudgetRatio
	}
	switch {
	case s.RefillPeriod == 0:
		b.perSec = b.capacity / defaultBudgetRefill.Seconds()
	case s.RefillPeriod > 0:
		b.perSec = b.capacity / s.RefillPeriod.Seconds()
	}
	return b
}

// level returns l's tokens at now, refilled by time. b.mu must be held.
func (b *budgets) level(l budgetLevel, now time.Time) float64 {
	t := l.tokens
	if b.perSec > 0 {
		if dt := now.Sub(l.at); dt > 0 {
			t += dt.Seconds() * b.perSec
		}
	}
	return min(t, b.capacity)
}

// inDeficit reports whether any partition is below capacity; when none is, a
// success has nothing to give back and needs no lock.
func (b *budgets) inDeficit() bool { return b.n.Load() > 0 }

// fail takes a token from p's bucket.
func (b *budgets) fail(p Partition, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.levels[p]
	tokens := b.capacity
	if ok {
		tokens = b.level(l, now)
	} else {
		b.sweep(now)
	}
	b.levels[p] = budgetLevel{tokens: max(tokens-1, 0), at: now}
	b.n.Store(int64(len(b.levels)))
}

// succeed gives Ratio back to p's bucket.
func (b *budgets) succeed(p Partition, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.levels[p]
	if !ok {
		return
	}
	if tokens := b.level(l, now) + b.ratio; tokens < b.capacity {
		b.levels[p] = budgetLevel{tokens: tokens, at: now}
		return
	}
	delete(b.levels, p)
	b.n.Store(int64(len(b.levels)))
}

// allows reports whether p's bucket holds more than half its capacity.
func (b *budgets) allows(p Partition, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.levels[p]
	return !ok || b.level(l, now) > b.capacity/2
}

// sweep drops the partitions whose buckets have refilled by now. b.mu must
// be held.
func (b *budgets) sweep(now time.Time) {
	if b.perSec == 0 {
		return
	}
	for p, l := range b.levels {
		if b.level(l, now) >= b.capacity {
			delete(b.levels, p)
		}
	}
}
