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
// clock: the first call takes two attempts (a 529, then a 200), each with its
// own span under the application's span; the second takes one.
func TestOtelhttpExample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(fakeConfig())
		cfg := config{APIKey: "sk-ant-test", BaseURL: "http://fake.test", Base: h.Transport()}
		got := demo.Output(t, func(w io.Writer) error { return run(t.Context(), w, cfg) })
		demo.Contains(t, got,
			"attempt 1 POST /v1/messages → 529",
			"attempt 2 POST /v1/messages → 200",
			"call    POST /v1/messages → 200 after 2 attempt(s)",
			"call    POST /v1/messages → 200 after 1 attempt(s)",
			"\nsummarise-documents",
			"\n  HTTP POST", "http.response.status_code=529",
			"http.request.resend_count=1 http.response.status_code=200",
		)
		spans := got[strings.Index(got, "spans:"):]
		if n := strings.Count(spans, "\n  HTTP POST"); n != 3 {
			t.Errorf("%d attempt spans under the application's span, want 3 (one per attempt)", n)
		}
		if st := h.Stats(); st.ByStatus[529] != 1 || st.ByStatus[200] != 2 {
			t.Errorf("server saw %+v, want one 529 and two 200s", st.ByStatus)
		}
	})
}
