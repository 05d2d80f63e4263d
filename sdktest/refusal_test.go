package sdktest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/llmhttp/llmhttp"
	"github.com/openai/openai-go/v3"
	openaioption "github.com/openai/openai-go/v3/option"
)

// refusals are every local reply llmhttp makes, with the status the SDKs
// must report.
var refusals = []struct {
	reason string
	status int
}{
	{llmhttp.ReasonCircuitOpen, http.StatusServiceUnavailable},
	{llmhttp.ReasonWaitTooLong, http.StatusTooManyRequests},
	{llmhttp.ReasonQuota, http.StatusTooManyRequests},
	{llmhttp.ReasonBudgetExhausted, http.StatusTooManyRequests},
	{llmhttp.ReasonShed, http.StatusTooManyRequests},
	{llmhttp.ReasonTooLarge, http.StatusRequestEntityTooLarge},
}

// refusingClient returns an http.Client whose transport answers every
// request with r's local reply, as an llmhttp layer does (closing the
// request body), and counts the attempts.
func refusingClient(r *llmhttp.Refusal, attempts *atomic.Int32) *http.Client {
	return &http.Client{Transport: llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		attempts.Add(1)
		if req.Body != nil {
			req.Body.Close()
		}
		return r.Response(req), nil
	})}
}

// TestAnthropicSDKDecodesRefusal checks that anthropic-sdk-go, with its
// default retries, decodes every local reply as an *anthropic.Error after
// exactly one attempt. The test runs in a synctest bubble, so a reply the
// SDK did retry would fail on the count at once instead of sleeping through
// the SDK's backoff.
func TestAnthropicSDKDecodesRefusal(t *testing.T) {
	for _, rc := range refusals {
		t.Run(rc.reason, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &llmhttp.Refusal{Reason: rc.reason, Message: "refused for the test", RetryAfter: 2 * time.Second}
				var attempts atomic.Int32
				client := anthropic.NewClient(
					anthropicoption.WithAPIKey("sk-ant-test"),
					anthropicoption.WithHTTPClient(refusingClient(r, &attempts)),
				)
				_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
					Model:     anthropic.ModelClaudeSonnet4_5,
					MaxTokens: 16,
					Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
				})
				var apiErr *anthropic.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("err = %v (%T), want an *anthropic.Error", err, err)
				}
				if apiErr.StatusCode != rc.status {
					t.Errorf("StatusCode = %d, want %d", apiErr.StatusCode, rc.status)
				}
				if n := attempts.Load(); n != 1 {
					t.Errorf("the SDK made %d attempts, want 1 (X-Should-Retry: false)", n)
				}
				if !strings.Contains(apiErr.Error(), r.Error()) {
					t.Errorf("error %q does not contain the refusal's message %q", apiErr.Error(), r.Error())
				}
				wantType := map[int]string{503: "overloaded_error", 429: "rate_limit_error", 413: "request_too_large"}[rc.status]
				if got := string(apiErr.Type()); got != wantType {
					t.Errorf("Type() = %q, want %q", got, wantType)
				}
				if got, ok := llmhttp.RefusalOf(apiErr.Response); !ok || got.Reason != rc.reason {
					t.Errorf("RefusalOf(the SDK's response) = %v, %v", got, ok)
				}
			})
		})
	}
}

// TestOpenAISDKDecodesRefusal is TestAnthropicSDKDecodesRefusal for
// openai-go.
func TestOpenAISDKDecodesRefusal(t *testing.T) {
	for _, rc := range refusals {
		t.Run(rc.reason, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &llmhttp.Refusal{Reason: rc.reason, Message: "refused for the test", RetryAfter: 2 * time.Second}
				var attempts atomic.Int32
				client := openai.NewClient(
					openaioption.WithAPIKey("sk-test"),
					openaioption.WithHTTPClient(refusingClient(r, &attempts)),
				)
				_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
					Model:    openai.ChatModelGPT4_1,
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
				})
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("err = %v (%T), want an *openai.Error", err, err)
				}
				if apiErr.StatusCode != rc.status {
					t.Errorf("StatusCode = %d, want %d", apiErr.StatusCode, rc.status)
				}
				if n := attempts.Load(); n != 1 {
					t.Errorf("the SDK made %d attempts, want 1 (X-Should-Retry: false)", n)
				}
				if apiErr.Message != r.Error() {
					t.Errorf("Message = %q, want %q", apiErr.Message, r.Error())
				}
				if want := strings.ReplaceAll(rc.reason, "-", "_"); apiErr.Code != want {
					t.Errorf("Code = %q, want %q", apiErr.Code, want)
				}
				if got, ok := llmhttp.RefusalOf(apiErr.Response); !ok || got.Reason != rc.reason {
					t.Errorf("RefusalOf(the SDK's response) = %v, %v", got, ok)
				}
			})
		})
	}
}

// TestSDKsRetryWithoutTheHeader is the control: the same 503 without
// X-Should-Retry: false is retried by both SDKs, so the single attempt above
// is the header's doing.
func TestSDKsRetryWithoutTheHeader(t *testing.T) {
	stripped := func(attempts *atomic.Int32) *http.Client {
		r := &llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen}
		return &http.Client{Transport: llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			attempts.Add(1)
			if req.Body != nil {
				req.Body.Close()
			}
			resp := r.Response(req)
			resp.Header.Del("X-Should-Retry")
			return resp, nil
		})}
	}
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		client := anthropic.NewClient(anthropicoption.WithAPIKey("k"), anthropicoption.WithHTTPClient(stripped(&attempts)))
		_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
			Model: anthropic.ModelClaudeSonnet4_5, MaxTokens: 16,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		if err == nil || attempts.Load() != 3 {
			t.Errorf("anthropic: err = %v, attempts = %d, want an error after 3", err, attempts.Load())
		}
	})
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		client := openai.NewClient(openaioption.WithAPIKey("k"), openaioption.WithHTTPClient(stripped(&attempts)))
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: openai.ChatModelGPT4_1, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		if err == nil || attempts.Load() != 3 {
			t.Errorf("openai: err = %v, attempts = %d, want an error after 3", err, attempts.Load())
		}
	})
}
