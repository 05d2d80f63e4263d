package llmhttp

import (
	"container/heap"
	"context"
	"strconv"
	"time"
)

// Priority orders the requests waiting in the pacer: a higher priority goes
// first; requests of equal priority go in arrival order. A retried request
// keeps its place. Set it on the request's context with [WithPriority].
type Priority int

// Priorities. PriorityNormal is the zero value, so a context without a
// priority is normal.
const (
	PriorityLow      Priority = -1
	PriorityNormal   Priority = 0
	PriorityHigh     Priority = 1
	PriorityCritical Priority = 2
)

// String returns "low", "normal", "high", "critical", or the number for any
// other value.
func (p Priority) String() string {
	switch p {
	case PriorityLow:
		return "low"
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityCritical:
		return "critical"
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

type priorityKey struct{}

// WithPriority returns a copy of ctx that gives requests made with it
// priority p in the pacer's queue.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority ctx carries: PriorityNormal when none.
func PriorityOf(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return PriorityNormal
}

// pwaiter is a request waiting in a partition's queue.
type pwaiter struct {
	prio    Priority
	seq     uint64
	cost    pcost
	arrived time.Time
	index   int           // in the heap; -1 once removed
	wake    chan struct{} // buffered 1: "look again"
}

// before reports whether a goes before b: higher priority, then arrival.
func (a *pwaiter) before(b *pwaiter) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	return a.seq < b.seq
}

// notify wakes w if it is not already due to look again.
func (w *pwaiter) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pqueue is a partition's waiting requests, a heap on pwaiter.before.
type pqueue []*pwaiter

func (q pqueue) Len() int           { return len(q) }
func (q pqueue) Less(i, j int) bool { return q[i].before(q[j]) }
func (q pqueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *pqueue) Push(x any) {
	w := x.(*pwaiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *pqueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	w.index = -1
	return w
}

// head returns the first waiter, or nil.
func (q pqueue) head() *pwaiter {
	if len(q) == 0 {
		return nil
	}
	return q[0]
}

// push adds w.
func (q *pqueue) push(w *pwaiter) { heap.Push(q, w) }

// remove takes w out of the queue if it is still in it, and wakes the new
// head when w was the head.
func (q *pqueue) remove(w *pwaiter) {
	if w.index < 0 {
		return
	}
	wasHead := w.index == 0
	heap.Remove(q, w.index)
	if h := q.head(); wasHead && h != nil {
		h.notify()
	}
}

// ahead returns the summed cost and the number of the waiters that go
// before w (w itself excluded).
func (q pqueue) ahead(w *pwaiter) (sum pcost, n int) {
	for _, o := range q {
		if o != w && o.before(w) {
			sum.add(&o.cost)
			n++
		}
	}
	return sum, n
}
