package llmhttp_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/llmhttp/llmhttp"
)

// The retry layer's overhead on the happy path: one attempt, a 200, against
// a bare in-memory RoundTripFunc. The base reads and closes the request body
// and answers from a reused response, the caller reads and closes the
// response body, so that "bare" and "retry" differ by the layer alone.
//
//	go test -run '^$' -bench BenchmarkRetry -benchmem -cpu 1,2 .

// benchRetryBase returns a base that consumes the request body and answers
// with a response whose body is size bytes, reusing its buffers.
func benchRetryBase(size int) http.RoundTripper {
	payload := bytes.Repeat([]byte("x"), size)
	return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		return &http.Response{
			StatusCode: http.StatusOK, Status: "200 OK",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          io.NopCloser(bytes.NewReader(payload)),
			ContentLength: int64(size),
			Request:       req,
		}, nil
	})
}

// benchRetryRequest returns an Anthropic-style POST of a size-byte body
// (GetBody set, as the SDKs set it) and a function that rewinds it.
func benchRetryRequest(b *testing.B, size int) (*http.Request, func()) {
	payload := bytes.Repeat([]byte("x"), size)
	rd := bytes.NewReader(payload)
	req, err := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages", rd)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("X-Api-Key", "sk-ant-bench")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("X-Stainless-Retry-Count", "0")
	body := req.Body
	return req, func() { rd.Seek(0, io.SeekStart); req.Body = body }
}

func benchRetryRoundTrip(b *testing.B, rt http.RoundTripper, req *http.Request) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func BenchmarkRetry(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"100KiB", 100 << 10}} {
		base := benchRetryBase(size.n)
		for _, layer := range []struct {
			name string
			rt   http.RoundTripper
		}{
			{"bare", base},
			{"retry", llmhttp.Retry(llmhttp.RetryPolicy{})(base)},
		} {
			b.Run(size.name+"/"+layer.name, func(b *testing.B) {
				req, rewind := benchRetryRequest(b, size.n)
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				for b.Loop() {
					rewind()
					benchRetryRoundTrip(b, layer.rt, req)
				}
			})
			b.Run(size.name+"/"+layer.name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				b.RunParallel(func(pb *testing.PB) {
					req, rewind := benchRetryRequest(b, size.n)
					for pb.Next() {
						rewind()
						benchRetryRoundTrip(b, layer.rt, req)
					}
				})
			})
		}
	}
}

// BenchmarkRetryOverhead isolates the layer's own cost: the base answers
// with one reused response and allocates nothing, so "retry" minus "bare" is
// what the layer adds per request.
func BenchmarkRetryOverhead(b *testing.B) {
	resp := &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{},
		Body: http.NoBody,
	}
	base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp.Request = req
		return resp, nil
	})
	for _, layer := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"bare", base},
		{"retry", llmhttp.Retry(llmhttp.RetryPolicy{})(base)},
	} {
		b.Run(layer.name, func(b *testing.B) {
			req, _ := benchRetryRequest(b, 1<<10)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := layer.rt.RoundTrip(req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(layer.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := benchRetryRequest(b, 1<<10)
				for pb.Next() {
					if _, err := layer.rt.RoundTrip(req); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
