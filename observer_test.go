package llmhttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// obKey is the API key of the observer tests; no event, log line or label
// may contain it.
const obKey = "sk-ant-observer-secret-0123456789"

// obRecorder is an Observer that records every event, in order.
type obRecorder struct {
	mu       sync.Mutex
	log      []string // one line per event, for order assertions
	requests []llmhttp.RequestEvent
	starts   []llmhttp.AttemptEvent
	attempts []llmhttp.AttemptEvent
	retries  []llmhttp.RetryEvent
	waits    []llmhttp.WaitEvent
	gates    []llmhttp.GateEvent
	breakers []llmhttp.BreakerEvent
	refusals []llmhttp.RefusalEvent
	usage    []llmhttp.TokenUsageEvent
	budgets  []llmhttp.ThresholdEvent
}

func (r *obRecorder) add(line string, f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, line)
	f()
}

func (r *obRecorder) observer() *llmhttp.Observer {
	return &llmhttp.Observer{
		OnRequest: func(e llmhttp.RequestEvent) {
			r.add(fmt.Sprintf("request %d %s attempts=%d retries=%d", e.Status, e.Class, e.Attempts, e.Retries),
				func() { r.requests = append(r.requests, e) })
		},
		OnAttemptStart: func(e llmhttp.AttemptEvent) {
			r.add(fmt.Sprintf("start %d", e.Attempt), func() { r.starts = append(r.starts, e) })
		},
		OnAttempt: func(e llmhttp.AttemptEvent) {
			r.add(fmt.Sprintf("attempt %d %d %s", e.Attempt, e.Status, e.Class), func() { r.attempts = append(r.attempts, e) })
		},
		OnRetry: func(e llmhttp.RetryEvent) {
			r.add(fmt.Sprintf("retry %d %s %v", e.Attempt, e.Class, e.Delay), func() { r.retries = append(r.retries, e) })
		},
		OnWait: func(e llmhttp.WaitEvent) {
			r.add(fmt.Sprintf("wait %s %v", e.Cause, e.Waited), func() { r.waits = append(r.waits, e) })
		},
		OnGate: func(e llmhttp.GateEvent) {
			r.add(fmt.Sprintf("gate closed=%v", e.Closed), func() { r.gates = append(r.gates, e) })
		},
		OnBreakerStateChange: func(e llmhttp.BreakerEvent) {
			r.add(fmt.Sprintf("breaker %s->%s", e.From, e.To), func() { r.breakers = append(r.breakers, e) })
		},
		OnRefusal: func(e llmhttp.RefusalEvent) {
			r.add(fmt.Sprintf("refusal %s retried=%v", e.Refusal.Reason, e.Retried), func() { r.refusals = append(r.refusals, e) })
		},
		OnUsage: func(e llmhttp.TokenUsageEvent) {
			r.add(fmt.Sprintf("usage %d/%d", e.Usage.InputTokens, e.Usage.OutputTokens), func() { r.usage = append(r.usage, e) })
		},
		OnBudgetThreshold: func(e llmhttp.ThresholdEvent) {
			r.add(fmt.Sprintf("budget %s %.1f", e.Budget, e.Threshold), func() { r.budgets = append(r.budgets, e) })
		},
	}
}

// lines returns a copy of the event log.
func (r *obRecorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// obExact makes every wait exact: no jitter on retries or releases.
var obExact = []llmhttp.Option{
	llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{Jitter: func(d time.Duration) time.Duration { return d }}),
	llmhttp.WithPacerSettings(llmhttp.PacerSettings{
		Jitter:         func(time.Duration) time.Duration { return 0 },
		OverloadFactor: -1,
	}),
}

const obPrompt = "Summarise the observer tests in one line, please." // 49 characters: 13 tokens

