package llmhttp

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSendOnDone checks the answer time the layers hand back (see
// infoTripper): the pacer's is when the answer came, read once after it;
// a RoundTripper of another package gives none.
func TestSendOnDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			time.Sleep(3 * time.Second)
			return llmhttptest.OKTransport().RoundTrip(req)
		})
		req := func() *http.Request {
			req, err := http.NewRequest(http.MethodPost, "https://api.openai.test/v1/chat/completions", nil)
			require.NoError(t, err)
			return req
		}

		start := time.Now()
		resp, done, err := sendOn(slow, req(), nil, start)
		require.NoError(t, err)
		resp.Body.Close()
		assert.True(t, done.IsZero(), "a foreign RoundTripper reads no clock for the layers")

		p := NewPacer(PacerSettings{})
		start = time.Now()
		resp, done, err = sendOn(p.Wrap(slow), req(), nil, start)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, start.Add(3*time.Second), done, "the pacer's answer time")

		assert.Equal(t, done, answeredAt(done))
		assert.Equal(t, time.Now(), answeredAt(time.Time{}), "no answer time: the clock")
	})
}

// TestBreakerIsLateTakesTheAnswerTime checks that the breaker judges a
// request late by the answer time a layer below read, and by the clock only
// when there is none.
func TestBreakerIsLateTakesTheAnswerTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(BreakerSettings{Window: 30 * time.Second})
		c := b.newCircuit("k")
		a := admission{at: time.Now(), gen: c.gen.Load()}
		failed := classOutcome(ClassServer)

		assert.True(t, b.isLate(c, a, a.at.Add(28*time.Second), failed), "answered after 9/10 of the window")
		assert.False(t, b.isLate(c, a, a.at.Add(26*time.Second), failed))
		assert.False(t, b.isLate(c, a, time.Time{}, failed), "no answer time, and no time passed")
		assert.False(t, b.isLate(c, a, a.at.Add(28*time.Second), errBreakerIgnored), "an ignored outcome is never refiled")

		time.Sleep(28 * time.Second)
		assert.True(t, b.isLate(c, a, time.Time{}, failed), "no answer time: the clock says late")
	})
}

// TestAttemptObserverDuration checks that an attempt is timed to its
// answer: by the answer time the pacer below read, or by the clock over a
// RoundTripper of another package.
func TestAttemptObserverDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			time.Sleep(3 * time.Second)
			return llmhttptest.OKTransport().RoundTrip(req)
		})
		var got []time.Duration
		obs := &Observer{OnAttempt: func(e AttemptEvent) { got = append(got, e.Duration) }}
		for _, next := range []http.RoundTripper{slow, NewPacer(PacerSettings{}).Wrap(slow)} {
			a := &attemptObserver{next: next, obs: obs, classify: Classify}
			req, err := http.NewRequest(http.MethodPost, "https://api.openai.test/v1/chat/completions", nil)
			require.NoError(t, err)
			resp, err := a.RoundTrip(req)
			require.NoError(t, err)
			resp.Body.Close()
		}
		assert.Equal(t, []time.Duration{3 * time.Second, 3 * time.Second}, got)
	})
}
