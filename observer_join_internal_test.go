package llmhttp

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Joined observers call every hook of each, in order, OnStore included.
func TestJoinObserversCallsEach(t *testing.T) {
	var calls []string
	mk := func(name string) *Observer {
		return &Observer{
			OnStore:           func(StoreEvent) { calls = append(calls, name+" store") },
			OnBudgetThreshold: func(ThresholdEvent) { calls = append(calls, name+" threshold") },
		}
	}
	j := joinObservers(mk("a"), nil, &Observer{}, mk("b"))
	j.OnStore(StoreEvent{Store: "redis"})
	j.OnBudgetThreshold(ThresholdEvent{})
	assert.Equal(t, []string{"a store", "b store", "a threshold", "b threshold"}, calls)
}
