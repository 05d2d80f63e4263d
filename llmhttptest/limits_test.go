package llmhttptest_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

const (
	msgs = "/v1/messages"
	chat = "/v1/chat/completions"
)

func fixedOutput(n int64) func(llmhttptest.Request) int64 {
	return func(llmhttptest.Request) int64 { return n }
}

// wantStatus fails the test unless resp has status code.
func wantStatus(t *testing.T, resp *http.Response, body string, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, code, body)
	}
}

func wantHeader(t *testing.T, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s = %q, want %q", name, got, want)
	}
}

func TestAnthropicRPM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic: llmhttptest.Limits{RPM: 3, ITPM: llmhttptest.Unlimited, OTPM: llmhttptest.Unlimited},
			Output:    fixedOutput(10),
		})
		rt := h.Transport()
		body := anthropicReq("claude-test", 100, "hello", false)
		for i := range 3 {
			resp, b := do(t, rt, msgs, "k", body)
			wantStatus(t, resp, b, 200)
			if got, want := resp.Header.Get("anthropic-ratelimit-requests-remaining"), string(rune('2'-i)); got != want {
				t.Errorf("request %d: requests-remaining = %s, want %s", i, got, want)
			}
		}
		resp, b := do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 429)
		wantHeader(t, resp, "retry-after", "20") // 60s / 3
		wantHeader(t, resp, "x-should-retry", "true")
		wantHeader(t, resp, "anthropic-ratelimit-requests-remaining", "0")
		wantHeader(t, resp, "anthropic-ratelimit-requests-reset", "2000-01-01T00:01:00Z")
		if got := jsonField(t, b, "error.type"); got != "rate_limit_error" {
			t.Errorf("error.type = %v", got)
		}
		if got := jsonField(t, b, "request_id"); got != resp.Header.Get("request-id") {
			t.Errorf("request_id = %v, header %s", got, resp.Header.Get("request-id"))
		}
		if !strings.Contains(b, "of 3 requests per minute") {
			t.Errorf("message does not name the limit: %s", b)
		}

		time.Sleep(19 * time.Second)
		resp, b = do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 429)
		wantHeader(t, resp, "retry-after", "1")
		time.Sleep(time.Second)
		resp, b = do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 200)

		st := h.Stats()
		if st.Requests != 6 || st.ByStatus[200] != 4 || st.ByStatus[429] != 2 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestAnthropicITPM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic:     llmhttptest.Limits{RPM: llmhttptest.Unlimited, ITPM: 1000, OTPM: llmhttptest.Unlimited},
			Output:        fixedOutput(10),
			TokenRounding: -1,
		})
		rt := h.Transport()
		body := anthropicReq("claude-test", 100, chars(600), false)
		resp, b := do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-ratelimit-input-tokens-remaining", "400")
		if got := jsonField(t, b, "usage.input_tokens"); got != 600.0 {
			t.Errorf("usage.input_tokens = %v, want 600", got)
		}
		resp, b = do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 429)
		wantHeader(t, resp, "retry-after", "12") // 200 tokens at 1000/min
		if !strings.Contains(b, "of 1000 input tokens per minute") {
			t.Errorf("message: %s", b)
		}
		time.Sleep(12 * time.Second)
		resp, b = do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-ratelimit-input-tokens-remaining", "0")
	})
}

// Anthropic 2026: output is charged when generated, max_tokens plays no
// part, and the bucket may go into debt.
func TestAnthropicOTPMGenerated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic:     llmhttptest.Limits{RPM: llmhttptest.Unlimited, ITPM: llmhttptest.Unlimited, OTPM: 100},
			Output:        fixedOutput(80),
			TokenRounding: -1,
		})
		rt := h.Transport()
		body := anthropicReq("claude-test", 1000, "hi", false) // max_tokens above OTPM is fine
		resp, b := do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-ratelimit-output-tokens-remaining", "20")
		resp, b = do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 200) // 20 ≥ 1: admitted, then −60
		wantHeader(t, resp, "anthropic-ratelimit-output-tokens-remaining", "0")
		wantHeader(t, resp, "anthropic-ratelimit-output-tokens-reset", "2000-01-01T00:01:36Z") // 160 tokens × 0.6s
		resp, b = do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 429)
		wantHeader(t, resp, "retry-after", "37") // 61 tokens × 0.6s = 36.6s
		time.Sleep(36600 * time.Millisecond)
		resp, b = do(t, rt, msgs, "k", body)
		wantStatus(t, resp, b, 200)
		if got := h.Stats().Partitions[llmhttptest.Key{Provider: llmhttptest.Anthropic, Credential: llmhttptest.Fingerprint("k"), Model: "claude-test"}]; got.OutputTokens != 240 || got.InputTokens != 3 {
			t.Errorf("partition stats = %+v, want 240 output and 3 input tokens", got)
		}
	})
}

