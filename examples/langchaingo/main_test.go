package main

import (
	"io"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// The example runs against the fake, served in memory on synctest's fake
// clock: the first request meets an overload that llmhttp retries, and all
// four calls (two per provider, one of them streamed) succeed.
func TestLangchaingoExample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(fakeConfig())
		cfg := config{
			AnthropicKey: "sk-ant-test", AnthropicURL: "http://fake.test/v1", AnthropicModel: "claude-haiku-4-5",
			OpenAIKey: "sk-test", OpenAIURL: "http://fake.test/v1", OpenAIModel: "gpt-4.1-mini",
			Base: h.Transport(),
		}
		got := demo.Output(t, func(w io.Writer) error { return run(t.Context(), w, cfg) })
		demo.Contains(t, got,
			"attempt 1 got 529 overloaded; retrying in 1",
			"anthropic GenerateContent, streamed", "openai GenerateContent, streamed",
		)
		if n := strings.Count(got, "the fox saw two big owl fly off and one red ant"); n != 4 {
			t.Errorf("got %d whole replies, want 4", n)
		}
		st := h.Stats()
		if st.ByStatus[529] != 1 || st.ByStatus[200] != 4 {
			t.Errorf("server saw %+v, want one 529 and four 200s", st.ByStatus)
		}
	})
}
