package llmhttptest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

// BenchmarkTransport measures one request through the in-memory Transport:
// a bare handler (the baseline: what the Transport itself costs), then the
// fake API answering a Messages request whole and streamed.
func BenchmarkTransport(b *testing.B) {
	unlimited := llmhttptest.Limits{RPM: llmhttptest.Unlimited, ITPM: llmhttptest.Unlimited, OTPM: llmhttptest.Unlimited}
	fake := llmhttptest.NewHandler(llmhttptest.Config{Anthropic: unlimited, Output: fixedOutput(64)})
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	})
	for _, c := range []struct {
		name string
		h    http.Handler
		body string
	}{
		{"bare", bare, anthropicReq("m", 100, chars(100), false)},
		{"messages", fake, anthropicReq("m", 100, chars(100), false)},
		{"messages-stream", fake, anthropicReq("m", 100, chars(100), true)},
	} {
		b.Run(c.name, func(b *testing.B) {
			rt := llmhttptest.NewTransport(c.h)
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, "http://fake.test/v1/messages", strings.NewReader(c.body))
				req.Header.Set("x-api-key", "k")
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}