// Anthropic until 2025: max_tokens is reserved at admission and the unused
// part refunded at the end.
func TestAnthropicOTPMReserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic:       llmhttptest.Limits{RPM: llmhttptest.Unlimited, ITPM: llmhttptest.Unlimited, OTPM: 100},
			AnthropicCharge: llmhttptest.ChargeReserved,
			Output:          fixedOutput(10),
			TokenRounding:   -1,
		})
		rt := h.Transport()
		resp, b := do(t, rt, msgs, "k", anthropicReq("claude-test", 60, "hi", false))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-ratelimit-output-tokens-remaining", "90") // 60 reserved, 50 refunded

		// A stream's head shows the reservation held.
		resp, err := send(t, rt, msgs, "k", anthropicReq("claude-test", 60, "hi", true))
		if err != nil {
			t.Fatal(err)
		}
		wantHeader(t, resp, "anthropic-ratelimit-output-tokens-remaining", "30")

		// While the stream holds 60, a request for 60 must wait.
		resp2, b := do(t, rt, msgs, "k", anthropicReq("claude-test", 60, "hi", false))
		wantStatus(t, resp2, b, 429)
		wantHeader(t, resp2, "retry-after", "18") // 30 tokens at 100/min

		// Closed before any output: the whole reservation comes back.
		resp.Body.Close()
		synctest.Wait() // the handler notices and settles
		resp, b = do(t, rt, msgs, "k", anthropicReq("claude-test", 60, "hi", false))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-ratelimit-output-tokens-remaining", "80") // 90 − 10
		resp, b = do(t, rt, msgs, "k", anthropicReq("claude-test", 200, "hi", false))
		wantStatus(t, resp, b, 429)
		if resp.Header.Get("retry-after") != "" {
			t.Errorf("a request that can never fit got retry-after %s", resp.Header.Get("retry-after"))
		}
		wantHeader(t, resp, "x-should-retry", "false")
		if !strings.Contains(b, "Request too large for claude-test") || !strings.Contains(b, "Limit 100, Requested 200") {
			t.Errorf("message: %s", b)
		}
	})
}

// OpenAI: TPM counts input plus max_tokens at admission, refunded down to
// the output at the end.
func TestOpenAITPMReserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			OpenAI: llmhttptest.Limits{RPM: llmhttptest.Unlimited, TPM: 1000},
			Output: fixedOutput(50),
		})
		rt := h.Transport()
		resp, err := send(t, rt, chat, "k", openAIReq("gpt-test", 400, chars(100), true, false))
		if err != nil {
			t.Fatal(err)
		}
		wantHeader(t, resp, "x-ratelimit-remaining-tokens", "500")
		wantHeader(t, resp, "x-ratelimit-reset-tokens", "30s")
		if _, err := readEvents(t, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()

		resp, b := do(t, rt, chat, "k", openAIReq("gpt-test", 400, chars(100), false, false))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "x-ratelimit-remaining-tokens", "700") // 1000 − 2×150
		wantHeader(t, resp, "x-ratelimit-reset-tokens", "18s")

		resp, b = do(t, rt, chat, "k", openAIReq("gpt-test", 950, chars(100), false, false))
		wantStatus(t, resp, b, 429)
		if resp.Header.Get("retry-after") != "" {
			t.Errorf("too large: retry-after %q", resp.Header.Get("retry-after"))
		}
		if got := jsonField(t, b, "error.code"); got != "rate_limit_exceeded" {
			t.Errorf("code = %v", got)
		}
		if !strings.Contains(b, "Request too large for gpt-test") || !strings.Contains(b, "Limit 1000, Requested 1050") {
			t.Errorf("message: %s", b)
		}

		resp, b = do(t, rt, chat, "k", openAIReq("gpt-test", 700, chars(100), false, false))
		wantStatus(t, resp, b, 429)
		wantHeader(t, resp, "retry-after", "6") // needs 800, has 700: 100 × 60ms
		if got := jsonField(t, b, "error.type"); got != "tokens" {
			t.Errorf("type = %v", got)
		}
		if !strings.Contains(b, "Limit 1000, Used 300, Requested 800. Please try again in 6s.") {
			t.Errorf("message: %s", b)
		}
	})
}

func TestPartitionsAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			OpenAI: llmhttptest.Limits{RPM: 1, TPM: llmhttptest.Unlimited},
			Models: map[string]llmhttptest.Limits{"big": {RPM: 2, TPM: llmhttptest.Unlimited}},
			Output: fixedOutput(1),
		})
		rt := h.Transport()
		for _, c := range []struct {
			key, model string
			want       int
		}{
			{"a", "m1", 200}, {"a", "m1", 429}, {"b", "m1", 200}, {"a", "m2", 200},
			{"a", "big", 200}, {"a", "big", 200}, {"a", "big", 429},
		} {
			resp, b := do(t, rt, chat, c.key, openAIReq(c.model, 10, "x", false, false))
			if resp.StatusCode != c.want {
				t.Errorf("%s/%s: status %d, want %d: %s", c.key, c.model, resp.StatusCode, c.want, b)
			}
		}
		st := h.Stats()
		if len(st.Partitions) != 4 {
			t.Fatalf("partitions = %+v", st.Partitions)
		}
		a1 := st.Partitions[llmhttptest.Key{Provider: llmhttptest.OpenAI, Credential: llmhttptest.Fingerprint("Bearer a"), Model: "m1"}]
		if a1.Requests != 2 || a1.ByStatus[200] != 1 || a1.ByStatus[429] != 1 {
			t.Errorf("a/m1 = %+v", a1)
		}
		for k := range st.Partitions {
			if strings.Contains(k.Credential, "Bearer") || len(k.Credential) != 16 {
				t.Errorf("credential %q is not a fingerprint", k.Credential)
			}
		}
	})
}

func TestRejectedCost(t *testing.T) {
	for _, c := range []struct {
		cost      bool
		remaining string
	}{{false, "1"}, {true, "0"}} {
		synctest.Test(t, func(t *testing.T) {
			h := llmhttptest.NewHandler(llmhttptest.Config{
				OpenAI:       llmhttptest.Limits{RPM: 60, TPM: llmhttptest.Unlimited},
				RejectedCost: c.cost,
				Output:       fixedOutput(1),
			})
			rt := h.Transport()
			for range 60 {
				do(t, rt, chat, "k", openAIReq("m", 10, "x", false, false))
			}
			resp, b := do(t, rt, chat, "k", openAIReq("m", 10, "x", false, false))
			wantStatus(t, resp, b, 429)
			time.Sleep(2 * time.Second)
			resp, b = do(t, rt, chat, "k", openAIReq("m", 10, "x", false, false))
			wantStatus(t, resp, b, 200)
			wantHeader(t, resp, "x-ratelimit-remaining-requests", c.remaining)
		})
	}
}

func TestShortWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Window: time.Second,
			OpenAI: llmhttptest.Limits{RPM: 5, TPM: llmhttptest.Unlimited},
			Output: fixedOutput(1),
		})
		rt := h.Transport()
		for range 5 {
			resp, b := do(t, rt, chat, "k", openAIReq("m", 10, "x", false, false))
			wantStatus(t, resp, b, 200)
		}
		resp, b := do(t, rt, chat, "k", openAIReq("m", 10, "x", false, false))
		wantStatus(t, resp, b, 429)
		wantHeader(t, resp, "retry-after", "1")
		wantHeader(t, resp, "x-ratelimit-reset-requests", "1s")
		time.Sleep(200 * time.Millisecond)
		resp, b = do(t, rt, chat, "k", openAIReq("m", 10, "x", false, false))
		wantStatus(t, resp, b, 200)
	})
}

