package sdktest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/openai/openai-go/v3"
	openaioption "github.com/openai/openai-go/v3/option"
)

// These tests run the official SDKs, unchanged, against llmhttptest: over a
// loopback server with option.WithBaseURL, and in memory inside synctest.

func fakeOutput(n int64) func(llmhttptest.Request) int64 {
	return func(llmhttptest.Request) int64 { return n }
}

func fakeAnthropic(base string, opts ...anthropicoption.RequestOption) anthropic.Client {
	return anthropic.NewClient(append([]anthropicoption.RequestOption{
		anthropicoption.WithBaseURL(base), anthropicoption.WithAPIKey("sk-ant-test"),
	}, opts...)...)
}

func fakeOpenAI(base string, opts ...openaioption.RequestOption) openai.Client {
	return openai.NewClient(append([]openaioption.RequestOption{
		openaioption.WithBaseURL(base + "/v1"), openaioption.WithAPIKey("sk-test"),
	}, opts...)...)
}

var fakeMessage = anthropic.MessageNewParams{
	Model:     "claude-sonnet-4-5",
	MaxTokens: 100,
	Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello, Claude"))},
}

func fakeChat(stream bool) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{
		Model:               "gpt-4o",
		MaxCompletionTokens: openai.Int(100),
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello, GPT")},
	}
	if stream {
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	}
	return p
}

const fakeText = "the fox saw two big owl fly off"

func TestFakeAnthropicMessages(t *testing.T) {
	srv := llmhttptest.NewServer(llmhttptest.Config{Output: fakeOutput(8)})
	defer srv.Close()
	client := fakeAnthropic(srv.URL)
	ctx := context.Background()

	msg, err := client.Messages.New(ctx, fakeMessage)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != fakeText || msg.StopReason != anthropic.StopReasonEndTurn {
		t.Errorf("message = %+v", msg)
	}
	if msg.Usage.InputTokens != 4 || msg.Usage.OutputTokens != 8 {
		t.Errorf("usage = %+v", msg.Usage)
	}

	stream := client.Messages.NewStreaming(ctx, fakeMessage)
	var acc anthropic.Message
	var events []string
	for stream.Next() {
		ev := stream.Current()
		events = append(events, ev.Type)
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if len(acc.Content) != 1 || acc.Content[0].Text != fakeText || acc.Usage.OutputTokens != 8 || acc.Usage.InputTokens != 4 {
		t.Errorf("accumulated = %+v", acc)
	}
	if got := strings.Join(events, " "); got != "message_start content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop" {
		t.Errorf("events = %s", got)
	}
	if st := srv.Stats(); st.ByStatus[200] != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFakeAnthropicErrors(t *testing.T) {
	srv := llmhttptest.NewServer(llmhttptest.Config{
		Anthropic: llmhttptest.Limits{RPM: 1},
		Output:    fakeOutput(8),
	})
	defer srv.Close()
	client := fakeAnthropic(srv.URL, anthropicoption.WithMaxRetries(0))
	ctx := context.Background()
	if _, err := client.Messages.New(ctx, fakeMessage); err != nil {
		t.Fatal(err)
	}
	_, err := client.Messages.New(ctx, fakeMessage)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *anthropic.Error", err)
	}
	if apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" {
		t.Errorf("status %d type %q", apiErr.StatusCode, apiErr.Type())
	}
	if apiErr.RequestID == "" || !strings.Contains(apiErr.RawJSON(), `"request_id":"`+apiErr.RequestID+`"`) {
		t.Errorf("request id %q, body %s", apiErr.RequestID, apiErr.RawJSON())
	}
	if !strings.Contains(apiErr.RawJSON(), "of 1 requests per minute") {
		t.Errorf("body = %s", apiErr.RawJSON())
	}
	if got := apiErr.Response.Header.Get("retry-after"); got != "60" {
		t.Errorf("retry-after = %q", got)
	}

	// The spend cap: same type, details intact, no retry-after.
	srv.Inject(llmhttptest.Fault{Kind: llmhttptest.Quota, Count: 1})
	_, err = client.Messages.New(ctx, fakeMessage)
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.RawJSON(), `"error_code":"enforced_spend_limit_reached"`) || apiErr.Response.Header.Get("retry-after") != "" {
		t.Errorf("spend cap: %v", err)
	}

	// A mid-stream error event reaches the caller as the SDK's error.
	srv2 := llmhttptest.NewServer(llmhttptest.Config{Output: fakeOutput(8), Faults: []llmhttptest.Fault{{Kind: llmhttptest.StreamError}}})
	defer srv2.Close()
	client2 := fakeAnthropic(srv2.URL)
	stream := client2.Messages.NewStreaming(ctx, fakeMessage)
	n := 0
	for stream.Next() {
		n++
	}
	stream.Close()
	if !errors.As(stream.Err(), &apiErr) || apiErr.Type() != "overloaded_error" {
		t.Errorf("stream error = %v after %d events", stream.Err(), n)
	}
}

