// Command anthropic runs llmhttp beneath the official Anthropic Go SDK
// (github.com/anthropics/anthropic-sdk-go): a message, a streamed message,
// and the same through option.WithMiddleware instead of
// option.WithHTTPClient.
//
// With ANTHROPIC_API_KEY set it calls the real API (three small requests to
// Claude Haiku); otherwise it starts llmhttptest's fake Anthropic API on a
// loopback port, whose first answer is a 529 overloaded_error, so that you
// can watch llmhttp retry it.
//
//	go run ./examples/anthropic
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	fake := &demo.Fake{Name: "Anthropic API", Config: fakeConfig()}
	cfg := config{Model: anthropic.ModelClaudeHaiku4_5}
	cfg.APIKey, cfg.BaseURL = fake.Key("ANTHROPIC_API_KEY", "sk-ant-fake", "")
	demo.Main("anthropic", fake, func(ctx context.Context, w io.Writer) error { return run(ctx, w, cfg) })
}

// fakeConfig is the fake API of the demo: Anthropic's Tier 1 limits, short
// replies, and a 529 overloaded_error (Retry-After: 1) for the first request.
func fakeConfig() llmhttptest.Config { return demo.FakeConfig(llmhttptest.Overloaded) }

// config is what run needs.
type config struct {
	APIKey string
	// BaseURL is the API's address; "" means the real API.
	BaseURL string
	Model   anthropic.Model
	// Base is the transport beneath llmhttp; nil means a clone of
	// http.DefaultTransport with the SDK's ResponseHeaderTimeout (tests
	// put llmhttptest's in-memory transport here).
	Base http.RoundTripper
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	// The llmhttp chain: Retry → Breaker → Pacer → base. One Transport for
	// the whole program: its pacer learns the key's limits from every
	// response. The hooks only print what llmhttp does; New(base) alone is
	// enough. The SDK's default client sets a 10-minute
	// ResponseHeaderTimeout, which option.WithHTTPClient replaces along with
	// the client: demo.Transport sets it again on the transport beneath.
	transport := llmhttp.New(demo.Transport(cfg.Base),
		llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: demo.LogRetry(w)}),
		llmhttp.WithPacerSettings(llmhttp.PacerSettings{OnWait: demo.LogWait(w)}),
	)

	client := anthropic.NewClient(cfg.options(
		option.WithHTTPClient(&http.Client{Transport: transport}),
		option.WithMaxRetries(0), // llmhttp owns retries; the SDK's own would multiply them
	)...)
	params := anthropic.MessageNewParams{
		Model:     cfg.Model,
		MaxTokens: 64,
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("In one sentence: why pace requests to an LLM API?")),
		},
	}

	fmt.Fprintln(w, "Messages.New:")
	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		return fmt.Errorf("Messages.New: %w", err)
	}
	fmt.Fprintf(w, "  %s\n  (%d input, %d output tokens)\n\n", text(msg), msg.Usage.InputTokens, msg.Usage.OutputTokens)

	// Streaming goes through the same chain. llmhttp retries only before
	// the response head arrives; once a 200 is handed to the SDK, the
	// stream is the caller's and an error event inside it is not retried.
	fmt.Fprintln(w, "Messages.NewStreaming:")
	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	fmt.Fprint(w, "  ")
	for stream.Next() {
		ev := stream.Current()
		if err := acc.Accumulate(ev); err != nil {
			return fmt.Errorf("accumulating the stream: %w", err)
		}
		if d, ok := ev.AsAny().(anthropic.ContentBlockDeltaEvent); ok {
			fmt.Fprint(w, d.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("Messages.NewStreaming: %w", err)
	}
	stream.Close()
	fmt.Fprintf(w, "\n  (stop reason %s, %d output tokens)\n\n", acc.StopReason, acc.Usage.OutputTokens)

	// The other way in: option.WithMiddleware keeps the SDK's own HTTP
	// client (and its timeouts) and runs llmhttp above it; demo.Middleware
	// adapts an llmhttp chain to the SDK's middleware signature.
	fmt.Fprintln(w, "Messages.New through option.WithMiddleware:")
	opts := cfg.options(
		option.WithMiddleware(demo.Middleware(llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: demo.LogRetry(w)}))),
		option.WithMaxRetries(0),
	)
	if cfg.Base != nil { // tests: the in-memory fake instead of the SDK's default client
		opts = append(opts, option.WithHTTPClient(&http.Client{Transport: cfg.Base}))
	}
	mw := anthropic.NewClient(opts...)
	msg, err = mw.Messages.New(ctx, params)
	if err != nil {
		return fmt.Errorf("Messages.New through the middleware: %w", err)
	}
	fmt.Fprintf(w, "  %s\n\n", text(msg))

	// What the pacer learned from the rate-limit headers.
	demo.PrintPacer(w, transport.Pacer().Stats(), "requests", "input tokens", "output tokens")
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

func text(msg *anthropic.Message) string {
	var b strings.Builder
	for _, block := range msg.Content {
		b.WriteString(block.Text)
	}
	return b.String()
}