// obRequest returns an Anthropic Messages request for the fake.
func obRequest(ctx context.Context, t *testing.T) *http.Request {
	t.Helper()
	body := `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"` + obPrompt + `"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.anthropic.test/v1/messages", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("x-api-key", obKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	return req
}

// obDo sends req through rt and reads the response to its end.
func obDo(t *testing.T, rt http.RoundTripper, req *http.Request) (int, error) {
	t.Helper()
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// The proof: a scripted llmhttptest workload — two 429s with retry-after,
// one 529, then successes — produces exactly these events and counters.
func TestObserverScriptedWorkload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output: func(llmhttptest.Request) int64 { return 20 },
			Faults: []llmhttptest.Fault{
				{Kind: llmhttptest.RateLimit, Count: 2, RetryAfter: 2 * time.Second},
				{Kind: llmhttptest.Overloaded, Count: 1},
			},
		})
		var rec obRecorder
		tr := llmhttp.New(h.Transport(), append(obExact, llmhttp.WithObserver(rec.observer()))...)

		start := time.Now()
		for range 3 {
			code, err := obDo(t, tr, obRequest(t.Context(), t))
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
		}
		// 2 s + 2 s of retry-after and 1 s of backoff; the fake answers at once.
		assert.Equal(t, 5*time.Second, time.Since(start))

		assert.Equal(t, []string{
			"start 1", "attempt 1 429 rate_limited",
			"gate closed=true",
			"retry 1 rate_limited 2s", "wait retry_after 2s",
			"gate closed=false", "start 2", "attempt 2 429 rate_limited",
			"gate closed=true",
			"retry 2 rate_limited 2s", "wait retry_after 2s",
			"gate closed=false", "start 3", "attempt 3 529 overloaded",
			"retry 3 overloaded 1s", "wait backoff 1s",
			"start 4", "attempt 4 200 ok",
			"request 200 ok attempts=4 retries=3",
			"usage 13/20",
			"start 1", "attempt 1 200 ok", "request 200 ok attempts=1 retries=0", "usage 13/20",
			"start 1", "attempt 1 200 ok", "request 200 ok attempts=1 retries=0", "usage 13/20",
		}, rec.lines())

		part := llmhttp.Partition{Host: "https://api.anthropic.test", Credential: llmhttp.Fingerprint(obKey),
			Model: "claude-sonnet-4-5"}
		for _, e := range rec.attempts {
			assert.Equal(t, part, e.Partition)
			assert.Zero(t, e.Duration, "the fake answers at once")
		}
		for _, e := range rec.waits {
			assert.Equal(t, part, e.Partition)
		}
		for _, e := range rec.gates {
			assert.Equal(t, part, e.Partition)
		}
		require.Len(t, rec.requests, 3)
		assert.Equal(t, 5*time.Second, rec.requests[0].Duration)
		assert.Equal(t, llmhttp.ProviderAnthropic, rec.requests[0].Provider)

		// The server agrees with the counters.
		srv := h.Stats()
		assert.Equal(t, map[int]int64{200: 3, 429: 2, 529: 1}, srv.ByStatus)
		sp := srv.Partitions[llmhttptest.Key{Provider: llmhttptest.Anthropic, Credential: llmhttptest.Fingerprint(obKey),
			Model: "claude-sonnet-4-5"}]
		stats := tr.Stats()
		require.Len(t, stats, 1)
		st := stats[0]
		assert.Equal(t, part, st.Partition)
		assert.EqualValues(t, 3, st.Requests)
		assert.EqualValues(t, 6, st.Attempts)
		assert.EqualValues(t, 3, st.Retries)
		assert.EqualValues(t, 2, st.RateLimited)
		assert.EqualValues(t, 1, st.ServerErrors)
		assert.EqualValues(t, 0, st.Refusals)
		assert.Equal(t, sp.InputTokens, st.InputTokens)
		assert.Equal(t, sp.OutputTokens, st.OutputTokens)
		assert.EqualValues(t, 39, st.InputTokens)
		assert.EqualValues(t, 60, st.OutputTokens)
		assert.Equal(t, llmhttp.StateClosed, st.Breaker)
		assert.False(t, st.GateClosed)
		assert.EqualValues(t, 50, st.Pacer.Requests.Limit, "the pacer's limits are in the snapshot")
		assert.Equal(t, part, st.Pacer.Partition)
	})
}

// Without an observer the Transport still counts everything but tokens,
// which it counts only when it reads usage.
func TestStatsWithoutObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.ServerError, Count: 1}},
		})
		tr := llmhttp.New(h.Transport(), obExact...)
		for range 2 {
			code, err := obDo(t, tr, obRequest(t.Context(), t))
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
		}
		st := tr.Stats()
		require.Len(t, st, 1)
		assert.EqualValues(t, 2, st[0].Requests)
		assert.EqualValues(t, 3, st[0].Attempts)
		assert.EqualValues(t, 1, st[0].Retries)
		assert.EqualValues(t, 1, st[0].ServerErrors)
		assert.Zero(t, st[0].InputTokens)
		assert.Zero(t, st[0].OutputTokens)
	})
}

// A transport without a retry layer counts its single attempts itself.
func TestStatsWithoutRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: time.Second}},
		})
		var rec obRecorder
		tr := llmhttp.New(h.Transport(), llmhttp.WithoutRetry(), llmhttp.WithObserver(rec.observer()))
		code, err := obDo(t, tr, obRequest(t.Context(), t))
		require.NoError(t, err)
		assert.Equal(t, http.StatusTooManyRequests, code)
		time.Sleep(time.Second) // the gate opens
		code, err = obDo(t, tr, obRequest(t.Context(), t))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		st := tr.Stats()
		require.Len(t, st, 1)
		assert.EqualValues(t, 2, st[0].Requests)
		assert.EqualValues(t, 2, st[0].Attempts)
		assert.EqualValues(t, 1, st[0].RateLimited)
		assert.EqualValues(t, 0, st[0].Retries)
		require.Len(t, rec.requests, 2)
		assert.Equal(t, 1, rec.requests[0].Attempts)
		assert.Equal(t, llmhttp.ClassRateLimited, rec.requests[0].Class)
		assert.Equal(t, 1, rec.requests[1].Attempts)
	})
}

// Refusals are reported once each: a final one by the Transport, one the
// retry layer waits out (an open circuit) as Retried.
func TestObserverRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			calls++
			if calls == 1 {
				return pcResp(http.StatusServiceUnavailable, `{"error":{"type":"server_error","message":"down"}}`), nil
			}
			return trOK(req)
		})
		var rec obRecorder
		tr := llmhttp.New(base,
			llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{Jitter: func(d time.Duration) time.Duration { return d }}),
			llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{ConsecutiveFailures: 1, OpenDuration: 5 * time.Second}),
			llmhttp.WithoutPacing(),
			llmhttp.WithObserver(rec.observer()))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.openai.test/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		req.Header.Set("Authorization", "Bearer "+obKey)
		code, err := obDo(t, tr, req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, []string{
			"start 1", "attempt 1 503 server",
			"breaker closed->open",
			"retry 1 server 1s", "wait backoff 1s",
			"refusal circuit-open retried=true",
			"retry 2 local 4s", "wait breaker 4s",
			"breaker open->half-open",
			"start 3", "attempt 3 200 ok",
			"breaker half-open->closed",
			"request 200 ok attempts=2 retries=2",
		}, rec.lines())
		require.Len(t, rec.breakers, 3)
		assert.Equal(t, llmhttp.Partition{Host: "https://api.openai.test", Model: "gpt-4o"}, rec.breakers[0].Partition)
		assert.Equal(t, "https://api.openai.test|gpt-4o", rec.breakers[0].Key)
		assert.False(t, rec.breakers[0].Until.IsZero())
		assert.True(t, rec.breakers[1].Until.IsZero())
		st := tr.Stats()
		require.Len(t, st, 1)
		assert.EqualValues(t, 1, st[0].Refusals)
		assert.EqualValues(t, 2, st[0].Attempts)
		assert.EqualValues(t, 2, st[0].Retries)
		assert.Equal(t, llmhttp.StateClosed, st[0].Breaker)

		// A refusal that is the final answer, in typed-error mode too.
		rec2 := obRecorder{}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		gated := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			return pcResp(http.StatusTooManyRequests, `{}`, "Retry-After", "30"), nil
		})
		tr3 := llmhttp.New(gated, llmhttp.WithoutRetry(), llmhttp.WithRefusalErrors(), llmhttp.WithObserver(rec2.observer()),
			llmhttp.WithPacerSettings(llmhttp.PacerSettings{MaxWait: time.Second}))
		for i := range 2 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.openai.test/v1/chat/completions",
				strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
			_, err := tr3.RoundTrip(req)
			if i == 1 {
				require.ErrorIs(t, err, llmhttp.ErrWaitTooLong)
			}
		}
		require.Len(t, rec2.refusals, 1)
		assert.Equal(t, llmhttp.ReasonWaitTooLong, rec2.refusals[0].Refusal.Reason)
		assert.False(t, rec2.refusals[0].Retried)
		require.Len(t, rec2.requests, 2)
		assert.Equal(t, llmhttp.ClassLocal, rec2.requests[1].Class)
		assert.Equal(t, 0, rec2.requests[1].Attempts)
		require.NotNil(t, rec2.requests[1].Refusal)
		assert.EqualValues(t, 1, tr3.Stats()[0].Refusals)
	})
}

// Hooks run outside llmhttp's locks: each may call back into the transport.
func TestObserverHooksOutsideLocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{
				{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: time.Second},
				{Kind: llmhttptest.ServerError, Count: 1},
			},
		})
		var tr *llmhttp.Transport
		calls := 0
		reenter := func() { calls++; _ = tr.Stats() }
		tr = llmhttp.New(h.Transport(), llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{ConsecutiveFailures: 1, OpenDuration: time.Second}),
			llmhttp.WithObserver(&llmhttp.Observer{
				OnRequest:            func(llmhttp.RequestEvent) { reenter() },
				OnAttempt:            func(llmhttp.AttemptEvent) { reenter() },
				OnRetry:              func(llmhttp.RetryEvent) { reenter() },
				OnWait:               func(llmhttp.WaitEvent) { reenter() },
				OnGate:               func(llmhttp.GateEvent) { reenter() },
				OnBreakerStateChange: func(llmhttp.BreakerEvent) { reenter() },
				OnRefusal:            func(llmhttp.RefusalEvent) { reenter() },
				OnUsage:              func(llmhttp.TokenUsageEvent) { reenter() },
			}))
		code, err := obDo(t, tr, obRequest(t.Context(), t))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		assert.Greater(t, calls, 10)
	})
}

// Several observers compose, in order; a nil one is ignored.
func TestObserversCompose(t *testing.T) {
	var order []string
	mk := func(name string) *llmhttp.Observer {
		return &llmhttp.Observer{
			OnAttempt: func(llmhttp.AttemptEvent) { order = append(order, name+":attempt") },
			OnRequest: func(llmhttp.RequestEvent) { order = append(order, name+":request") },
		}
	}
	tr := llmhttp.New(llmhttp.RoundTripFunc(trOK), llmhttp.WithObserver(mk("a")), llmhttp.WithObserver(nil),
		llmhttp.WithObserver(&llmhttp.Observer{}), llmhttp.WithObserver(mk("b")))
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/v1/models", nil)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"a:attempt", "b:attempt", "a:request", "b:request"}, order)
}

// The retry layer marks each retry's context with its resend count, for
// OpenTelemetry's http.request.resend_count.
func TestResendCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []int
		base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			seen = append(seen, llmhttp.ResendCount(req.Context()))
			if len(seen) < 3 {
				return pcResp(http.StatusInternalServerError, `{}`), nil
			}
			return trOK(req)
		})
		rt := llmhttp.Chain(base, llmhttp.Retry(llmhttp.RetryPolicy{}))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.example.test/v1/x", strings.NewReader(`{}`))
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, []int{0, 1, 2}, seen)
		assert.Equal(t, 0, llmhttp.ResendCount(req.Context()), "the caller's context is untouched")
	})
}

// Components built apart take an observer through their settings.
func TestObserverSharedComponents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: time.Second}},
		})
		var rec obRecorder
		o := rec.observer()
		var own []string
		p := llmhttp.NewPacer(o.PacerSettings(llmhttp.PacerSettings{
			OnGate: func(e llmhttp.GateEvent) { own = append(own, fmt.Sprint("own gate ", e.Closed)) },
		}))
		b := llmhttp.NewBreaker(o.BreakerSettings(llmhttp.BreakerSettings{}))
		rt := llmhttp.Chain(h.Transport(), llmhttp.Retry(o.RetryPolicy(llmhttp.RetryPolicy{
			Jitter: func(d time.Duration) time.Duration { return d },
		})), b.Wrap, p.Wrap)
		code, err := obDo(t, rt, obRequest(t.Context(), t))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, []string{"own gate true", "own gate false"}, own)
		assert.Equal(t, []string{
			"gate closed=true", "retry 1 rate_limited 1s", "wait retry_after 1s", "gate closed=false",
		}, rec.lines())
		var nilObs *llmhttp.Observer
		assert.NotPanics(t, func() {
			nilObs.PacerSettings(llmhttp.PacerSettings{})
			nilObs.BreakerSettings(llmhttp.BreakerSettings{})
			nilObs.RetryPolicy(llmhttp.RetryPolicy{})
		})
	})
}

// A half-open circuit's waiting requests report their wait.
func TestObserverBreakerProbeWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls int
		var mu sync.Mutex
		base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n == 1 {
				return pcResp(http.StatusInternalServerError, `{}`), nil
			}
			if n == 2 {
				<-release // the probe takes its time
			}
			return trOK(req)
		})
		var rec obRecorder
		tr := llmhttp.New(base, llmhttp.WithoutRetry(), llmhttp.WithoutPacing(),
			llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{ConsecutiveFailures: 1, OpenDuration: time.Second}),
			llmhttp.WithObserver(&llmhttp.Observer{OnWait: rec.observer().OnWait}))
		send := func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.example.test/v1/x",
				strings.NewReader(`{"model":"m"}`))
			resp, err := tr.RoundTrip(req)
			if assert.NoError(t, err) {
				resp.Body.Close()
			}
		}
		send()
		time.Sleep(time.Second) // half-open
		var wg sync.WaitGroup
		wg.Go(send) // the probe
		synctest.Wait()
		wg.Go(send) // waits for the probe
		synctest.Wait()
		time.Sleep(3 * time.Second)
		close(release)
		wg.Wait()
		assert.Equal(t, []string{"wait breaker 3s"}, rec.lines())
	})
}

// WithBudgetSettings builds the budget layer in front of the chain; the
// observers get its thresholds and its refusals.
func TestObserverBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: func(llmhttptest.Request) int64 { return 20 }})
		var rec obRecorder
		tr := llmhttp.New(h.Transport(), llmhttp.WithObserver(rec.observer()),
			llmhttp.WithBudgetSettings(llmhttp.BudgetSettings{Budgets: map[string]llmhttp.Budget{
				"feature": {Requests: 3, Thresholds: []float64{0.5}, All: true},
			}}))
		require.NotNil(t, tr.Budgets())
		for range 4 {
			_, err := obDo(t, tr, obRequest(t.Context(), t))
			require.NoError(t, err)
		}
		require.Len(t, rec.budgets, 1)
		assert.Equal(t, "feature", rec.budgets[0].Budget)
		require.Len(t, rec.refusals, 1)
		assert.Equal(t, llmhttp.ReasonBudgetExhausted, rec.refusals[0].Refusal.Reason)
		st := tr.Stats()
		require.Len(t, st, 1)
		assert.EqualValues(t, 4, st[0].Requests)
		assert.EqualValues(t, 3, st[0].Attempts)
		assert.EqualValues(t, 1, st[0].Refusals)
		assert.EqualValues(t, 39, st[0].InputTokens, "a budget layer reads usage")
		assert.EqualValues(t, 60, st[0].OutputTokens)
	})
}

// No event, and no Stats row, carries the API key.
func TestObserverNeverShowsTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: time.Second}},
		})
		var rec obRecorder
		tr := llmhttp.New(h.Transport(), llmhttp.WithObserver(rec.observer()))
		_, err := obDo(t, tr, obRequest(t.Context(), t))
		require.NoError(t, err)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, v := range []any{rec.attempts, rec.waits, rec.gates, rec.usage, tr.Stats()} {
			s := fmt.Sprintf("%+v", v)
			assert.NotContains(t, s, obKey)
		}
		for _, e := range rec.requests {
			assert.NotContains(t, fmt.Sprintf("%+v %+v", e.Partition, e.Refusal), obKey)
		}
	})
}

// WithBudgets puts a shared budget layer in front; its own hooks stay its
// own, and the Transport still counts its refusals.
func TestWithBudgetsShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{})
		var thresholds int
		b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets:     map[string]llmhttp.Budget{"f": {Requests: 1, All: true}},
			OnThreshold: func(llmhttp.ThresholdEvent) { thresholds++ },
		})
		var rec obRecorder
		tr := llmhttp.New(h.Transport(), llmhttp.WithBudgets(b), llmhttp.WithObserver(rec.observer()))
		assert.Same(t, b, tr.Budgets())
		for _, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
			code, err := obDo(t, tr, obRequest(t.Context(), t))
			require.NoError(t, err)
			assert.Equal(t, want, code)
		}
		assert.Equal(t, 2, thresholds, "0.7 and 0.9 of one request")
		assert.Empty(t, rec.budgets, "a shared layer keeps its own hooks")
		require.Len(t, rec.refusals, 1)
		assert.EqualValues(t, 1, tr.Stats()[0].Refusals)
		assert.Nil(t, llmhttp.New(nil).Budgets())
	})
}
