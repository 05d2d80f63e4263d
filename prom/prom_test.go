package prom_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/llmhttp/llmhttp/prom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	apiKey = "sk-ant-prom-secret-0123456789"
	prompt = "Summarise the observer tests in one line, please." // 13 tokens
)

func request(ctx context.Context, t *testing.T) *http.Request {
	body := `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"` + prompt + `"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.anthropic.test/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	return req
}

func do(t *testing.T, rt http.RoundTripper, req *http.Request) int {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

var exact = []llmhttp.Option{
	llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{Jitter: func(d time.Duration) time.Duration { return d }}),
	llmhttp.WithPacerSettings(llmhttp.PacerSettings{Jitter: func(time.Duration) time.Duration { return 0 }, OverloadFactor: -1}),
}

// The proof: a scripted llmhttptest workload — two 429s with retry-after,
// one 529, then successes — produces exactly these metrics.
func TestMetricsOfScriptedWorkload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output: func(llmhttptest.Request) int64 { return 20 },
			Faults: []llmhttptest.Fault{
				{Kind: llmhttptest.RateLimit, Count: 2, RetryAfter: 2 * time.Second},
				{Kind: llmhttptest.Overloaded, Count: 1},
			},
		})
		reg := prometheus.NewPedanticRegistry()
		c, err := prom.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		tr := llmhttp.New(h.Transport(), append(exact, llmhttp.WithObserver(c.Observer()))...)
		c.Watch(tr)
		for range 3 {
			if code := do(t, tr, request(t.Context(), t)); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
		}
		const l = `host="https://api.anthropic.test",model="claude-sonnet-4-5"`
		want := `
# HELP llmhttp_attempts_total Attempts sent to the server, retries included, by HTTP status (error: no response).
# TYPE llmhttp_attempts_total counter
llmhttp_attempts_total{code="200",` + l + `} 3
llmhttp_attempts_total{code="429",` + l + `} 2
llmhttp_attempts_total{code="529",` + l + `} 1
# HELP llmhttp_gate_closures_total Times a response closed (or extended) a partition's gate.
# TYPE llmhttp_gate_closures_total counter
llmhttp_gate_closures_total{` + l + `} 2
# HELP llmhttp_in_flight Requests sent and not finished.
# TYPE llmhttp_in_flight gauge
llmhttp_in_flight{` + l + `} 0
# HELP llmhttp_queued Requests waiting in the pacer.
# TYPE llmhttp_queued gauge
llmhttp_queued{` + l + `} 0
# HELP llmhttp_requests_total Requests carried by llmhttp, by the class of their final answer.
# TYPE llmhttp_requests_total counter
llmhttp_requests_total{class="ok",` + l + `} 3
# HELP llmhttp_retries_total Retries made by llmhttp, by the class of the attempt retried.
# TYPE llmhttp_retries_total counter
llmhttp_retries_total{class="overloaded",` + l + `} 1
llmhttp_retries_total{class="rate_limited",` + l + `} 2
# HELP llmhttp_tokens_total Tokens reported by the responses' usage, by type (input, output, cache_read, cache_write).
# TYPE llmhttp_tokens_total counter
llmhttp_tokens_total{` + l + `,type="input"} 39
llmhttp_tokens_total{` + l + `,type="output"} 60
# HELP llmhttp_wait_seconds Time requests waited in llmhttp, by cause.
# TYPE llmhttp_wait_seconds histogram
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="0.001"} 0
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="0.01"} 0
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="0.05"} 0
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="0.1"} 0
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="0.25"} 0
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="0.5"} 0
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="1"} 1
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="2.5"} 1
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="5"} 1
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="10"} 1
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="30"} 1
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="60"} 1
llmhttp_wait_seconds_bucket{cause="backoff",` + l + `,le="+Inf"} 1
llmhttp_wait_seconds_sum{cause="backoff",` + l + `} 1
llmhttp_wait_seconds_count{cause="backoff",` + l + `} 1
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="0.001"} 0
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="0.01"} 0
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="0.05"} 0
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="0.1"} 0
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="0.25"} 0
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="0.5"} 0
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="1"} 0
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="2.5"} 2
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="5"} 2
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="10"} 2
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="30"} 2
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="60"} 2
llmhttp_wait_seconds_bucket{cause="retry_after",` + l + `,le="+Inf"} 2
llmhttp_wait_seconds_sum{cause="retry_after",` + l + `} 4
llmhttp_wait_seconds_count{cause="retry_after",` + l + `} 2
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
			"llmhttp_attempts_total", "llmhttp_gate_closures_total", "llmhttp_in_flight", "llmhttp_queued",
			"llmhttp_requests_total", "llmhttp_retries_total", "llmhttp_tokens_total", "llmhttp_wait_seconds",
		); err != nil {
			t.Error(err)
		}
		// The whole requests: one of 5 s, two of 0 s.
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			switch f.GetName() {
			case "llmhttp_request_duration_seconds":
				h := f.GetMetric()[0].GetHistogram()
				if h.GetSampleCount() != 3 || h.GetSampleSum() != 5 {
					t.Errorf("request duration: count %d sum %v, want 3 and 5", h.GetSampleCount(), h.GetSampleSum())
				}
			case "llmhttp_attempt_duration_seconds":
				h := f.GetMetric()[0].GetHistogram()
				if h.GetSampleCount() != 6 || h.GetSampleSum() != 0 {
					t.Errorf("attempt duration: count %d sum %v, want 6 and 0", h.GetSampleCount(), h.GetSampleSum())
				}
			case "llmhttp_ratelimit_limit":
				got := map[string]float64{}
				for _, m := range f.GetMetric() {
					for _, lp := range m.GetLabel() {
						if lp.GetName() == "resource" {
							got[lp.GetValue()] = m.GetGauge().GetValue()
						}
					}
				}
				// The fake's Anthropic Tier 1: 50 RPM, 30k ITPM, 8k OTPM.
				if got["requests"] != 50 || got["input_tokens"] != 30000 || got["output_tokens"] != 8000 {
					t.Errorf("ratelimit_limit %v", got)
				}
			}
			for _, m := range f.GetMetric() {
				for _, lp := range m.GetLabel() {
					if strings.Contains(lp.GetValue(), apiKey) || lp.GetValue() == llmhttp.Fingerprint(apiKey) {
						t.Errorf("%s: label %s names the key", f.GetName(), lp.GetName())
					}
				}
			}
		}
	})
}