func TestOutputModel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []llmhttptest.Request
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: func(r llmhttptest.Request) int64 {
			seen = append(seen, r)
			return 1000 // clamped to max_tokens
		}})
		resp, b := do(t, h.Transport(), chat, "k", openAIReq("gpt-x", 7, chars(5), true, false))
		wantStatus(t, resp, b, 200)
		if !strings.Contains(b, `"finish_reason":"length"`) {
			t.Errorf("output not clamped to max_tokens: %s", b)
		}
		r := seen[0]
		if r.Provider != llmhttptest.OpenAI || r.Model != "gpt-x" || r.MaxTokens != 7 || r.InputTokens != 5 ||
			!r.Stream || r.Seq != 1 || r.Credential != llmhttptest.Fingerprint("Bearer k") || r.Rand == nil {
			t.Errorf("Request = %+v", r)
		}
	})
	// The default: uniform on [1, 2×MeanOutput−1], capped, seeded.
	outputs := func(seed uint64) []int64 {
		var out []int64
		synctest.Test(t, func(t *testing.T) {
			h := llmhttptest.NewHandler(llmhttptest.Config{Seed: seed, MeanOutput: 50,
				Anthropic: llmhttptest.Limits{RPM: llmhttptest.Unlimited, ITPM: llmhttptest.Unlimited, OTPM: llmhttptest.Unlimited}})
			for range 400 {
				_, b := do(t, h.Transport(), msgs, "k", anthropicReq("m", 90, "x", false))
				out = append(out, int64(jsonField(t, b, "usage.output_tokens").(float64)))
			}
		})
		return out
	}
	a, b := outputs(7), outputs(7)
	var sum int64
	for i, n := range a {
		if n != b[i] {
			t.Fatal("the same seed gave different outputs")
		}
		if n < 1 || n > 90 {
			t.Fatalf("output %d outside [1, 90]", n)
		}
		sum += n
	}
	// Uniform on [1, 99] capped at 90: mean (Σ1..89 + 11·90)/99 ≈ 50.
	if mean := float64(sum) / float64(len(a)); mean < 45 || mean > 55 {
		t.Errorf("mean output %.1f, want about 50", mean)
	}
}

// fastReq returns a Messages body in fast mode ("speed": "fast").
func fastReq(model string, maxTokens int, text string) string {
	b, _ := json.Marshal(map[string]any{
		"model": model, "max_tokens": maxTokens, "speed": "fast",
		"messages": []any{map[string]any{"role": "user", "content": text}},
	})
	return string(b)
}

// Fast mode draws on buckets of its own (FastITPM, FastOTPM), reported on
// its answers as anthropic-fast-*: running out of them answers fast
// requests with 429 while standard ones are still served, and standard
// requests leave them untouched. Requests count in the one RPM.
func TestAnthropicFastMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fastSeen []bool
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic: llmhttptest.Limits{RPM: 100, ITPM: 10_000, OTPM: 5_000, FastITPM: 1000, FastOTPM: 500},
			Output: func(r llmhttptest.Request) int64 {
				fastSeen = append(fastSeen, r.Fast)
				return 10
			},
			TokenRounding: -1,
		})
		rt := h.Transport()
		resp, b := do(t, rt, msgs, "k", fastReq("claude-test", 100, chars(600)))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-fast-input-tokens-limit", "1000")
		wantHeader(t, resp, "anthropic-fast-input-tokens-remaining", "400")
		wantHeader(t, resp, "anthropic-fast-output-tokens-limit", "500")
		wantHeader(t, resp, "anthropic-fast-output-tokens-remaining", "490")
		wantHeader(t, resp, "anthropic-fast-input-tokens-reset", "2000-01-01T00:00:36Z") // 600 at 1000/min
		wantHeader(t, resp, "anthropic-ratelimit-input-tokens-remaining", "10000")
		wantHeader(t, resp, "anthropic-ratelimit-requests-remaining", "99")

		resp, b = do(t, rt, msgs, "k", fastReq("claude-test", 100, chars(600)))
		wantStatus(t, resp, b, 429)
		wantHeader(t, resp, "retry-after", "12") // 200 tokens at 1000/min
		wantHeader(t, resp, "anthropic-fast-input-tokens-remaining", "400")

		resp, b = do(t, rt, msgs, "k", anthropicReq("claude-test", 100, chars(600), false))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-ratelimit-input-tokens-remaining", "9400")
		wantHeader(t, resp, "anthropic-ratelimit-requests-remaining", "98")
		if got := resp.Header.Get("anthropic-fast-input-tokens-limit"); got != "" {
			t.Errorf("a standard answer reports the fast bucket: %s", got)
		}

		time.Sleep(12 * time.Second)
		resp, b = do(t, rt, msgs, "k", fastReq("claude-test", 100, chars(600)))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-fast-input-tokens-remaining", "0")
		if want := []bool{true, false, true}; !slices.Equal(fastSeen, want) {
			t.Errorf("Request.Fast = %v, want %v", fastSeen, want)
		}
	})
}

// Without fast-mode limits, a fast request is served from the standard
// pool and its answer reports no fast bucket.
func TestAnthropicFastModeWithoutLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic:     llmhttptest.Limits{ITPM: 1000},
			Output:        fixedOutput(10),
			TokenRounding: -1,
		})
		resp, b := do(t, h.Transport(), msgs, "k", fastReq("claude-test", 100, chars(600)))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "anthropic-ratelimit-input-tokens-remaining", "400")
		wantHeader(t, resp, "anthropic-fast-input-tokens-limit", "")
	})
}
