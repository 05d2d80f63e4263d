package otel_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/llmhttp/llmhttp"
	llmotel "github.com/llmhttp/llmhttp/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkObserver measures the full chain's happy path (see the core
// module's BenchmarkObserver, whose bare/none/noop variants it repeats for
// comparison) with this adapter attached.
func BenchmarkObserver(b *testing.B) {
	body := obBenchBody(1 << 10)
	variants := []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"none", func() http.RoundTripper { return llmhttp.New(obBenchBase()) }},
		{"otel", func() http.RoundTripper {
			obs, err := llmotel.NewObserver(llmotel.WithMeterProvider(
				sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))))
			if err != nil {
				b.Fatal(err)
			}
			return llmhttp.New(obBenchBase(), llmhttp.WithObserver(obs))
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
						obBenchOnce(b, rt, body)
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						obBenchOnce(b, rt, body)
					}
				})
			})
		}
	}
}

// obBenchBody returns a chat request body of about size bytes.
func obBenchBody(size int) []byte {
	head := `{"model":"gpt-bench","max_completion_tokens":256,"messages":[{"role":"user","content":"`
	tail := `"}]}`
	return []byte(head + strings.Repeat("lorem ipsum ", max(size-len(head)-len(tail), 0)/12) + tail)
}

// obBenchBase reads the request body and answers a canned 200.
func obBenchBase() llmhttp.RoundTripFunc {
	const reply = `{"id":"x","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":250,"completion_tokens":12,"total_tokens":262}}`
	return func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		h := http.Header{
			"Content-Type":                   {"application/json"},
			"X-Ratelimit-Limit-Requests":     {"10000"},
			"X-Ratelimit-Remaining-Requests": {"9999"},
			"X-Ratelimit-Reset-Requests":     {"6ms"},
			"X-Ratelimit-Limit-Tokens":       {"30000000"},
			"X-Ratelimit-Remaining-Tokens":   {"29999000"},
			"X-Ratelimit-Reset-Tokens":       {"2ms"},
		}
		return &http.Response{
			StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: h, Body: io.NopCloser(strings.NewReader(reply)), ContentLength: int64(len(reply)),
			Request: req,
		}, nil
	}
}

// obBenchOnce sends one request and reads its response to the end.
func obBenchOnce(b *testing.B, rt http.RoundTripper, body []byte) {
	req, err := http.NewRequest(http.MethodPost, "https://api.openai.test/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk-bench")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
