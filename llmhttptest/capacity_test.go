package llmhttptest_test

import (
	"math"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

func TestCapacityArithmetic(t *testing.T) {
	const u = llmhttptest.Unlimited
	cases := []struct {
		name string
		cfg  llmhttptest.Config
		w    llmhttptest.Workload
		want float64 // requests per second
	}{
		{"anthropic OTPM-bound", llmhttptest.Config{},
			llmhttptest.Workload{Provider: llmhttptest.Anthropic, Mix: []llmhttptest.RequestSize{{InputTokens: 1000, OutputTokens: 400}}},
			20.0 / 60}, // min(50, 30000/1000, 8000/400) per minute
		{"anthropic ITPM-bound", llmhttptest.Config{},
			llmhttptest.Workload{Provider: llmhttptest.Anthropic, Mix: []llmhttptest.RequestSize{{InputTokens: 2000, OutputTokens: 100}}},
			15.0 / 60},
		{"anthropic RPM-bound", llmhttptest.Config{},
			llmhttptest.Workload{Provider: llmhttptest.Anthropic, Mix: []llmhttptest.RequestSize{{InputTokens: 10, OutputTokens: 10}}},
			50.0 / 60},
		{"weighted mix", llmhttptest.Config{},
			llmhttptest.Workload{Provider: llmhttptest.Anthropic, Mix: []llmhttptest.RequestSize{
				{InputTokens: 100, OutputTokens: 100, Weight: 3}, {InputTokens: 1000, OutputTokens: 1000}, // weight 0 = 1
				{InputTokens: 1e9, OutputTokens: 1e9, Weight: -1}, // left out
			}},
			8000.0 / 325 / 60}, // averages (3·100 + 1000)/4 = 325
		{"openai TPM counts input+output", llmhttptest.Config{},
			llmhttptest.Workload{Provider: llmhttptest.OpenAI, Mix: []llmhttptest.RequestSize{{InputTokens: 1000, OutputTokens: 500}}},
			20.0 / 60}, // 30000 / 1500
		{"openai RPM-bound", llmhttptest.Config{},
			llmhttptest.Workload{Provider: llmhttptest.OpenAI, Mix: []llmhttptest.RequestSize{{InputTokens: 10, OutputTokens: 10}}},
			500.0 / 60},
		{"short window", llmhttptest.Config{Window: time.Second},
			llmhttptest.Workload{Provider: llmhttptest.OpenAI, Mix: []llmhttptest.RequestSize{{InputTokens: 1000, OutputTokens: 500}}},
			20},
		{"per-model limits", llmhttptest.Config{Models: map[string]llmhttptest.Limits{"big": {OTPM: 80_000}}},
			llmhttptest.Workload{Provider: llmhttptest.Anthropic, Model: "big", Mix: []llmhttptest.RequestSize{{InputTokens: 1000, OutputTokens: 400}}},
			30.0 / 60},
		{"no mix: requests only", llmhttptest.Config{},
			llmhttptest.Workload{Provider: llmhttptest.Anthropic}, 50.0 / 60},
		{"all unlimited", llmhttptest.Config{Anthropic: llmhttptest.Limits{RPM: u, ITPM: u, OTPM: u}},
			llmhttptest.Workload{Provider: llmhttptest.Anthropic, Mix: []llmhttptest.RequestSize{{InputTokens: 1, OutputTokens: 1}}},
			math.Inf(1)},
		{"unknown provider", llmhttptest.Config{}, llmhttptest.Workload{}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := llmhttptest.NewHandler(c.cfg).Capacity(c.w)
			if got != c.want && math.Abs(got-c.want) > 1e-12*c.want {
				t.Errorf("Capacity = %v, want %v", got, c.want)
			}
		})
	}
}

// A client that sends back to back and obeys retry-after gets what
// Capacity promises over a long run — no more than it plus the initial
// burst, and not much less.
func TestCapacityIsReachable(t *testing.T) {
	for _, c := range []struct {
		name   string
		path   string
		body   string
		charge llmhttptest.Charge
		burst  float64
	}{
		// burst: the binding bucket's capacity over the request's cost, plus
		// the last request, whose output is charged after the run.
		{"anthropic generated", msgs, anthropicReq("m", 1000, chars(1000), false), llmhttptest.ChargeDefault, 8000.0/400 + 1},
		{"anthropic reserved", msgs, anthropicReq("m", 1000, chars(1000), false), llmhttptest.ChargeReserved, 8000.0/400 + 1},
		{"openai reserved", chat, openAIReq("m", 1000, chars(1000), false, false), llmhttptest.ChargeDefault, 30000.0/1400 + 1},
		{"openai generated", chat, openAIReq("m", 1000, chars(1000), false, false), llmhttptest.ChargeGenerated, 30000.0/1400 + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := llmhttptest.NewHandler(llmhttptest.Config{
					AnthropicCharge: c.charge, OpenAICharge: c.charge,
					Output: fixedOutput(400), Latency: 2 * time.Second,
				})
				p := llmhttptest.Anthropic
				if c.path == chat {
					p = llmhttptest.OpenAI
				}
				capacity := h.Capacity(llmhttptest.Workload{Provider: p, Mix: []llmhttptest.RequestSize{{InputTokens: 1000, OutputTokens: 400}}})
				const run = 30 * time.Minute
				start := time.Now()
				var ok int
				for time.Since(start) < run {
					resp, _ := do(t, h.Transport(), c.path, "k", c.body)
					switch resp.StatusCode {
					case http.StatusOK:
						ok++
					case http.StatusTooManyRequests:
						s, err := strconv.Atoi(resp.Header.Get("retry-after"))
						if err != nil {
							t.Fatalf("429 without retry-after: %v", resp.Header)
						}
						time.Sleep(time.Duration(s) * time.Second)
					default:
						t.Fatalf("status %d", resp.StatusCode)
					}
				}
				ideal := capacity * run.Seconds()
				t.Logf("capacity %.4f/s: %d admitted in %v, ideal %.0f + burst %.0f", capacity, ok, run, ideal, c.burst)
				if float64(ok) > ideal+c.burst {
					t.Errorf("%d admitted, more than capacity %.0f + burst %.0f", ok, ideal, c.burst)
				}
				if float64(ok) < 0.9*ideal {
					t.Errorf("%d admitted, less than 90%% of capacity %.0f", ok, ideal)
				}
			})
		})
	}
}
