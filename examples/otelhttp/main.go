// Command otelhttp composes llmhttp's layers with other middlewares using
// llmhttp.Chain: OpenTelemetry's otelhttp inside the retry layer, so that
// every attempt on the wire gets its own client span (as the OTel HTTP
// semantic conventions ask), and a plain logging RoundTripper on each side —
// one line per call above Retry, one per attempt below it.
//
//	caller
//	  └─ logCalls       one line per call
//	      └─ Retry      owns attempts
//	          └─ Breaker
//	              └─ Pacer
//	                  └─ otelhttp       one span per attempt that is sent
//	                      └─ logAttempts  one line per attempt
//	                          └─ base
//
// The spans are kept in memory and printed at the end, under the parent span
// the application opened for its work.
//
// With ANTHROPIC_API_KEY set it calls the real API (two small requests to
// Claude Haiku); otherwise it starts llmhttptest's fake Anthropic API on a
// loopback port, whose first answer is a 529 overloaded_error.
//
//	go run ./examples/otelhttp
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	fake := &demo.Fake{Name: "Anthropic API", Config: fakeConfig()}
	cfg := config{}
	cfg.APIKey, cfg.BaseURL = fake.Key("ANTHROPIC_API_KEY", "sk-ant-fake", "")
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.anthropic.com"
	}
	demo.Main("otelhttp", fake, func(ctx context.Context, w io.Writer) error { return run(ctx, w, cfg) })
}

// fakeConfig is the fake API of the demo: Tier 1 limits, short replies, and
// a 529 overloaded_error (Retry-After: 1) for the first request.
func fakeConfig() llmhttptest.Config { return demo.FakeConfig(llmhttptest.Overloaded) }

// config is what run needs.
type config struct {
	APIKey  string
	BaseURL string // the API's address, "https://api.anthropic.com" for the real one
	// Base is the transport at the bottom of the chain; nil means
	// http.DefaultTransport (tests put llmhttptest's in-memory transport
	// here).
	Base http.RoundTripper
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	// An in-memory span recorder stands in for an exporter; in production
	// this is your OTLP exporter behind a batch span processor.
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	// Chain puts its first middleware outermost. The three llmhttp layers
	// are built here one by one to show where the others go; llmhttp.New(
	// otelhttp.NewTransport(base)) builds the same chain without the logs.
	pacer := llmhttp.NewPacer(llmhttp.PacerSettings{})
	breaker := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
	client := &http.Client{Transport: llmhttp.Chain(cfg.Base,
		logCalls(w),
		llmhttp.Retry(llmhttp.RetryPolicy{}),
		breaker.Wrap,
		pacer.Wrap,
		func(next http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(next, otelhttp.WithTracerProvider(tp))
		},
		logAttempts(w),
	)}

	// The application's own span: the attempts' spans are its children.
	ctx, span := tp.Tracer("example").Start(ctx, "summarise-documents")
	for i, doc := range []string{"the first document", "the second document"} {
		if err := summarise(ctx, client, cfg, doc); err != nil {
			span.End()
			return fmt.Errorf("request %d: %w", i+1, err)
		}
	}
	span.End()

	fmt.Fprintln(w, "\nspans:")
	printSpans(w, spans.Ended())
	return nil
}

// summarise sends one Messages request with net/http.
func summarise(ctx context.Context, c *http.Client, cfg config, doc string) error {
	body := fmt.Sprintf(`{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"Summarise %s."}]}`, doc)
	req, err := demo.NewMessagesRequest(ctx, cfg.BaseURL, cfg.APIKey, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// attemptsKey carries a call's attempt counter from logCalls down to
// logAttempts.
type attemptsKey struct{}

// logCalls logs each call once, with its final status and how many attempts
// it took. It sits above Retry.
func logCalls(w io.Writer) llmhttp.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			attempts := new(atomic.Int32)
			req = req.WithContext(context.WithValue(req.Context(), attemptsKey{}, attempts))
			start := time.Now()
			resp, err := next.RoundTrip(req)
			status := fmt.Sprint("error: ", err)
			if err == nil {
				status = fmt.Sprint(resp.StatusCode)
			}
			fmt.Fprintf(w, "call    %s %s → %s after %d attempt(s), %v\n", req.Method, req.URL.Path, status,
				attempts.Load(), time.Since(start).Round(time.Millisecond))
			return resp, err
		})
	}
}

// logAttempts logs each attempt that goes on the wire, and records its
// number on the attempt's span as http.request.resend_count, the OTel
// attribute for retries. It sits below otelhttp, whose span is in the
// request's context.
func logAttempts(w io.Writer) llmhttp.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			n := int32(1)
			if c, ok := req.Context().Value(attemptsKey{}).(*atomic.Int32); ok {
				n = c.Add(1)
			}
			if n > 1 {
				trace.SpanFromContext(req.Context()).SetAttributes(attribute.Int("http.request.resend_count", int(n-1)))
			}
			start := time.Now()
			resp, err := next.RoundTrip(req)
			status := fmt.Sprint("error: ", err)
			if err == nil {
				status = fmt.Sprint(resp.StatusCode)
			}
			fmt.Fprintf(w, "attempt %d %s %s → %s, %v\n", n, req.Method, req.URL.Path, status, time.Since(start).Round(time.Millisecond))
			return resp, err
		})
	}
}

// printSpans prints spans as a tree, children under their parent, each
// level in order of start.
func printSpans(w io.Writer, spans []sdktrace.ReadOnlySpan) {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent(); p.IsValid() && ids[p.SpanID()] {
			children[p.SpanID()] = append(children[p.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var print func(s sdktrace.ReadOnlySpan, depth int)
	print = func(s sdktrace.ReadOnlySpan, depth int) {
		var attrs []string
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case "http.response.status_code", "http.request.resend_count", "error.type":
				attrs = append(attrs, fmt.Sprintf("%s=%s", kv.Key, kv.Value.Emit()))
			}
		}
		line := fmt.Sprintf("%s%-*s %8v  %s", strings.Repeat("  ", depth), 24-2*depth, s.Name(),
			s.EndTime().Sub(s.StartTime()).Round(time.Millisecond), strings.Join(attrs, " "))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		for _, c := range children[s.SpanContext().SpanID()] {
			print(c, depth+1)
		}
	}
	for _, r := range roots {
		print(r, 0)
	}
}
