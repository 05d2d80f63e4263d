// Command go-openai runs llmhttp beneath github.com/sashabaranov/go-openai,
// through ClientConfig.HTTPClient: a chat completion and a streamed one.
//
// go-openai has no retry loop of its own, so there is nothing to turn off:
// llmhttp adds the retries, the pacing and the circuit breaker. Its default
// client is a bare &http.Client{} without timeouts; the one below keeps the
// official SDKs' 10-minute ResponseHeaderTimeout.
//
// With OPENAI_API_KEY set it calls the real API (two small requests to
// gpt-4.1-mini); otherwise it starts llmhttptest's fake OpenAI API on a
// loopback port, whose first answer is a 503 server_is_overloaded, so that
// you can watch llmhttp retry it.
//
//	go run ./examples/go-openai
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	fake := &demo.Fake{Name: "OpenAI API", Config: fakeConfig()}
	cfg := config{Model: openai.GPT4Dot1Mini}
	cfg.APIKey, cfg.BaseURL = fake.Key("OPENAI_API_KEY", "sk-fake", "/v1")
	demo.Main("go-openai", fake, func(ctx context.Context, w io.Writer) error { return run(ctx, w, cfg) })
}

// fakeConfig is the fake API of the demo: OpenAI's Tier 1 limits, short
// replies, and a 503 server_is_overloaded (Retry-After: 1) for the first
// request.
func fakeConfig() llmhttptest.Config { return demo.FakeConfig(llmhttptest.Overloaded) }

// config is what run needs.
type config struct {
	APIKey string
	// BaseURL is the API's address, ending in /v1; "" means the real API.
	BaseURL string
	Model   string
	// Base is the transport beneath llmhttp; nil means a clone of
	// http.DefaultTransport with a ResponseHeaderTimeout (tests put
	// llmhttptest's in-memory transport here).
	Base http.RoundTripper
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	// The hooks only print what llmhttp does; New(base) alone is enough.
	transport := llmhttp.New(demo.Transport(cfg.Base),
		llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: func(e llmhttp.RetryEvent) {
			fmt.Fprintf(w, "  llmhttp: attempt %d got %d %s; retrying in %v\n",
				e.Attempt, e.Status, e.Class, e.Delay.Round(time.Millisecond))
		}}),
	)

	oc := openai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = cfg.BaseURL
	}
	oc.HTTPClient = &http.Client{Transport: transport}
	client := openai.NewClientWithConfig(oc)

	req := openai.ChatCompletionRequest{
		Model:               cfg.Model,
		MaxCompletionTokens: 64,
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleUser, Content: "In one sentence: why pace requests to an LLM API?"},
		},
	}

	fmt.Fprintln(w, "CreateChatCompletion:")
	resp, err := client.CreateChatCompletion(ctx, req)
	if err != nil {
		return explain("CreateChatCompletion", err)
	}
	fmt.Fprintf(w, "  %s\n  (%d prompt, %d completion tokens)\n\n", resp.Choices[0].Message.Content,
		resp.Usage.PromptTokens, resp.Usage.CompletionTokens)

	// Streaming: llmhttp retries only before the response head arrives;
	// once the stream has begun it is the caller's.
	fmt.Fprintln(w, "CreateChatCompletionStream:")
	req.Stream = true
	req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	stream, err := client.CreateChatCompletionStream(ctx, req)
	if err != nil {
		return explain("CreateChatCompletionStream", err)
	}
	defer stream.Close()
	fmt.Fprint(w, "  ")
	var usage *openai.Usage
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return explain("the stream", err)
		}
		if len(chunk.Choices) > 0 {
			fmt.Fprint(w, chunk.Choices[0].Delta.Content)
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
	}
	if usage == nil {
		return errors.New("the stream ended without its usage chunk")
	}
	fmt.Fprintf(w, "\n  (%d completion tokens)\n", usage.CompletionTokens)
	return nil
}

// explain adds what the provider said to err. When llmhttp answered the
// request itself (a local reply: circuit open, a wait longer than the
// deadline), go-openai decodes its OpenAI-shaped body like any API error,
// with the reason in Code.
func explain(what string, err error) error {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s: HTTP %d %v: %w", what, apiErr.HTTPStatusCode, apiErr.Code, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
