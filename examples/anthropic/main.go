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
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := config{APIKey: os.Getenv("ANTHROPIC_API_KEY"), Model: anthropic.ModelClaudeHaiku4_5}
	if cfg.APIKey == "" {
		srv := llmhttptest.NewServer(fakeConfig())
		defer srv.Close()
		cfg.APIKey, cfg.BaseURL = "sk-ant-fake", srv.URL
		fmt.Printf("ANTHROPIC_API_KEY is not set: using llmhttptest's fake Anthropic API at %s\n\n", srv.URL)
	}
	if err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "anthropic:", err)
		os.Exit(1)
	}
}

// fakeConfig is the fake API of the demo: Anthropic's Tier 1 limits, short
// replies, and a 529 overloaded_error (Retry-After: 1) for the first request.
func fakeConfig() llmhttptest.Config {
	return llmhttptest.Config{
		Output: func(llmhttptest.Request) int64 { return 12 },
		Faults: []llmhttptest.Fault{{Kind: llmhttptest.Overloaded, Count: 1, RetryAfter: time.Second}},
	}
}

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
	// response.
	// The hooks only print what llmhttp does; New(base) alone is enough.
	transport := llmhttp.New(cfg.base(),
		llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: func(e llmhttp.RetryEvent) { logRetry(w, e) }}),
		llmhttp.WithPacerSettings(llmhttp.PacerSettings{OnWait: func(e llmhttp.WaitEvent) { logWait(w, e) }}),
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
	// client (and its timeouts) and runs llmhttp above it.
	fmt.Fprintln(w, "Messages.New through option.WithMiddleware:")
	opts := cfg.options(
		option.WithMiddleware(middleware(llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{
			OnRetry: func(e llmhttp.RetryEvent) { logRetry(w, e) },
		}))),
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
	for _, st := range transport.Pacer().Stats() {
		fmt.Fprintf(w, "pacer, %s: sent %d, throttled %d\n", st.Partition.Model, st.Sent, st.Throttled)
		for _, b := range []struct {
			name string
			s    llmhttp.BucketStats
		}{{"requests", st.Requests}, {"input tokens", st.InputTokens}, {"output tokens", st.OutputTokens}} {
			if b.s.Reported.Limit > 0 {
				fmt.Fprintf(w, "  %-13s %7d of %7d left (server's last report)\n", b.name, b.s.Reported.Remaining, b.s.Reported.Limit)
			}
		}
	}
	return nil
}

// middleware adapts an llmhttp chain to option.WithMiddleware. The SDK
// calls a middleware once per attempt of its own, with next sending the
// request through its HTTP client; the chain is built once (its pacer and
// breaker keep state across requests) over a base that calls the next of
// the request at hand, carried in the request's context.
func middleware(opts ...llmhttp.Option) option.Middleware {
	type nextKey struct{}
	chain := llmhttp.New(llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		next := req.Context().Value(nextKey{}).(option.MiddlewareNext)
		return next(req)
	}), opts...)
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		return chain.RoundTrip(req.WithContext(context.WithValue(req.Context(), nextKey{}, next)))
	}
}

// base returns the transport beneath llmhttp. The SDK's default client
// sets a 10-minute ResponseHeaderTimeout, which option.WithHTTPClient
// replaces along with the client: set it again on the transport you pass.
func (cfg config) base() http.RoundTripper {
	if cfg.Base != nil {
		return cfg.Base
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 10 * time.Minute
	return t
}

// options returns the client options for cfg's key and address, then opts.
func (cfg config) options(opts ...option.RequestOption) []option.RequestOption {
	all := []option.RequestOption{option.WithAPIKey(cfg.APIKey)}
	if cfg.BaseURL != "" {
		all = append(all, option.WithBaseURL(cfg.BaseURL))
	}
	return append(all, opts...)
}

func logRetry(w io.Writer, e llmhttp.RetryEvent) {
	what := e.Class.String()
	if e.Status != 0 {
		what = fmt.Sprintf("%d %s", e.Status, e.Class)
	}
	from := "backoff"
	if e.ServerDelay {
		from = "the server's Retry-After"
	}
	fmt.Fprintf(w, "  llmhttp: attempt %d got %s; retrying in %v (%s)\n", e.Attempt, what, e.Delay.Round(time.Millisecond), from)
}

func logWait(w io.Writer, e llmhttp.WaitEvent) {
	if e.Refusal != nil {
		fmt.Fprintf(w, "  llmhttp: the pacer refused the request: %v\n", e.Refusal)
	} else if e.Waited >= 10*time.Millisecond {
		fmt.Fprintf(w, "  llmhttp: the pacer held the request %v (%s)\n", e.Waited.Round(time.Millisecond), e.Cause)
	}
}

func text(msg *anthropic.Message) string {
	var b strings.Builder
	for _, block := range msg.Content {
		b.WriteString(block.Text)
	}
	return b.String()
}
