package sdktest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/llmhttp/llmhttp"
	"github.com/openai/openai-go/v3"
	openaioption "github.com/openai/openai-go/v3/option"
)

// overloadedNetwork stands for an endpoint in an overload episode: it
// answers every request with the provider's overload error and counts the
// attempts that reached it.
func overloadedNetwork(attempts *atomic.Int32) http.RoundTripper {
	return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		attempts.Add(1)
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		status, body := 529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
		if llmhttp.DetectProvider(req) == llmhttp.ProviderOpenAI {
			status, body = 503, `{"error":{"message":"The server is overloaded","type":"server_error","param":null,"code":"server_is_overloaded"}}`
		}
		return &http.Response{
			StatusCode: status, Status: http.StatusText(status),
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:  http.Header{"Content-Type": {"application/json"}},
			Body:    io.NopCloser(strings.NewReader(body)),
			Request: req,
		}, nil
	})
}

// TestAnthropicSDKOverOpenCircuit: once the circuit for the endpoint and
// model is open, anthropic-sdk-go with its default retries (2) makes no
// network attempt at all and returns its own *anthropic.Error for the local
// 503, which the circuit-open reply's X-Should-Retry: false keeps it from
// retrying.
func TestAnthropicSDKOverOpenCircuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		client := anthropic.NewClient(
			anthropicoption.WithAPIKey("sk-ant-test"),
			anthropicoption.WithHTTPClient(&http.Client{Transport: llmhttp.Chain(overloadedNetwork(&attempts), b.Wrap)}),
		)
		params := anthropic.MessageNewParams{
			Model:     anthropic.ModelClaudeSonnet4_5,
			MaxTokens: 16,
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		}
		key := "https://api.anthropic.com|" + string(anthropic.ModelClaudeSonnet4_5)

		// Trip it: the SDK retries each 529 twice on its own.
		for b.State(key) != llmhttp.StateOpen {
			if attempts.Load() > 20 {
				t.Fatalf("circuit still %v after %d attempts", b.State(key), attempts.Load())
			}
			_, err := client.Messages.New(context.Background(), params)
			if err == nil {
				t.Fatal("want an error from an overloaded endpoint")
			}
		}
		before := attempts.Load()

		_, err := client.Messages.New(context.Background(), params)
		if n := attempts.Load() - before; n != 0 {
			t.Errorf("%d network attempts over an open circuit, want 0", n)
		}
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %v (%T), want the SDK's own *anthropic.Error", err, err)
		}
		if apiErr.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("StatusCode = %d, want 503", apiErr.StatusCode)
		}
		if got := string(apiErr.Type()); got != "overloaded_error" {
			t.Errorf("Type() = %q, want overloaded_error", got)
		}
		r, ok := llmhttp.RefusalOf(apiErr.Response)
		if !ok || r.Reason != llmhttp.ReasonCircuitOpen || r.RetryAfter <= 0 {
			t.Errorf("RefusalOf(the SDK's response) = %+v, %v; want circuit-open with a Retry-After", r, ok)
		}
		if strings.Contains(err.Error(), "sk-ant-test") {
			t.Errorf("the API key leaked into the error: %v", err)
		}
	})
}

// TestOpenAISDKOverOpenCircuit is TestAnthropicSDKOverOpenCircuit for
// openai-go.
func TestOpenAISDKOverOpenCircuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		client := openai.NewClient(
			openaioption.WithAPIKey("sk-test"),
			openaioption.WithHTTPClient(&http.Client{Transport: llmhttp.Chain(overloadedNetwork(&attempts), b.Wrap)}),
		)
		params := openai.ChatCompletionNewParams{
			Model:    openai.ChatModelGPT4_1,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		}
		key := "https://api.openai.com|" + string(openai.ChatModelGPT4_1)
		for b.State(key) != llmhttp.StateOpen {
			if attempts.Load() > 20 {
				t.Fatalf("circuit still %v after %d attempts", b.State(key), attempts.Load())
			}
			if _, err := client.Chat.Completions.New(context.Background(), params); err == nil {
				t.Fatal("want an error from an overloaded endpoint")
			}
		}
		before := attempts.Load()

		_, err := client.Chat.Completions.New(context.Background(), params)
		if n := attempts.Load() - before; n != 0 {
			t.Errorf("%d network attempts over an open circuit, want 0", n)
		}
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %v (%T), want the SDK's own *openai.Error", err, err)
		}
		if apiErr.StatusCode != http.StatusServiceUnavailable || apiErr.Code != "circuit_open" {
			t.Errorf("StatusCode, Code = %d, %q; want 503, circuit_open", apiErr.StatusCode, apiErr.Code)
		}
	})
}
