// Package demo holds what the examples share that is not about wiring
// llmhttp beneath an SDK: the switch between a provider's real API and
// llmhttptest's fake one, the running of main, the printing of what llmhttp
// does, and the scaffolding of the examples' tests. Each example's main.go
// keeps the wiring itself in view.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

// FakeConfig returns the fake API of the SDK examples: llmhttptest's Tier 1
// limits, replies of 12 tokens, and a fault of the given kind, with a
// Retry-After of one second, for the first request.
func FakeConfig(kind llmhttptest.FaultKind) llmhttptest.Config {
	return llmhttptest.Config{
		Output: func(llmhttptest.Request) int64 { return 12 },
		Faults: []llmhttptest.Fault{{Kind: kind, Count: 1, RetryAfter: time.Second}},
	}
}

// Fake is llmhttptest's fake API on a loopback port, standing in for each
// provider whose key is not in the environment. It starts on first use;
// [Main] closes it.
type Fake struct {
	// Name is the fake's name in the notice that it is used, such as
	// "Anthropic API".
	Name string
	// Config is the fake's settings.
	Config llmhttptest.Config

	srv *llmhttptest.Server
}

// Key returns the API key in the environment variable env, and "" as the
// base URL: the provider's real API. When env is unset it returns fakeKey
// and the fake's address followed by path instead, and says so on stdout.
func (f *Fake) Key(env, fakeKey, path string) (key, baseURL string) {
	if key := os.Getenv(env); key != "" {
		return key, ""
	}
	if f.srv == nil {
		f.srv = llmhttptest.NewServer(f.Config)
	}
	fmt.Printf("%s is not set: using llmhttptest's fake %s at %s\n", env, f.Name, f.srv.URL)
	return fakeKey, f.srv.URL + path
}

// Main runs an example: run gets a context that an interrupt cancels and
// stdout to write to. If fake was used, a blank line follows its notices
// and Main closes it when run returns; fake may be nil. If run fails, Main
// prints the error after the example's name on stderr and exits with
// status 1.
func Main(name string, fake *Fake, run func(ctx context.Context, w io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	if fake != nil && fake.srv != nil {
		fmt.Println()
	}
	err := run(ctx, os.Stdout)
	stop()
	if fake != nil && fake.srv != nil {
		fake.srv.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
