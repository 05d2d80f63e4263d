package llmhttptest_test

import (
	"net/http"
	"regexp"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// The fake clock starts at 2000-01-01T00:00:00Z, so every header value is
// exact.
func TestAnthropicHeaderFormats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(100)}) // 50 RPM, 30k ITPM, 8k OTPM
		resp, b := do(t, h.Transport(), msgs, "k", anthropicReq("claude-test", 1024, chars(1000), false))
		wantStatus(t, resp, b, 200)
		for name, want := range map[string]string{
			"anthropic-ratelimit-requests-limit":          "50",
			"anthropic-ratelimit-requests-remaining":      "49",
			"anthropic-ratelimit-requests-reset":          "2000-01-01T00:00:02Z", // 1.2s, rounded up
			"anthropic-ratelimit-input-tokens-limit":      "30000",
			"anthropic-ratelimit-input-tokens-remaining":  "29000",
			"anthropic-ratelimit-input-tokens-reset":      "2000-01-01T00:00:02Z", // 1000 at 500/s
			"anthropic-ratelimit-output-tokens-limit":     "8000",
			"anthropic-ratelimit-output-tokens-remaining": "8000",                 // 7900 to the nearest thousand
			"anthropic-ratelimit-output-tokens-reset":     "2000-01-01T00:00:01Z", // 0.75s
			"anthropic-ratelimit-tokens-limit":            "38000",
			"anthropic-ratelimit-tokens-remaining":        "37000", // 36,900
			"anthropic-ratelimit-tokens-reset":            "2000-01-01T00:00:02Z",
			"content-type":                                "application/json",
			"date":                                        "Sat, 01 Jan 2000 00:00:00 GMT",
		} {
			wantHeader(t, resp, name, want)
		}
		if id := resp.Header.Get("request-id"); !regexp.MustCompile(`^req_011C[0-9A-Za-z]{20}$`).MatchString(id) {
			t.Errorf("request-id = %q", id)
		}
		if resp.Header.Get("x-request-id") != "" || resp.Header.Get("x-ratelimit-limit-requests") != "" {
			t.Error("OpenAI headers on an Anthropic response")
		}
		if id := jsonField(t, b, "id").(string); !regexp.MustCompile(`^msg_01[0-9A-Za-z]{22}$`).MatchString(id) {
			t.Errorf("id = %q", id)
		}

		// Parsed back by llmhttp.
		now := time.Now()
		l := llmhttp.ParseLimits(resp.Header, now)
		check := func(name string, got llmhttp.Limit, limit, remaining int64, reset time.Duration) {
			t.Helper()
			if got.Limit != limit || !got.HasRemaining || got.Remaining != remaining || !got.Reset.Equal(now.Add(reset)) {
				t.Errorf("%s = %+v, want limit %d remaining %d reset +%v", name, got, limit, remaining, reset)
			}
		}
		check("Requests", l.Requests, 50, 49, 2*time.Second)
		check("InputTokens", l.InputTokens, 30000, 29000, 2*time.Second)
		check("OutputTokens", l.OutputTokens, 8000, 8000, time.Second)
	})
}

