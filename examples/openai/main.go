// Command openai runs llmhttp beneath the official OpenAI Go SDK
// (github.com/openai/openai-go/v3): a chat completion, a streamed one, and
// the same through option.WithMiddleware instead of option.WithHTTPClient.
//
// With OPENAI_API_KEY set it calls the real API (three small requests to
// gpt-4.1-mini); otherwise it starts llmhttptest's fake OpenAI API on a
// loopback port, whose first answer is a 429 rate_limit_exceeded, so that
// you can watch llmhttp wait it out and retry.
//
//	go run ./examples/openai
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	fake := &demo.Fake{Name: "OpenAI API", Config: fakeConfig()}
	cfg := config{Model: openai.ChatModelGPT4_1Mini}
	cfg.APIKey, cfg.BaseURL = fake.Key("OPENAI_API_KEY", "sk-fake", "/v1")
	demo.Main("openai", fake, func(ctx context.Context, w io.Writer) error { return run(ctx, w, cfg) })
}

// fakeConfig is the fake API of the demo: OpenAI's Tier 1 limits, short
// replies, and a 429 rate_limit_exceeded (Retry-After: 1) for the first
// request.
func fakeConfig() llmhttptest.Config { return demo.FakeConfig(llmhttptest.RateLimit) }

// config is what run needs.
type config struct {
	APIKey string
	// BaseURL is the API's address, ending in /v1; "" means the real API.
	BaseURL string
	Model   openai.ChatModel
	// Base is the transport beneath llmhttp; nil means a clone of
	// http.DefaultTransport with the SDK's ResponseHeaderTimeout (tests
	// put llmhttptest's in-memory transport here).
	Base http.RoundTripper
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	// The llmhttp chain: Retry → Breaker → Pacer → base, one for the whole
	// program. The hooks only print what llmhttp does; New(base) alone is
	// enough. The SDK's default client sets a 10-minute
	// ResponseHeaderTimeout, which option.WithHTTPClient replaces along with
	// the client: demo.Transport sets it again on the transport beneath.
	transport := llmhttp.New(demo.Transport(cfg.Base),
		llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: demo.LogRetry(w)}),
		llmhttp.WithPacerSettings(llmhttp.PacerSettings{OnWait: demo.LogWait(w)}),
	)

	client := openai.NewClient(cfg.options(
		option.WithHTTPClient(&http.Client{Transport: transport}),
		option.WithMaxRetries(0), // llmhttp owns retries; the SDK's own would multiply them
	)...)
	params := openai.ChatCompletionNewParams{
		Model:               cfg.Model,
		MaxCompletionTokens: openai.Int(64),
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.UserMessage("In one sentence: why pace requests to an LLM API?"),
		},
	}

	fmt.Fprintln(w, "Chat.Completions.New:")
	c, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		return fmt.Errorf("Chat.Completions.New: %w", err)
	}
	fmt.Fprintf(w, "  %s\n  (%d prompt, %d completion tokens)\n\n", c.Choices[0].Message.Content,
		c.Usage.PromptTokens, c.Usage.CompletionTokens)

	// Streaming goes through the same chain. llmhttp retries only before
	// the response head arrives; once a 200 is handed to the SDK, the
	// stream is the caller's and an error inside it is not retried.
	fmt.Fprintln(w, "Chat.Completions.NewStreaming:")
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	fmt.Fprint(w, "  ")
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		if len(chunk.Choices) > 0 {
			fmt.Fprint(w, chunk.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("Chat.Completions.NewStreaming: %w", err)
	}
	stream.Close()
	if len(acc.Choices) == 0 {
		return fmt.Errorf("the stream held no choice")
	}
	fmt.Fprintf(w, "\n  (finish reason %s, %d completion tokens)\n\n", acc.Choices[0].FinishReason, acc.Usage.CompletionTokens)

	// The other way in: option.WithMiddleware keeps the SDK's own HTTP
	// client (and its timeouts) and runs llmhttp above it; demo.Middleware
	// adapts an llmhttp chain to the SDK's middleware signature.
	fmt.Fprintln(w, "Chat.Completions.New through option.WithMiddleware:")
	opts := cfg.options(
		option.WithMiddleware(demo.Middleware(llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: demo.LogRetry(w)}))),
		option.WithMaxRetries(0),
	)
	if cfg.Base != nil { // tests: the in-memory fake instead of the SDK's default client
		opts = append(opts, option.WithHTTPClient(&http.Client{Transport: cfg.Base}))
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	viaMiddleware := openai.NewClient(opts...)
	c, err = viaMiddleware.Chat.Completions.New(ctx, params)
	if err != nil {
		return fmt.Errorf("Chat.Completions.New through the middleware: %w", err)
	}
	fmt.Fprintf(w, "  %s\n\n", c.Choices[0].Message.Content)

	// What the pacer learned from the rate-limit headers.
	demo.PrintPacer(w, transport.Pacer().Stats(), "requests", "tokens")
	return nil
}

// options returns the client options for cfg's key and address, then opts.
func (cfg config) options(opts ...option.RequestOption) []option.RequestOption {
	all := []option.RequestOption{option.WithAPIKey(cfg.APIKey)}
	if cfg.BaseURL != "" {
		all = append(all, option.WithBaseURL(cfg.BaseURL))
	}
	return append(all, opts...)
}
