package otel_test

import (
	"net/http"
	"testing"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	llmotel "github.com/llmhttp/llmhttp/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkObserver measures the full chain's happy path (see the core
// module's BenchmarkObserver, whose bare/none/noop variants it repeats for
// comparison) with this adapter attached.
func BenchmarkObserver(b *testing.B) {
	body := llmhttptest.ChatBody(1 << 10)
	variants := []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"none", func() http.RoundTripper { return llmhttp.New(llmhttptest.OKTransport()) }},
		{"otel", func() http.RoundTripper {
			obs, err := llmotel.NewObserver(llmotel.WithMeterProvider(
				sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))))
			if err != nil {
				b.Fatal(err)
			}
			return llmhttp.New(llmhttptest.OKTransport(), llmhttp.WithObserver(obs))
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
