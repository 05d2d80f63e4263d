package sdktest

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/openai/openai-go/v3"
	openaioption "github.com/openai/openai-go/v3/option"
)

// The SDK check of the retry layer: both official SDKs, with their default
// retries (2) left on, over llmhttp.Retry over the fake API answering 429s.
// Every final answer llmhttp gives up on carries X-Should-Retry: false, so the
// SDK makes one call and the upstream sees exactly llmhttp's attempts, never
// (SDK retries + 1) × llmhttp's; the SDK still returns its own typed 429
// error, decoded from the provider's body.

// attemptLog counts the attempts reaching the upstream and the
// X-Stainless-Retry-Count each carried.
type attemptLog struct {
	mu         sync.Mutex
	retryCount []string
}

func (l *attemptLog) wrap(next http.RoundTripper) http.RoundTripper {
	return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		l.mu.Lock()
		l.retryCount = append(l.retryCount, req.Header.Get("X-Stainless-Retry-Count"))
		l.mu.Unlock()
		return next.RoundTrip(req)
	})
}

func (l *attemptLog) attempts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.retryCount)
}

// retryCase is one 429 the fake API answers every request with.
type retryCase struct {
	name       string
	retryAfter time.Duration // the 429's retry-after
	attempts   int           // llmhttp's attempts, all the upstream may see
	elapsed    time.Duration // fake time the call takes
}

var retryCases = []retryCase{
	// Above MaxRetryAfter (60 s): llmhttp returns the 429 at once. Without
	// X-Should-Retry: false, anthropic-sdk-go would sleep the five minutes
	// (it has no cap) and try again, twice.
	{"retry-after above the cap", 5 * time.Minute, 1, 0},
	// Within the cap: llmhttp waits and retries up to MaxAttempts (4), then
	// gives up; the SDK must not start over (which would make 12).
	{"retry-after within the cap", 2 * time.Second, 4, 3 * 2 * time.Second},
}

// retryStack returns the transport under test, the fake API's handler and
// the attempt log: Retry (jitter pinned, so elapsed times are exact) over
// the in-memory fake API, which answers every request with a 429 carrying
// the given retry-after. Requests of an SDK retrying on top of llmhttp are
// reported to sdkRetries.
func retryStack(t *testing.T, retryAfter time.Duration, sdkRetries *[]int) (http.RoundTripper, *llmhttptest.Handler, *attemptLog) {
	h := llmhttptest.NewHandler(llmhttptest.Config{
		Faults: []llmhttptest.Fault{{Kind: llmhttptest.RateLimit, RetryAfter: retryAfter}},
	})
	log := &attemptLog{}
	policy := llmhttp.RetryPolicy{
		Jitter:     func(d time.Duration) time.Duration { return d },
		OnSDKRetry: func(_ *http.Request, n int) { *sdkRetries = append(*sdkRetries, n) },
	}
	return llmhttp.Chain(h.Transport(), llmhttp.Retry(policy), log.wrap), h, log
}

func checkRetryCase(t *testing.T, tc retryCase, h *llmhttptest.Handler, log *attemptLog, start time.Time, resp *http.Response) {
	t.Helper()
	if n := log.attempts(); n != tc.attempts {
		t.Errorf("upstream saw %d attempts, want llmhttp's %d (retry counts %v)", n, tc.attempts, log.retryCount)
	}
	if got := h.Stats().ByStatus[http.StatusTooManyRequests]; got != int64(tc.attempts) {
		t.Errorf("fake API answered %d 429s, want %d", got, tc.attempts)
	}
	for i, c := range log.retryCount {
		if c != "0" {
			t.Errorf("attempt %d carried X-Stainless-Retry-Count %q, want the SDK's first call (0)", i+1, c)
		}
	}
	if got := time.Since(start); got != tc.elapsed {
		t.Errorf("the call took %v, want %v", got, tc.elapsed)
	}
	if resp == nil {
		t.Fatal("the SDK's error carries no response")
	}
	if got := resp.Header.Get("X-Should-Retry"); got != "false" {
		t.Errorf("X-Should-Retry = %q, want false", got)
	}
	if got, want := resp.Header.Get("Retry-After"), strconv.Itoa(int(tc.retryAfter/time.Second)); got != want {
		t.Errorf("Retry-After = %q, want the server's %q, unaltered", got, want)
	}
}

