package llmhttp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// White-box tests of the budget's state machine, on explicit times.

func TestBudgetDefaultsAndDisabling(t *testing.T) {
	assert.Nil(t, newBudgets(RetryBudget{Capacity: -1}))
	b := newBudgets(RetryBudget{})
	require.NotNil(t, b)
	assert.Equal(t, 20.0, b.capacity)
	assert.Equal(t, 0.25, b.ratio)
	assert.InDelta(t, 20.0/60, b.perSec, 1e-12)
	assert.Zero(t, newBudgets(RetryBudget{RefillPeriod: -1}).perSec)
	assert.InDelta(t, 2.0, newBudgets(RetryBudget{Capacity: 10, RefillPeriod: 5 * time.Second}).perSec, 1e-12)
}

func TestBudgetThresholdIsHalfCapacity(t *testing.T) {
	b := newBudgets(RetryBudget{Capacity: 10, RefillPeriod: -1})
	p := Partition{Host: "https://api.anthropic.com", Model: "m"}
	now := time.Unix(1e9, 0)
	assert.True(t, b.allows(p, now), "an unknown partition is full")
	assert.False(t, b.inDeficit())
	for i := 1; i <= 4; i++ {
		b.fail(p, now)
		assert.True(t, b.allows(p, now), "%d of 10 taken", i)
	}
	assert.True(t, b.inDeficit())
	b.fail(p, now) // 5 left: not more than half
	assert.False(t, b.allows(p, now))
	for range 20 {
		b.fail(p, now)
	}
	assert.Equal(t, 0.0, b.levels[p].tokens, "never below zero")
	assert.True(t, b.allows(Partition{Host: "https://api.openai.com"}, now), "partitions are independent")
}

func TestBudgetSuccessesRefillAndForget(t *testing.T) {
	b := newBudgets(RetryBudget{Capacity: 4, Ratio: 1, RefillPeriod: -1})
	p := Partition{Model: "m"}
	now := time.Unix(1e9, 0)
	b.succeed(p, now) // a full partition has nothing to get back
	assert.Empty(t, b.levels)
	for range 4 {
		b.fail(p, now)
	}
	assert.False(t, b.allows(p, now))
	for range 3 {
		b.succeed(p, now)
	}
	assert.True(t, b.allows(p, now))
	assert.Len(t, b.levels, 1)
	b.succeed(p, now)
	assert.Empty(t, b.levels, "a full bucket is forgotten")
	assert.False(t, b.inDeficit())
}

func TestBudgetTimeRefillAndSweep(t *testing.T) {
	b := newBudgets(RetryBudget{Capacity: 10, RefillPeriod: 10 * time.Second}) // 1 token a second
	now := time.Unix(1e9, 0)
	p, q := Partition{Model: "p"}, Partition{Model: "q"}
	for range 10 {
		b.fail(p, now)
	}
	assert.False(t, b.allows(p, now))
	assert.False(t, b.allows(p, now.Add(5*time.Second)), "5 of 10: not more than half")
	assert.True(t, b.allows(p, now.Add(5*time.Second+time.Millisecond)))
	assert.False(t, b.allows(p, now.Add(-time.Hour)), "a clock going back refills nothing")
	// A new partition in trouble sweeps out those that have refilled.
	b.fail(q, now.Add(9*time.Second))
	assert.Len(t, b.levels, 2, "p is at 9 of 10: kept")
	b.fail(q, now.Add(10*time.Second))
	assert.Len(t, b.levels, 2, "q is known: no sweep")
	r := Partition{Model: "r"}
	b.fail(r, now.Add(10*time.Second))
	assert.Len(t, b.levels, 2, "p refilled and was dropped when r arrived")
	assert.NotContains(t, b.levels, p)
	assert.EqualValues(t, 2, b.n.Load())
}
