package llmhttp_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
)

// bsAdd adds delta at at and returns the window at now.
func bsAdd(t *testing.T, s llmhttp.BudgetStore, key string, w llmhttp.BudgetWindow, at, now time.Time, delta llmhttp.BudgetCounts) []llmhttp.BudgetCounts {
	t.Helper()
	out := make([]llmhttp.BudgetCounts, w.Slots)
	require.NoError(t, s.Add(context.Background(), key, w, at, now, delta, out))
	return out
}

func bsTokens(in int64) llmhttp.BudgetCounts {
	return llmhttp.BudgetCounts{Requests: 1, InputTokens: in}
}

// TestMemoryBudgetStoreSlots: counts land in the slot of their time, the
// window moves on slot by slot, a delta for a slot that has left the window
// is dropped, one for the future lands in the current slot, and keys are
// apart.
func TestMemoryBudgetStoreSlots(t *testing.T) {
	s := &llmhttp.MemoryBudgetStore{}
	w := llmhttp.BudgetWindow{Width: time.Minute, Slots: 3}
	t0 := time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	z := llmhttp.BudgetCounts{}

	assert.Equal(t, []llmhttp.BudgetCounts{z, z, bsTokens(10)}, bsAdd(t, s, "a", w, m(0), m(0), bsTokens(10)))
	assert.Equal(t, []llmhttp.BudgetCounts{z, bsTokens(10), bsTokens(20)}, bsAdd(t, s, "a", w, m(1), m(1), bsTokens(20)))
	// A correction to the first slot, made later.
	assert.Equal(t, []llmhttp.BudgetCounts{bsTokens(15), bsTokens(20), z}, bsAdd(t, s, "a", w, m(0), m(2), llmhttp.BudgetCounts{InputTokens: 5}))
	// The first slot leaves the window; a correction to it is dropped.
	assert.Equal(t, []llmhttp.BudgetCounts{bsTokens(20), z, z}, bsAdd(t, s, "a", w, m(0), m(3), llmhttp.BudgetCounts{InputTokens: 99}))
	// A time after now counts now.
	assert.Equal(t, []llmhttp.BudgetCounts{bsTokens(20), z, bsTokens(1)}, bsAdd(t, s, "a", w, m(9), m(3), bsTokens(1)))
	// The ring reuses slots: four minutes on, only the new count is left.
	assert.Equal(t, []llmhttp.BudgetCounts{z, z, bsTokens(2)}, bsAdd(t, s, "a", w, m(7), m(7), bsTokens(2)))
	// Another key, and the same key with another window, start empty.
	assert.Equal(t, []llmhttp.BudgetCounts{z, z, z}, bsAdd(t, s, "b", w, m(7), m(7), z))
	w2 := llmhttp.BudgetWindow{Width: time.Hour, Slots: 1}
	assert.Equal(t, []llmhttp.BudgetCounts{z}, bsAdd(t, s, "a", w2, m(7), m(7), z))
}

// TestBudgetWindowSlot numbers slots from the Unix epoch, also before it.
func TestBudgetWindowSlot(t *testing.T) {
	w := llmhttp.BudgetWindow{Width: 24 * time.Hour, Slots: 1}
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	assert.Equal(t, w.Slot(day), w.Slot(day.Add(24*time.Hour-1)))
	assert.Equal(t, w.Slot(day)+1, w.Slot(day.Add(24*time.Hour)))
	assert.Equal(t, int64(0), w.Slot(time.Unix(0, 0)))
	assert.Equal(t, int64(-1), w.Slot(time.Unix(-1, 0)))
	assert.Equal(t, int64(-1), w.Slot(time.Unix(-86400, 0)))

	s := &llmhttp.MemoryBudgetStore{}
	old := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	w3 := llmhttp.BudgetWindow{Width: time.Minute, Slots: 3}
	assert.Equal(t, []llmhttp.BudgetCounts{{}, {}, bsTokens(4)}, bsAdd(t, s, "k", w3, old, old, bsTokens(4)))
}

// TestMemoryBudgetStoreConcurrent adds from many goroutines (run with
// -race): nothing is lost.
func TestMemoryBudgetStoreConcurrent(t *testing.T) {
	s := &llmhttp.MemoryBudgetStore{}
	w := llmhttp.BudgetWindow{Width: time.Hour, Slots: 1}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			out := make([]llmhttp.BudgetCounts, 1)
			for range 100 {
				s.Add(context.Background(), "k", w, now, now, bsTokens(1), out)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, []llmhttp.BudgetCounts{{Requests: 800, InputTokens: 800}}, bsAdd(t, s, "k", w, now, now, llmhttp.BudgetCounts{}))
}
