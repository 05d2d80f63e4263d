package prom_test

import (
	"net/http"
	"testing"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/llmhttp/llmhttp/prom"
	"github.com/prometheus/client_golang/prometheus"
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
		{"prom", func() http.RoundTripper {
			c, err := prom.New(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			return llmhttp.New(llmhttptest.OKTransport(), llmhttp.WithObserver(c.Observer()))
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
