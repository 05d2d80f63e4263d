package main

import (
	"io"
	"strings"
	"testing"
	"testing/synctest"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// The example runs against the fake, served in memory on synctest's fake
// clock: the first request meets a 503 overload that llmhttp retries, and
// both calls succeed.
func TestGoOpenAIExample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(fakeConfig())
		cfg := config{APIKey: "sk-test", BaseURL: "http://fake.test/v1", Model: openai.GPT4Dot1Mini, Base: h.Transport()}
		got := demo.Output(t, func(w io.Writer) error { return run(t.Context(), w, cfg) })
		demo.Contains(t, got,
			"attempt 1 got 503 overloaded; retrying in 1",
			"(13 prompt, 12 completion tokens)", "CreateChatCompletionStream", "(12 completion tokens)",
		)
		if strings.Count(got, "the fox saw") != 2 {
			t.Errorf("want two replies")
		}
		if st := h.Stats(); st.ByStatus[503] != 1 || st.ByStatus[200] != 2 {
			t.Errorf("server saw %+v, want one 503 and two 200s", st.ByStatus)
		}
	})
}

// A billing 429 (insufficient_quota) is never retried: go-openai gets the
// provider's error at once, decoded as usual.
func TestGoOpenAIExampleQuota(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.Quota}},
		})
		cfg := config{APIKey: "sk-test", BaseURL: "http://fake.test/v1", Model: openai.GPT4Dot1Mini, Base: h.Transport()}
		err := run(t.Context(), io.Discard, cfg)
		if err == nil || !strings.Contains(err.Error(), "HTTP 429 insufficient_quota") {
			t.Fatalf("run = %v, want the provider's insufficient_quota error, not retried", err)
		}
		if st := h.Stats(); st.Requests != 1 {
			t.Errorf("server saw %d requests; a quota error must not be retried", st.Requests)
		}
	})
}
