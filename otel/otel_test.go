package otel_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	llmotel "github.com/llmhttp/llmhttp/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const (
	apiKey = "sk-ant-otel-secret-0123456789"
	prompt = "Summarise the observer tests in one line, please." // 13 tokens
)

// collect reads every metric of reader as "name{attrs} field" → value:
// histograms give their count and sum, sums and gauges their value.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	key := func(name string, set attribute.Set) string {
		var kv []string
		for _, a := range set.ToSlice() {
			kv = append(kv, string(a.Key)+"="+a.Value.Emit())
		}
		sort.Strings(kv)
		return name + "{" + strings.Join(kv, ",") + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != llmotel.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)+" count"] = float64(p.Count)
					out[key(m.Name, p.Attributes)+" sum"] = p.Sum
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)+" count"] = float64(p.Count)
					out[key(m.Name, p.Attributes)+" sum"] = float64(p.Sum)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = p.Value
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

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

// exact makes every wait exact.
var exact = []llmhttp.Option{
	llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{Jitter: func(d time.Duration) time.Duration { return d }}),
	llmhttp.WithPacerSettings(llmhttp.PacerSettings{Jitter: func(time.Duration) time.Duration { return 0 }, OverloadFactor: -1}),
}

// The proof: a scripted llmhttptest workload — two 429s with retry-after,
// one 529, then successes — records exactly these metrics.
func TestMetricsOfScriptedWorkload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output: func(llmhttptest.Request) int64 { return 20 },
			Faults: []llmhttptest.Fault{
				{Kind: llmhttptest.RateLimit, Count: 2, RetryAfter: 2 * time.Second},
				{Kind: llmhttptest.Overloaded, Count: 1},
			},
		})
		reader := sdkmetric.NewManualReader()
		obs, err := llmotel.NewObserver(llmotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		if err != nil {
			t.Fatal(err)
		}
		tr := llmhttp.New(h.Transport(), append(exact, llmhttp.WithObserver(obs))...)
		for range 3 {
			if code := do(t, tr, request(t.Context(), t)); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
		}
		const (
			srv   = "server.address=api.anthropic.test,server.port=443"
			model = "gen_ai.request.model=claude-sonnet-4-5"
			base  = "{" + model + "," + srv + "}"
			genai = "gen_ai.operation.name=chat,gen_ai.provider.name=anthropic," + model
			post  = "http.request.method=POST"
		)
		want := map[string]float64{
			// One point per attempt: status, error.type, resend count.
			"http.client.request.duration{error.type=429," + post + ",http.response.status_code=429," + srv + "} count":                             1,
			"http.client.request.duration{error.type=429," + post + ",http.request.resend_count=1,http.response.status_code=429," + srv + "} count": 1,
			"http.client.request.duration{error.type=529," + post + ",http.request.resend_count=2,http.response.status_code=529," + srv + "} count": 1,
			"http.client.request.duration{" + post + ",http.request.resend_count=3,http.response.status_code=200," + srv + "} count":                1,
			"http.client.request.duration{" + post + ",http.response.status_code=200," + srv + "} count":                                            2,
			// The fake answers at once: every attempt took 0 s on the wire.
			"http.client.request.duration{error.type=429," + post + ",http.response.status_code=429," + srv + "} sum":                             0,
			"http.client.request.duration{error.type=429," + post + ",http.request.resend_count=1,http.response.status_code=429," + srv + "} sum": 0,
			"http.client.request.duration{error.type=529," + post + ",http.request.resend_count=2,http.response.status_code=529," + srv + "} sum": 0,
			"http.client.request.duration{" + post + ",http.request.resend_count=3,http.response.status_code=200," + srv + "} sum":                0,
			"http.client.request.duration{" + post + ",http.response.status_code=200," + srv + "} sum":                                            0,
			// Tokens: 3 responses of 13 in, 20 out.
			"gen_ai.client.token.usage{" + genai + ",gen_ai.token.type=input," + srv + "} count":  3,
			"gen_ai.client.token.usage{" + genai + ",gen_ai.token.type=input," + srv + "} sum":    39,
			"gen_ai.client.token.usage{" + genai + ",gen_ai.token.type=output," + srv + "} count": 3,
			"gen_ai.client.token.usage{" + genai + ",gen_ai.token.type=output," + srv + "} sum":   60,
			// Requests: the first took 5 s of waits, the others none.
			"gen_ai.client.operation.duration{" + genai + "," + srv + "} count":            3,
			"gen_ai.client.operation.duration{" + genai + "," + srv + "} sum":              5,
			"llmhttp.client.requests{" + model + ",llmhttp.class=ok," + srv + "}":          3,
			"llmhttp.client.retries{" + model + ",llmhttp.class=rate_limited," + srv + "}": 2,
			"llmhttp.client.retries{" + model + ",llmhttp.class=overloaded," + srv + "}":   1,
			// Waits by cause: 2 × 2 s of retry-after, 1 s of backoff.
			"llmhttp.client.wait.duration{" + model + ",llmhttp.wait.cause=retry_after," + srv + "} count": 2,
			"llmhttp.client.wait.duration{" + model + ",llmhttp.wait.cause=retry_after," + srv + "} sum":   4,
			"llmhttp.client.wait.duration{" + model + ",llmhttp.wait.cause=backoff," + srv + "} count":     1,
			"llmhttp.client.wait.duration{" + model + ",llmhttp.wait.cause=backoff," + srv + "} sum":       1,
			"llmhttp.client.gate.closures" + base:                                                          2,
		}
		got := collect(t, reader)
		if !equal(got, want) {
			t.Errorf("metrics differ:\n%s", diff(got, want))
		}
		for k := range got {
			if strings.Contains(k, apiKey) || strings.Contains(k, llmhttp.Fingerprint(apiKey)) {
				t.Errorf("%s names the key", k)
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
		reader := sdkmetric.NewManualReader()
		obs, err := llmotel.NewObserver(llmotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		if err != nil {
			t.Fatal(err)
		}
		tr := llmhttp.New(h.Transport(), llmhttp.WithObserver(obs),
			llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{Jitter: func(d time.Duration) time.Duration { return d }}),
			llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{ConsecutiveFailures: 1, OpenDuration: 3 * time.Second}),
			llmhttp.WithBudgetSettings(llmhttp.BudgetSettings{Budgets: map[string]llmhttp.Budget{
				"feature": {Requests: 2, Thresholds: []float64{0.5}, All: true},
			}}))
		for range 3 {
			do(t, tr, request(t.Context(), t))
		}
		const (
			srv   = "server.address=api.anthropic.test,server.port=443"
			model = "gen_ai.request.model=claude-sonnet-4-5"
			base  = "{" + model + "," + srv + "}"
		)
		got := collect(t, reader)
		for k, v := range map[string]float64{
			"llmhttp.client.breaker.state" + base:                                                           0,
			"llmhttp.client.breaker.transitions{" + model + ",llmhttp.breaker.state=open," + srv + "}":      1,
			"llmhttp.client.breaker.transitions{" + model + ",llmhttp.breaker.state=half-open," + srv + "}": 1,
			"llmhttp.client.breaker.transitions{" + model + ",llmhttp.breaker.state=closed," + srv + "}":    1,
			"llmhttp.client.refusals{" + model + ",llmhttp.refusal.reason=circuit-open," + srv + "}":        1,
			"llmhttp.client.refusals{" + model + ",llmhttp.refusal.reason=budget-exhausted," + srv + "}":    1,
			"llmhttp.client.wait.duration{" + model + ",llmhttp.wait.cause=breaker," + srv + "} sum":        2,
			"llmhttp.client.budget.thresholds{llmhttp.budget.name=feature,llmhttp.budget.threshold=0.5}":    1,
			"llmhttp.client.budget.utilization{llmhttp.budget.name=feature}":                                0.5,
			"llmhttp.client.requests{" + model + ",llmhttp.class=ok," + srv + "}":                           2,
			"llmhttp.client.requests{" + model + ",llmhttp.class=local," + srv + "}":                        1,
		} {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
			}
		}
	})
}