func TestAnthropicSDKOverRetryDoesNotMultiply(t *testing.T) {
	for _, tc := range retryCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var sdkRetries []int
				rt, h, log := retryStack(t, tc.retryAfter, &sdkRetries)
				client := anthropic.NewClient(
					anthropicoption.WithAPIKey("sk-ant-test"),
					anthropicoption.WithHTTPClient(&http.Client{Transport: rt}),
				) // default retries: 2
				start := time.Now()
				_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
					Model:     anthropic.ModelClaudeSonnet4_5,
					MaxTokens: 16,
					Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
				})
				var apiErr *anthropic.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("err = %v (%T), want an *anthropic.Error", err, err)
				}
				if apiErr.StatusCode != http.StatusTooManyRequests {
					t.Errorf("StatusCode = %d, want 429", apiErr.StatusCode)
				}
				if got := string(apiErr.Type()); got != "rate_limit_error" {
					t.Errorf("Type() = %q, want rate_limit_error: the provider's body, decoded", got)
				}
				if !strings.Contains(apiErr.RawJSON(), `"rate_limit_error"`) {
					t.Errorf("RawJSON() = %s, want the provider's error body", apiErr.RawJSON())
				}
				if apiErr.RequestID == "" {
					t.Error("RequestID is empty: the provider's request-id header was lost")
				}
				checkRetryCase(t, tc, h, log, start, apiErr.Response)
				if len(sdkRetries) > 0 {
					t.Errorf("llmhttp saw the SDK retry on top of it: %v", sdkRetries)
				}
			})
		})
	}
}

func TestOpenAISDKOverRetryDoesNotMultiply(t *testing.T) {
	for _, tc := range retryCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var sdkRetries []int
				rt, h, log := retryStack(t, tc.retryAfter, &sdkRetries)
				client := openai.NewClient(
					openaioption.WithAPIKey("sk-test"),
					openaioption.WithHTTPClient(&http.Client{Transport: rt}),
				) // default retries: 2
				start := time.Now()
				_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
					Model:    openai.ChatModelGPT4_1,
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
				})
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("err = %v (%T), want an *openai.Error", err, err)
				}
				if apiErr.StatusCode != http.StatusTooManyRequests {
					t.Errorf("StatusCode = %d, want 429", apiErr.StatusCode)
				}
				if apiErr.Type != "rate_limit_error" && apiErr.Code != "rate_limit_exceeded" {
					t.Errorf("Type = %q, Code = %q: want the provider's rate-limit error, decoded", apiErr.Type, apiErr.Code)
				}
				if apiErr.Message == "" || !strings.Contains(apiErr.RawJSON(), apiErr.Message) {
					t.Errorf("Message = %q, RawJSON() = %s: want the provider's error body", apiErr.Message, apiErr.RawJSON())
				}
				checkRetryCase(t, tc, h, log, start, apiErr.Response)
				if len(sdkRetries) > 0 {
					t.Errorf("llmhttp saw the SDK retry on top of it: %v", sdkRetries)
				}
			})
		})
	}
}

// TestSDKOverRetryControl is the control: without llmhttp's X-Should-Retry:
// false on its final answer, the same stack multiplies — the SDK starts
// llmhttp's 4 attempts over twice.
func TestSDKOverRetryControl(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sdkRetries []int
		rt, _, log := retryStack(t, 2*time.Second, &sdkRetries)
		strip := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if resp != nil {
				resp.Header.Del("X-Should-Retry")
			}
			return resp, err
		})
		client := openai.NewClient(openaioption.WithAPIKey("sk-test"), openaioption.WithHTTPClient(&http.Client{Transport: strip}))
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: openai.ChatModelGPT4_1, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		if err == nil {
			t.Fatal("want an error")
		}
		if n := log.attempts(); n != 12 {
			t.Errorf("upstream saw %d attempts, want 3 × 4 = 12 without the header", n)
		}
		if want := []int{1, 2}; len(sdkRetries) != 2 || sdkRetries[0] != 1 || sdkRetries[1] != 2 {
			t.Errorf("OnSDKRetry saw %v, want %v: the double loop is visible to hooks", sdkRetries, want)
		}
	})
}
