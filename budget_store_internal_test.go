package llmhttp

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestMemoryBudgetStoreForgetsIdleKeys: past MaxKeys, keys whose window has
// emptied are forgotten; keys still counting are kept.
func TestMemoryBudgetStoreForgetsIdleKeys(t *testing.T) {
	s := &MemoryBudgetStore{MaxKeys: 4}
	w := BudgetWindow{Width: time.Minute, Slots: 2}
	out := make([]BudgetCounts, 2)
	one := BudgetCounts{Requests: 1}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, k := range []string{"a", "b", "c", "busy"} {
		s.Add(context.Background(), k, w, t0, t0, one, out)
	}
	now := t0.Add(3 * time.Minute)
	s.Add(context.Background(), "busy", w, now, now, one, out)
	s.Add(context.Background(), "new", w, now, now, one, out) // the fifth key: a sweep
	var keys []string
	for k := range s.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	assert.Equal(t, []string{"busy", "new"}, keys)
}