func TestOpenAIHeaderFormats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(100)}) // 500 RPM, 30k TPM
		rt := h.Transport()
		resp, b := do(t, rt, chat, "k", openAIReq("gpt-test", 500, chars(1000), false, false))
		wantStatus(t, resp, b, 200)
		for name, want := range map[string]string{
			"x-ratelimit-limit-requests":     "500",
			"x-ratelimit-remaining-requests": "499",
			"x-ratelimit-reset-requests":     "120ms",
			"x-ratelimit-limit-tokens":       "30000",
			"x-ratelimit-remaining-tokens":   "28900", // 1000 in + 100 out, exact
			"x-ratelimit-reset-tokens":       "2.2s",
			"openai-processing-ms":           "0",
		} {
			wantHeader(t, resp, name, want)
		}
		if id := resp.Header.Get("x-request-id"); !regexp.MustCompile(`^req_[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("x-request-id = %q", id)
		}
		if id := jsonField(t, b, "id").(string); !regexp.MustCompile(`^chatcmpl-[0-9A-Za-z]{29}$`).MatchString(id) {
			t.Errorf("id = %q", id)
		}
		now := time.Now()
		l := llmhttp.ParseLimits(resp.Header, now)
		if l.Requests.Limit != 500 || l.Requests.Remaining != 499 || !l.Requests.Reset.Equal(now.Add(120*time.Millisecond)) {
			t.Errorf("Requests = %+v", l.Requests)
		}
		if l.Tokens.Limit != 30000 || l.Tokens.Remaining != 28900 || !l.Tokens.Reset.Equal(now.Add(2200*time.Millisecond)) {
			t.Errorf("Tokens = %+v", l.Tokens)
		}

		// A stream's head holds the whole reservation: 1000 + 500.
		resp, err := send(t, rt, chat, "k", openAIReq("gpt-test", 500, chars(1000), true, false))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantHeader(t, resp, "x-ratelimit-remaining-tokens", "27400")
		wantHeader(t, resp, "x-ratelimit-reset-tokens", "5.2s")
		wantHeader(t, resp, "content-type", "text/event-stream; charset=utf-8")
	})
}

func TestRetryAfterParsesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic: llmhttptest.Limits{RPM: 7},
			OpenAI:    llmhttptest.Limits{RPM: 7},
			Output:    fixedOutput(1),
		})
		rt := h.Transport()
		for _, path := range []string{msgs, chat} {
			body := anthropicReq("m", 10, "x", false)
			if path == chat {
				body = openAIReq("m", 10, "x", false, false)
			}
			var resp *http.Response
			for range 8 {
				resp, _ = do(t, rt, path, "k", body)
			}
			if resp.StatusCode != 429 {
				t.Fatalf("%s: status %d", path, resp.StatusCode)
			}
			// 60s/7 = 8.571428572s, rounded up to whole seconds.
			wantHeader(t, resp, "retry-after", "9")
			if d, ok := llmhttp.ParseRetryAfter(resp.Header, time.Now()); !ok || d != 9*time.Second {
				t.Errorf("%s: ParseRetryAfter = %v, %v", path, d, ok)
			}
		}
	})
}

// TokenRounding changes Anthropic's granularity; OpenAI is always exact.
func TestTokenRounding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{TokenRounding: 100, Output: fixedOutput(100)})
		resp, _ := do(t, h.Transport(), msgs, "k", anthropicReq("m", 1024, chars(1049), false))
		wantHeader(t, resp, "anthropic-ratelimit-input-tokens-remaining", "29000") // 28,951
		wantHeader(t, resp, "anthropic-ratelimit-output-tokens-remaining", "7900")
	})
}

// Stats name credentials exactly as llmhttp's partitions do.
func TestFingerprintMatchesLlmhttp(t *testing.T) {
	for _, k := range []string{"", "sk-ant-123", "Bearer sk-456"} {
		if got, want := llmhttptest.Fingerprint(k), llmhttp.Fingerprint(k); got != want {
			t.Errorf("Fingerprint(%q) = %q, llmhttp says %q", k, got, want)
		}
	}
}

// TestDateStampedWithLimitHeaders checks that Date is the instant the
// rate-limit headers were computed, after the simulated generation time: a
// client correcting for clock skew measures resets from Date.
func TestDateStampedWithLimitHeaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(100), Latency: 5 * time.Second})
		resp, b := do(t, h.Transport(), msgs, "k", anthropicReq("claude-test", 1024, chars(1000), false))
		wantStatus(t, resp, b, 200)
		wantHeader(t, resp, "date", "Sat, 01 Jan 2000 00:00:05 GMT")
		lim := llmhttp.ParseLimits(resp.Header, time.Now())
		// 100 output tokens charged at completion refill at 8000/min in
		// 0.75 s, rounded up to the second: 00:00:06. Had Date said 00:00:00,
		// the parser would take the 5 s gap for clock skew and say 00:00:11.
		if got, want := lim.OutputTokens.Reset, time.Now().Add(time.Second); !got.Equal(want) {
			t.Errorf("output reset = %v, want %v", got, want)
		}
	})
}
