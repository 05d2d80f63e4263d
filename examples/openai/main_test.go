package main

import (
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// The example runs against the fake, served in memory on synctest's fake
// clock: the first request meets a 429 that llmhttp waits out and retries,
// the SDK never retries on its own, and every call succeeds.
func TestOpenAIExample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(fakeConfig())
		cfg := config{APIKey: "sk-test", BaseURL: "http://fake.test/v1", Model: openai.ChatModelGPT4_1Mini, Base: h.Transport()}
		start := time.Now()
		got := demo.Output(t, func(w io.Writer) error { return run(t.Context(), w, cfg) })
		demo.Contains(t, got,
			"attempt 1 got 429 rate_limited; retrying in 1", "the server's Retry-After",
			"Chat.Completions.NewStreaming", "finish reason stop, 12 completion tokens",
			"through option.WithMiddleware", "pacer, gpt-4.1-mini: sent 3, throttled 1",
		)
		if strings.Count(got, "the fox saw") != 3 {
			t.Errorf("want three replies")
		}
		st := h.Stats()
		if st.ByStatus[429] != 1 || st.ByStatus[200] != 3 || st.Requests != 4 {
			t.Errorf("server saw %+v, want one 429 and three 200s", st.ByStatus)
		}
		if d := time.Since(start); d < time.Second || d > 10*time.Second {
			t.Errorf("run took %v; want the 1 s Retry-After and a little more at most", d)
		}
	})
}
