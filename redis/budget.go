package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/llmhttp/llmhttp"
)

// budgetStore is the [llmhttp.BudgetStore] of a Store.
type budgetStore struct {
	st    *Store
	local llmhttp.MemoryBudgetStore
}

var _ llmhttp.BudgetStore = (*budgetStore)(nil)

// Budgets returns the store as an [llmhttp.BudgetStore], for
// [llmhttp.BudgetSettings.Store]: every process using it spends the same
// budgets. A budget's counts are one Redis hash, Prefix + "budget:" + its
// name (and "|" + tenant for a per-tenant budget), of one field per slot
// of its window; it expires when its newest slot has left the window.
//
// When Redis is out of use (see [Store]), the budgets are counted in the
// process (an [llmhttp.MemoryBudgetStore]) until it answers again: each
// process then enforces the whole budget on its own, and the counts of the
// outage are not carried over to Redis.
func (st *Store) Budgets() llmhttp.BudgetStore { return &st.budgets }

// Add implements [llmhttp.BudgetStore].
func (b *budgetStore) Add(ctx context.Context, key string, w llmhttp.BudgetWindow, at, now time.Time, delta llmhttp.BudgetCounts, usage []llmhttp.BudgetCounts) error {
	if w.Width <= 0 || w.Slots <= 0 {
		clear(usage)
		return nil
	}
	cur := w.Slot(now)
	first := cur - int64(w.Slots) + 1
	slot := min(w.Slot(at), cur)
	if slot < first {
		delta = llmhttp.BudgetCounts{} // its slot has left the window
	}
	// The key lives until the slot written leaves the window, and a slot
	// more for clocks that disagree.
	ttl := time.Unix(0, (slot+int64(w.Slots)+1)*int64(w.Width)).Sub(now)
	var res []any
	err := b.st.call(ctx, func(ctx context.Context) error {
		var err error
		res, err = budgetScript.Run(ctx, b.st.rdb, []string{b.st.s.Prefix + "budget:" + key},
			slot, delta.Requests, delta.InputTokens, delta.OutputTokens, first, cur, max(ttl.Milliseconds(), 1)).Slice()
		return err
	})
	if err != nil {
		return b.local.Add(ctx, key, w, at, now, delta, usage)
	}
	clear(usage)
	for i := 0; i+3 < len(res); i += 4 {
		n, ok := res[i].(int64)
		if !ok || n < first || n > cur || int(n-first) >= len(usage) {
			continue
		}
		usage[n-first] = llmhttp.BudgetCounts{Requests: asInt(res[i+1]), InputTokens: asInt(res[i+2]), OutputTokens: asInt(res[i+3])}
	}
	return nil
}

// asInt returns a script's integer reply v, 0 when it is not one.
func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
