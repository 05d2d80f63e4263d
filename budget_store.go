package llmhttp

import (
	"context"
	"sync"
	"time"
)

// BudgetCounts is what a budget counts: requests, input tokens and output
// tokens. A budget's Tokens limit applies to InputTokens + OutputTokens.
type BudgetCounts struct {
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

// Tokens returns InputTokens + OutputTokens.
func (c BudgetCounts) Tokens() int64 { return c.InputTokens + c.OutputTokens }

// IsZero reports whether every count is 0.
func (c BudgetCounts) IsZero() bool { return c == BudgetCounts{} }

func (c BudgetCounts) add(o BudgetCounts) BudgetCounts {
	return BudgetCounts{c.Requests + o.Requests, c.InputTokens + o.InputTokens, c.OutputTokens + o.OutputTokens}
}

func (c BudgetCounts) sub(o BudgetCounts) BudgetCounts {
	return BudgetCounts{c.Requests - o.Requests, c.InputTokens - o.InputTokens, c.OutputTokens - o.OutputTokens}
}

// floor returns c with every negative count raised to 0.
func (c BudgetCounts) floor() BudgetCounts {
	return BudgetCounts{max(c.Requests, 0), max(c.InputTokens, 0), max(c.OutputTokens, 0)}
}

// BudgetWindow is how a budget's counts are kept in time: in Slots
// consecutive slots of Width each, numbered from the Unix epoch, so that
// every process sharing a store agrees on them. The window at time t is the
// Slots slots up to and including t's; a count leaves the window when its
// slot does. Slots 1 is a fixed window (a day's resets at 00:00 UTC); more
// slots make a rolling window that moves on by Width.
type BudgetWindow struct {
	Width time.Duration
	Slots int
}

// Slot returns the number of the slot that holds t.
func (w BudgetWindow) Slot(t time.Time) int64 {
	ns := t.UnixNano()
	s := ns / int64(w.Width)
	if ns < 0 && ns%int64(w.Width) != 0 {
		s--
	}
	return s
}

// start returns when slot s begins.
func (w BudgetWindow) start(s int64) time.Time { return time.Unix(0, s*int64(w.Width)) }

// BudgetStore keeps the counts of budgets. The default, [MemoryBudgetStore],
// keeps them in the process; a shared store (Redis) lets several processes
// spend one budget. Implementations must be safe for concurrent use; the
// budget layer never holds a lock while it calls them.
type BudgetStore interface {
	// Add adds delta to key's counts in the slot of w that holds at — or
	// drops delta when that slot is no longer in the window ending at now —
	// then copies key's counts in each slot of the window ending at now
	// into usage, oldest first (len(usage) == w.Slots). A zero delta only
	// reads. Counts may go negative after a refund; readers floor each
	// total at 0. Add should return promptly: the budget layer calls it
	// before each request is sent and when its response's body ends.
	Add(ctx context.Context, key string, w BudgetWindow, at, now time.Time, delta BudgetCounts, usage []BudgetCounts) error
}

// MemoryBudgetStore is a [BudgetStore] in memory: the default. The zero
// value is ready to use. It keeps Slots counters per key and forgets keys
// whose window has emptied once it holds more than MaxKeys of them. It is
// safe for concurrent use by multiple goroutines.
type MemoryBudgetStore struct {
	// MaxKeys is the number of keys above which keys with nothing left in
	// their window are forgotten. 0 means 10,000.
	MaxKeys int

	mu      sync.Mutex
	keys    map[string]*memBudgetKey
	sweepAt int
}

// memBudgetKey is one key's slots, a ring indexed by slot number.
type memBudgetKey struct {
	w     BudgetWindow
	slots []memBudgetSlot
	last  int64 // the newest slot written
}

type memBudgetSlot struct {
	n int64 // the slot's number; its counts are stale when it differs
	c BudgetCounts
}

var _ BudgetStore = (*MemoryBudgetStore)(nil)

// Add implements [BudgetStore].
func (s *MemoryBudgetStore) Add(_ context.Context, key string, w BudgetWindow, at, now time.Time, delta BudgetCounts, usage []BudgetCounts) error {
	cur := w.Slot(now)
	first := cur - int64(w.Slots) + 1
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]*memBudgetKey)
	}
	k := s.keys[key]
	if k == nil || k.w != w {
		k = &memBudgetKey{w: w, slots: make([]memBudgetSlot, w.Slots), last: -1 << 62}
		for i := range k.slots {
			k.slots[i].n = -1 << 62
		}
		s.sweep(now)
		s.keys[key] = k
	}
	if !delta.IsZero() {
		if n := min(w.Slot(at), cur); n >= first {
			sl := &k.slots[ringIndex(n, w.Slots)]
			if sl.n != n {
				*sl = memBudgetSlot{n: n}
			}
			sl.c = sl.c.add(delta)
			k.last = max(k.last, n)
		}
	}
	for i := range usage {
		n := first + int64(i)
		if sl := &k.slots[ringIndex(n, w.Slots)]; sl.n == n {
			usage[i] = sl.c
		} else {
			usage[i] = BudgetCounts{}
		}
	}
	return nil
}

// ringIndex returns the ring position of slot n.
func ringIndex(n int64, slots int) int {
	i := n % int64(slots)
	if i < 0 {
		i += int64(slots)
	}
	return int(i)
}

// sweep is called before a key is added: once that would make more than
// MaxKeys, it forgets the keys whose window at now is empty; the next sweep
// waits until the map has doubled.
func (s *MemoryBudgetStore) sweep(now time.Time) {
	limit := s.MaxKeys
	if limit <= 0 {
		limit = 10_000
	}
	if s.sweepAt < limit {
		s.sweepAt = limit
	}
	if len(s.keys) < s.sweepAt {
		return
	}
	for key, k := range s.keys {
		if k.last < k.w.Slot(now)-int64(k.w.Slots)+1 {
			delete(s.keys, key)
		}
	}
	s.sweepAt = max(limit, 2*len(s.keys))
}