func TestFakeOpenAIChat(t *testing.T) {
	srv := llmhttptest.NewServer(llmhttptest.Config{Output: fakeOutput(8)})
	defer srv.Close()
	client := fakeOpenAI(srv.URL)
	ctx := context.Background()

	c, err := client.Chat.Completions.New(ctx, fakeChat(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || c.Choices[0].Message.Content != fakeText || c.Choices[0].FinishReason != "stop" {
		t.Errorf("completion = %+v", c)
	}
	if c.Usage.PromptTokens != 3 || c.Usage.CompletionTokens != 8 || c.Usage.TotalTokens != 11 {
		t.Errorf("usage = %+v", c.Usage)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, fakeChat(true))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatal("the accumulator refused a chunk")
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != fakeText || acc.Usage.CompletionTokens != 8 || acc.Usage.PromptTokens != 3 {
		t.Errorf("accumulated = %+v", acc.ChatCompletion)
	}
}

func TestFakeOpenAIErrors(t *testing.T) {
	srv := llmhttptest.NewServer(llmhttptest.Config{
		OpenAI: llmhttptest.Limits{RPM: 1},
		Output: fakeOutput(8),
	})
	defer srv.Close()
	client := fakeOpenAI(srv.URL, openaioption.WithMaxRetries(0))
	ctx := context.Background()
	if _, err := client.Chat.Completions.New(ctx, fakeChat(false)); err != nil {
		t.Fatal(err)
	}
	_, err := client.Chat.Completions.New(ctx, fakeChat(false))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *openai.Error", err)
	}
	if apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "requests" ||
		!strings.Contains(apiErr.Message, "on requests per min (RPM): Limit 1, Used 1, Requested 1") {
		t.Errorf("error = %d %q %q %q", apiErr.StatusCode, apiErr.Code, apiErr.Type, apiErr.Message)
	}
	if !strings.Contains(apiErr.RawJSON(), `"param":null`) {
		t.Errorf("body = %s", apiErr.RawJSON())
	}

	srv.Inject(llmhttptest.Fault{Kind: llmhttptest.Quota, Count: 1})
	_, err = client.Chat.Completions.New(ctx, fakeChat(false))
	if !errors.As(err, &apiErr) || apiErr.Code != "insufficient_quota" || apiErr.Type != "insufficient_quota" {
		t.Errorf("quota: %v", err)
	}

	srv2 := llmhttptest.NewServer(llmhttptest.Config{Output: fakeOutput(8), Faults: []llmhttptest.Fault{{Kind: llmhttptest.StreamError}}})
	defer srv2.Close()
	client2 := fakeOpenAI(srv2.URL)
	stream := client2.Chat.Completions.NewStreaming(ctx, fakeChat(true))
	for stream.Next() {
	}
	stream.Close()
	// openai-go reports an in-stream error as a plain error with the data.
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), `"code":"server_is_overloaded"`) {
		t.Errorf("stream error = %v", err)
	}
}

// Inside a synctest bubble, over the in-memory transport, the SDKs' own
// retries wait out the fake's retry-after on the fake clock.
func TestFakeSDKsRetryOnFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic: llmhttptest.Limits{RPM: 1},
			OpenAI:    llmhttptest.Limits{RPM: 1},
			Output:    fakeOutput(8),
		})
		hc := &http.Client{Transport: h.Transport()}
		ac := fakeAnthropic("http://fake.test", anthropicoption.WithHTTPClient(hc))
		oc := fakeOpenAI("http://fake.test", openaioption.WithHTTPClient(hc))
		ctx := t.Context()
		start := time.Now()
		for range 2 {
			if _, err := ac.Messages.New(ctx, fakeMessage); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if _, err := oc.Chat.Completions.New(ctx, fakeChat(false)); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d < 2*time.Minute {
			t.Errorf("two pairs of requests at 1 RPM took %v", d)
		}
		st := h.Stats()
		if st.ByStatus[200] != 4 || st.ByStatus[429] < 2 {
			t.Errorf("stats = %+v", st)
		}
	})
}
