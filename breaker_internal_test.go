package llmhttp

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// report is the hook a stream tap uses for a failure found after the head.
func TestBreakerReportLateOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []string
		b := NewBreaker(BreakerSettings{OnStateChange: func(key string, from, to State) {
			changes = append(changes, key+" "+from.String()+"→"+to.String())
		}})
		const key = "https://api.anthropic.com|claude-x"
		for _, c := range []Class{ClassRateLimited, ClassSlowDown, ClassQuota, ClassAuth, ClassClient,
			ClassTooLarge, ClassCanceled, ClassLocal, Class(99)} {
			b.report(key, c)
		}
		assert.Equal(t, BreakerCounts{}, b.Counts(key), "ignored classes are not even admitted")

		b.report(key, ClassOK)
		assert.Equal(t, BreakerCounts{Requests: 1, Successes: 1, ConsecutiveSuccesses: 1}, b.Counts(key))
		for range 4 {
			b.report(key, ClassOverloaded)
			b.report(key, ClassNetwork)
		}
		assert.Equal(t, StateClosed, b.State(key))
		b.report(key, ClassTimeout)
		assert.Equal(t, StateClosed, b.State(key))
		b.report(key, ClassServer) // 10 in a row
		assert.Equal(t, StateOpen, b.State(key))
		assert.Equal(t, []string{key + " closed→open"}, changes)

		b.report(key, ClassServer) // dropped while open
		time.Sleep(30 * time.Second)
		assert.Equal(t, StateHalfOpen, b.State(key))
		b.report(key, ClassOK)
		assert.Equal(t, StateClosed, b.State(key))
	})
}

func TestClassOutcome(t *testing.T) {
	for c := ClassOK; c <= ClassLocal; c++ {
		got := classOutcome(c)
		switch c {
		case ClassOK:
			assert.NoError(t, got, c.String())
		case ClassNetwork, ClassOverloaded, ClassServer, ClassTimeout:
			assert.IsType(t, (*breakerFailure)(nil), got, c.String())
		default:
			assert.Equal(t, errBreakerIgnored, got, c.String())
		}
	}
}
