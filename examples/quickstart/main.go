// Command quickstart shows what llmhttp changes, in numbers, without an API
// key. It sends the same burst of Claude requests — mostly short chat
// turns, some prompts with retrieved context, a few long documents, each
// with its own max_tokens — to a rate-limited fake Anthropic API
// (llmhttptest, on a loopback port) three times:
//
//   - through a plain http.Client, as most code sends them;
//   - through the same client retrying the way the official SDKs do by
//     default (2 retries, Retry-After honoured, else 0.5–8 s backoff);
//   - through llmhttp.New, which paces the burst from the rate-limit
//     headers and retries what is worth retrying;
//
// shows live progress while each runs, and ends with a side-by-side
// summary: goodput against what the server's limits allow, 429s, attempts
// per request, p50/p95 latency and failures.
//
// The fake enforces Anthropic's Tier 2 limits for Claude Sonnet (1,000
// requests, 450,000 input tokens and 90,000 output tokens per minute) on
// real minutes. The burst is about 1.4 minutes' worth of those limits: the
// buckets start full and admit the first minute's worth at once, and the
// rest has to be paced, so the three runs take well under a minute in all.
// -minute shortens the fake's minute; -requests and -concurrency change the
// burst. The quickstart never calls the real API: a burst like this one
// would throttle a real key and cost money.
//
//	go run ./examples/quickstart                # from the repository root
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.Requests, "requests", cfg.Requests, "requests in the burst")
	flag.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests in flight at once (the caller's worker pool)")
	flag.DurationVar(&cfg.Window, "minute", cfg.Window, "how long the fake server's rate-limit \"minute\" lasts (llmhttp's pacer assumes real minutes)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the workload and of the fake server")
	flag.Parse()
	cfg.TTY = isTerminal(os.Stdout)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// config is what a run of the quickstart depends on.
type config struct {
	// Requests is the size of the burst.
	Requests int
	// Concurrency is how many requests the caller keeps in flight, as a
	// worker pool (errgroup.SetLimit, a semaphore) would.
	Concurrency int
	// Limits are the fake server's rate limits per Window.
	Limits llmhttptest.Limits
	// Window is the fake server's "minute".
	Window time.Duration
	// Latency and TokenLatency shape the fake's response times: time to
	// the first token, then per generated token.
	Latency, TokenLatency time.Duration
	// Seed makes the workload and the server's draws repeatable.
	Seed uint64

	// TTY selects the progress display: one line rewritten in place on a
	// terminal, a line every ProgressEvery otherwise.
	TTY           bool
	ProgressEvery time.Duration

	// InMemory serves the fake in memory (llmhttptest.Transport) instead of
	// on a loopback socket, so that tests can run the quickstart on
	// testing/synctest's fake clock.
	InMemory bool
}

func defaultConfig() config {
	return config{
		Requests:    400,
		Concurrency: 64,
		// Anthropic's Tier 2 limits for Claude Sonnet, per minute.
		Limits:        llmhttptest.Limits{RPM: 1000, ITPM: 450_000, OTPM: 90_000},
		Window:        time.Minute,
		Latency:       400 * time.Millisecond,
		TokenLatency:  6 * time.Millisecond,
		Seed:          1,
		ProgressEvery: 3 * time.Second,
	}
}

// run fires the burst through each client in turn and prints the summary.
func run(ctx context.Context, w io.Writer, cfg config) error {
	reports, err := compare(ctx, w, cfg)
	if err != nil {
		return err
	}
	printSummary(w, cfg, reports)
	return nil
}

// isTerminal reports whether f is a terminal (a character device), where
// progress can rewrite one line in place.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
