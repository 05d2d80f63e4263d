package main

import (
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anthropics/anthropic-sdk-go"

	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// The example runs against the fake, served in memory on synctest's fake
// clock: the first request meets a 529 that llmhttp retries after the
// server's Retry-After, the SDK never retries on its own, and every call
// succeeds.
func TestAnthropicExample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(fakeConfig())
		cfg := config{APIKey: "sk-ant-test", BaseURL: "http://fake.test", Model: anthropic.ModelClaudeHaiku4_5, Base: h.Transport()}
		start := time.Now()
		got := demo.Output(t, func(w io.Writer) error { return run(t.Context(), w, cfg) })
		demo.Contains(t, got,
			"attempt 1 got 529 overloaded; retrying in 1", "the server's Retry-After",
			"Messages.NewStreaming", "stop reason end_turn, 12 output tokens",
			"through option.WithMiddleware", "pacer, claude-haiku-4-5: sent 3, throttled 0",
		)
		if strings.Count(got, "the fox saw") != 3 {
			t.Errorf("want three replies")
		}
		st := h.Stats()
		if st.ByStatus[529] != 1 || st.ByStatus[200] != 3 || st.Requests != 4 {
			t.Errorf("server saw %+v, want one 529 and three 200s", st.ByStatus)
		}
		if d := time.Since(start); d < time.Second || d > 10*time.Second {
			t.Errorf("run took %v; want the 1 s Retry-After and a few seconds of pacing at most", d)
		}
	})
}
