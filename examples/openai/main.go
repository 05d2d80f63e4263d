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
	"os"
	"os/signal"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := config{APIKey: os.Getenv("OPENAI_API_KEY"), Model: openai.ChatModelGPT4_1Mini}
	if cfg.APIKey == "" {
		srv := llmhttptest.NewServer(fakeConfig())
		defer srv.Close()
		cfg.APIKey, cfg.BaseURL = "sk-fake", srv.URL+"/v1"
		fmt.Printf("OPENAI_API_KEY is not set: using llmhttptest's fake OpenAI API at %s\n\n", srv.URL)
	}
	if err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "openai:", err)
		os.Exit(1)
	}
}

// fakeConfig is the fake API of the demo: OpenAI's Tier 1 limits, short
// replies, and a 429 rate_limit_exceeded (Retry-After: 1) for the first
// request.
func fakeConfig() llmhttptest.Config {
	return llmhttptest.Config{
		Output: func(llmhttptest.Request) int64 { return 12 },
		Faults: []llmhttptest.Fault{{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: time.Second}},
	}
}

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
	// enough.
	transport := llmhttp.New(cfg.base(),
		llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: func(e llmhttp.RetryEvent) { logRetry(w, e) }}),
		llmhttp.WithPacerSettings(llmhttp.PacerSettings{OnWait: func(e llmhttp.WaitEvent) { logWait(w, e) }}),
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
	// client (and its timeouts) and runs llmhttp above it.
	fmt.Fprintln(w, "Chat.Completions.New through option.WithMiddleware:")
	opts := cfg.options(
		option.WithMiddleware(middleware(
			llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: func(e llmhttp.RetryEvent) { logRetry(w, e) }}),
		)),
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
	for _, st := range transport.Pacer().Stats() {
		fmt.Fprintf(w, "pacer, %s: sent %d, throttled %d\n", st.Partition.Model, st.Sent, st.Throttled)
		for _, b := range []struct {
			name string
			s    llmhttp.BucketStats
		}{{"requests", st.Requests}, {"tokens", st.Tokens}} {
			if b.s.Reported.Limit > 0 {
				fmt.Fprintf(w, "  %-8s %7d of %7d left (server's last report)\n", b.name, b.s.Reported.Remaining, b.s.Reported.Limit)
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
