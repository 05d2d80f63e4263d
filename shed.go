package llmhttp

import (
	"context"
	"net/http"
	"time"
)

// ShedSettings configures load shedding in the budget layer (see
// [Budgets]): when a budget nears its limit or the pacer's queue for a
// partition is deep, requests are answered at once with a local reply —
// status 429, Llmhttp-Refusal: shed — lowest priority first. Critical
// requests are never shed. The zero value sheds low-priority requests only.
type ShedSettings struct {
	// LowAt, NormalAt and HighAt are, for requests of priority low, normal
	// and high, the fraction of any of the request's budgets beyond which
	// the request is shed: when the budget's use, this request's estimate
	// included, would pass it. Under a [BudgetDelay] budget a request that
	// may be delayed waits instead until it fits below the fraction. 0
	// means the default: 0.8 for low, none for normal and high (they use
	// the whole budget); a value ≥ 1 or negative turns it off.
	LowAt, NormalAt, HighAt float64

	// LowQueue, NormalQueue and HighQueue are, for requests of priority
	// low, normal and high, the number of requests waiting in the pacer's
	// queue for the request's partition at or beyond which the request is
	// shed. 0 means the default: 8 for low, none for normal and high; a
	// negative value turns it off. They apply only when Queued is set.
	LowQueue, NormalQueue, HighQueue int

	// Queued reports how many requests wait in the pacer's queue for a
	// partition. nil turns queue shedding off, unless the budget layer is
	// built by [New] alongside a [Pacer], which then provides it.
	Queued func(Partition) int

	// Partition names a request's partition for Queued. nil means
	// [DefaultPartition].
	Partition func(*http.Request) Partition
}

// Defaults of ShedSettings.
const (
	defaultShedLowAt    = 0.8
	defaultShedLowQueue = 8
)

// shedLevels is ShedSettings resolved: per priority (low, normal, high),
// the budget fraction and queue depth that shed; 0 for "never".
type shedLevels struct {
	at    [3]float64
	queue [3]int
}

func (s ShedSettings) levels() shedLevels {
	var l shedLevels
	fr := func(v, def float64) float64 {
		if v == 0 {
			v = def
		}
		if v <= 0 || v >= 1 {
			return 0
		}
		return v
	}
	q := func(v, def int) int {
		if v == 0 {
			v = def
		}
		return max(v, 0)
	}
	l.at = [3]float64{fr(s.LowAt, defaultShedLowAt), fr(s.NormalAt, 0), fr(s.HighAt, 0)}
	l.queue = [3]int{q(s.LowQueue, defaultShedLowQueue), q(s.NormalQueue, 0), q(s.HighQueue, 0)}
	return l
}

// shedIndex returns the index of prio in shedLevels, or -1 for a priority
// that is never shed (critical and above).
func shedIndex(prio Priority) int {
	switch {
	case prio >= PriorityCritical:
		return -1
	case prio <= PriorityLow:
		return 0
	case prio == PriorityNormal:
		return 1
	}
	return 2
}

// fraction returns the budget fraction beyond which prio is shed; 0 when
// never.
func (l *shedLevels) fraction(prio Priority) float64 {
	if i := shedIndex(prio); i >= 0 {
		return l.at[i]
	}
	return 0
}

// queueLimit returns the queue depth at which prio is shed; 0 when never.
func (l *shedLevels) queueLimit(prio Priority) int {
	if i := shedIndex(prio); i >= 0 {
		return l.queue[i]
	}
	return 0
}

type maxWaitKey struct{}

// WithMaxWait returns a copy of ctx that bounds how long requests made with
// it may wait in llmhttp's queues: delayed by a budget (see [BudgetDelay]).
// A request whose predicted wait is longer is answered at once with a
// local reply. d ≤ 0 means no bound of its own: the context's deadline and
// the layers' settings still apply.
func WithMaxWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, maxWaitKey{}, d)
}

// maxWaitOf returns the bound set by WithMaxWait on ctx.
func maxWaitOf(ctx context.Context) (time.Duration, bool) {
	d, ok := ctx.Value(maxWaitKey{}).(time.Duration)
	return d, ok && d > 0
}