// ResendCount sets http.request.resend_count on the spans of retried
// attempts only.
func TestResendCountSpanAttribute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		tracer := tp.Tracer("test")
		calls := 0
		wire := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			calls++
			status := http.StatusOK
			if calls < 3 {
				status = http.StatusInternalServerError
			}
			return &http.Response{StatusCode: status, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
		})
		// A stand-in for otelhttp: one span per attempt around the inner
		// transport.
		spans := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			ctx, span := tracer.Start(req.Context(), "attempt")
			defer span.End()
			return llmotel.ResendCount(wire).RoundTrip(req.WithContext(ctx))
		})
		rt := llmhttp.Chain(spans, llmhttp.Retry(llmhttp.RetryPolicy{}))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://api.example.test/v1/models", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var got []string
		for _, s := range sr.Ended() {
			var rc []string
			for _, a := range s.Attributes() {
				rc = append(rc, fmt.Sprintf("%s=%s", a.Key, a.Value.Emit()))
			}
			got = append(got, strings.Join(rc, ","))
		}
		if want := []string{"", "http.request.resend_count=1", "http.request.resend_count=2"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("span attributes %q, want %q", got, want)
		}
	})
}

func equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diff(got, want map[string]float64) string {
	var lines []string
	for k, v := range got {
		if w, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("+ %s = %v", k, v))
		} else if w != v {
			lines = append(lines, fmt.Sprintf("~ %s = %v, want %v", k, v, w))
		}
	}
	for k, w := range want {
		if _, ok := got[k]; !ok {
			lines = append(lines, fmt.Sprintf("- %s = %v", k, w))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A shared store's switches: each fallback counted, the gauge following
// the mode.
func TestMetricsOfStoreFallbacks(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	obs, err := llmotel.NewObserver(llmotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err != nil {
		t.Fatal(err)
	}
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Err: context.DeadlineExceeded})
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Shared: true, Down: time.Second})
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Err: context.DeadlineExceeded})
	want := map[string]float64{
		"llmhttp.client.store.fallbacks{llmhttp.store.name=redis}": 2,
		"llmhttp.client.store.shared{llmhttp.store.name=redis}":    0,
	}
	if got := collect(t, reader); !equal(got, want) {
		t.Errorf("metrics differ:\n%s", diff(got, want))
	}
	obs.OnStore(llmhttp.StoreEvent{Store: "redis", Shared: true, Down: 2 * time.Second})
	want["llmhttp.client.store.shared{llmhttp.store.name=redis}"] = 1
	if got := collect(t, reader); !equal(got, want) {
		t.Errorf("metrics differ:\n%s", diff(got, want))
	}
}
