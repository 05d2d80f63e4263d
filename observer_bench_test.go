package llmhttp_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// BenchmarkObserver measures the observer path on the happy path of the
// full chain (New: retry → breaker → pacer) over a canned 200 with OpenAI
// rate-limit headers and a usage body, read to its end:
//
//   - bare: the base alone;
//   - none: no observer (the default; compare with the same chain before
//     observers existed, see the issue note);
//   - empty: an Observer with no hooks set;
//   - noop: every hook set to a function that does nothing — the cost of
//     producing every event, including reading the usage of the body;
//   - slog-off: WithLogger with a logger whose handler discards (Enabled
//     false), the default level check only;
//   - slog-json: WithLogger at Info to a JSON handler writing to
//     io.Discard (nothing is logged on the happy path).
func BenchmarkObserver(b *testing.B) {
	body := llmhttptest.ChatBody(1 << 10)
	noop := &llmhttp.Observer{
		OnRequest:            func(llmhttp.RequestEvent) {},
		OnAttemptStart:       func(llmhttp.AttemptEvent) {},
		OnAttempt:            func(llmhttp.AttemptEvent) {},
		OnRetry:              func(llmhttp.RetryEvent) {},
		OnWait:               func(llmhttp.WaitEvent) {},
		OnGate:               func(llmhttp.GateEvent) {},
		OnBreakerStateChange: func(llmhttp.BreakerEvent) {},
		OnRefusal:            func(llmhttp.RefusalEvent) {},
		OnUsage:              func(llmhttp.TokenUsageEvent) {},
		OnBudgetThreshold:    func(llmhttp.ThresholdEvent) {},
	}
	variants := []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"bare", func() http.RoundTripper { return llmhttptest.OKTransport() }},
		{"none", func() http.RoundTripper { return llmhttp.New(llmhttptest.OKTransport()) }},
		{"empty", func() http.RoundTripper {
			return llmhttp.New(llmhttptest.OKTransport(), llmhttp.WithObserver(&llmhttp.Observer{}))
		}},
		{"noop", func() http.RoundTripper { return llmhttp.New(llmhttptest.OKTransport(), llmhttp.WithObserver(noop)) }},
		{"slog-off", func() http.RoundTripper {
			return llmhttp.New(llmhttptest.OKTransport(), llmhttp.WithLogger(slog.New(slog.DiscardHandler)))
		}},
		{"slog-json", func() http.RoundTripper {
			return llmhttp.New(llmhttptest.OKTransport(), llmhttp.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
		}},
	}
	for _, v := range variants {
		for _, par := range []bool{false, true} {
			name := v.name + "/serial"
			if par {
				name = v.name + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				rt := v.rt()
				b.ReportAllocs()
				if !par {
					for b.Loop() {
						if err := llmhttptest.SendChat(rt, body); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := llmhttptest.SendChat(rt, body); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}