// Breaker changes, refusals and budget thresholds.
func TestMetricsOfBreakerRefusalsAndBudgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.ServerError, Count: 1}},
		})
		reg := prometheus.NewPedanticRegistry()
		c, err := prom.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		tr := llmhttp.New(h.Transport(), llmhttp.WithObserver(c.Observer()),
			llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{Jitter: func(d time.Duration) time.Duration { return d }}),
			llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{ConsecutiveFailures: 1, OpenDuration: 3 * time.Second}),
			llmhttp.WithBudgetSettings(llmhttp.BudgetSettings{Budgets: map[string]llmhttp.Budget{
				"feature": {Requests: 2, Thresholds: []float64{0.5}, All: true},
			}}))
		for range 3 {
			do(t, tr, request(t.Context(), t))
		}
		const l = `host="https://api.anthropic.test",model="claude-sonnet-4-5"`
		want := `
# HELP llmhttp_breaker_state 1 for the current state of a circuit (closed, half-open, open), 0 for the others.
# TYPE llmhttp_breaker_state gauge
llmhttp_breaker_state{` + l + `,state="closed"} 1
llmhttp_breaker_state{` + l + `,state="half-open"} 0
llmhttp_breaker_state{` + l + `,state="open"} 0
# HELP llmhttp_budget_threshold_crossings_total Times a budget's use reached one of its thresholds.
# TYPE llmhttp_budget_threshold_crossings_total counter
llmhttp_budget_threshold_crossings_total{budget="feature",threshold="0.5"} 1
# HELP llmhttp_budget_utilization_ratio Fraction of a budget used, as of its last threshold crossing.
# TYPE llmhttp_budget_utilization_ratio gauge
llmhttp_budget_utilization_ratio{budget="feature"} 0.5
# HELP llmhttp_refusals_total Local replies llmhttp made instead of sending a request, by reason.
# TYPE llmhttp_refusals_total counter
llmhttp_refusals_total{` + l + `,reason="budget-exhausted"} 1
llmhttp_refusals_total{` + l + `,reason="circuit-open"} 1
# HELP llmhttp_requests_total Requests carried by llmhttp, by the class of their final answer.
# TYPE llmhttp_requests_total counter
llmhttp_requests_total{class="local",` + l + `} 1
llmhttp_requests_total{class="ok",` + l + `} 2
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llmhttp_breaker_state",
			"llmhttp_budget_threshold_crossings_total", "llmhttp_budget_utilization_ratio", "llmhttp_refusals_total",
			"llmhttp_requests_total"); err != nil {
			t.Error(err)
		}
	})
}

// New registers the Collector once; a second on the same registry fails,
// and a nil Registerer registers nothing.
func TestNewRegisters(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := prom.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := prom.New(reg); err == nil {
		t.Error("a second Collector on one registry was accepted")
	}
	c, err := prom.New(nil)
	if err != nil || c == nil {
		t.Fatalf("New(nil) = %v, %v", c, err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("fresh registry: %d series, %v", n, err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A shared store's switches: each fallback counted, the gauge following
// the mode.
func TestMetricsOfStoreFallbacks(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c, err := prom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	obs := c.Observer()
	const head = `
# HELP llmhttp_store_fallbacks_total Times a shared store fell back to local state because it failed or was too slow.
# TYPE llmhttp_store_fallbacks_total counter
llmhttp_store_fallbacks_total{store="redis"} 2
# HELP llmhttp_store_shared 1 while a shared store's state is shared, 0 while it has fallen back to local state.
# TYPE llmhttp_store_shared gauge
`
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Err: context.DeadlineExceeded})
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Shared: true, Down: time.Second})
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Err: context.DeadlineExceeded})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(head+`llmhttp_store_shared{store="redis"} 0
`), "llmhttp_store_fallbacks_total", "llmhttp_store_shared"); err != nil {
		t.Error(err)
	}
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Shared: true, Down: 2 * time.Second})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(head+`llmhttp_store_shared{store="redis"} 1
`), "llmhttp_store_fallbacks_total", "llmhttp_store_shared"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
