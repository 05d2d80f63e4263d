package llmhttptest_test

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

// reqFor returns a request body for the endpoint at path.
func reqFor(path string, stream bool) string {
	if path == msgs {
		return anthropicReq("m", 100, "hello", stream)
	}
	return openAIReq("m", 100, "hello", stream, false)
}

func TestFaultReplies(t *testing.T) {
	cases := []struct {
		name       string
		fault      llmhttptest.Fault
		path       string
		status     int
		retryAfter string
		field      string // dotted JSON path …
		value      string // … and its value
	}{
		{"anthropic overloaded", llmhttptest.Fault{Kind: llmhttptest.Overloaded}, msgs, 529, "", "error.type", "overloaded_error"},
		{"openai overloaded", llmhttptest.Fault{Kind: llmhttptest.Overloaded, RetryAfter: 1500 * time.Millisecond}, chat, 503, "2", "error.code", "server_is_overloaded"},
		{"anthropic 500", llmhttptest.Fault{Kind: llmhttptest.ServerError}, msgs, 500, "", "error.type", "api_error"},
		{"openai 500", llmhttptest.Fault{Kind: llmhttptest.ServerError}, chat, 500, "", "error.type", "server_error"},
		{"anthropic 504", llmhttptest.Fault{Kind: llmhttptest.Timeout}, msgs, 504, "", "error.type", "timeout_error"},
		{"anthropic spend cap", llmhttptest.Fault{Kind: llmhttptest.Quota}, msgs, 429, "", "error.details.error_code", "enforced_spend_limit_reached"},
		{"openai quota", llmhttptest.Fault{Kind: llmhttptest.Quota}, chat, 429, "", "error.code", "insufficient_quota"},
		{"openai credits", llmhttptest.Fault{Kind: llmhttptest.Quota, Code: "credit_balance_exhausted"}, chat, 429, "", "error.code", "credit_balance_exhausted"},
		{"openai slow_down", llmhttptest.Fault{Kind: llmhttptest.SlowDown, RetryAfter: 10 * time.Second}, chat, 429, "10", "error.code", "slow_down"},
		{"anthropic acceleration", llmhttptest.Fault{Kind: llmhttptest.SlowDown, RetryAfter: time.Second}, msgs, 429, "1", "error.type", "rate_limit_error"},
		{"openai forced 429", llmhttptest.Fault{Kind: llmhttptest.RateLimit, RetryAfter: 3 * time.Second}, chat, 429, "3", "error.code", "rate_limit_exceeded"},
		{"anthropic forced 429", llmhttptest.Fault{Kind: llmhttptest.RateLimit, RetryAfter: 3 * time.Second}, msgs, 429, "3", "error.type", "rate_limit_error"},
		{"anthropic 413", llmhttptest.Fault{Kind: llmhttptest.TooLarge}, msgs, 413, "", "error.type", "request_too_large"},
		{"openai 413", llmhttptest.Fault{Kind: llmhttptest.TooLarge}, chat, 413, "", "error.code", "request_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := llmhttptest.NewHandler(llmhttptest.Config{Faults: []llmhttptest.Fault{c.fault}, Output: fixedOutput(1)})
				resp, b := do(t, h.Transport(), c.path, "k", reqFor(c.path, false))
				wantStatus(t, resp, b, c.status)
				wantHeader(t, resp, "retry-after", c.retryAfter)
				if got := jsonField(t, b, c.field); got != c.value {
					t.Errorf("%s = %v, want %s; body %s", c.field, got, c.value, b)
				}
				if c.path == msgs && jsonField(t, b, "type") != "error" {
					t.Errorf("not an Anthropic error envelope: %s", b)
				}
				// Faulted requests are not charged.
				h.ClearFaults()
				resp, b = do(t, h.Transport(), c.path, "k", reqFor(c.path, false))
				wantStatus(t, resp, b, 200)
				rem := resp.Header.Get("anthropic-ratelimit-requests-remaining") + resp.Header.Get("x-ratelimit-remaining-requests")
				if rem != "49" && rem != "499" {
					t.Errorf("requests remaining after a fault = %s: the fault was charged", rem)
				}
			})
		})
	}
}

func TestFaultCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(1)})
		h.Inject(llmhttptest.Fault{Kind: llmhttptest.Overloaded, Count: 2})
		var got []int
		for range 4 {
			resp, _ := do(t, h.Transport(), msgs, "k", reqFor(msgs, false))
			got = append(got, resp.StatusCode)
		}
		if want := []int{529, 529, 200, 200}; !slices.Equal(got, want) {
			t.Errorf("statuses = %v, want %v", got, want)
		}
	})
}

func TestFaultWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output: fixedOutput(1),
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.ServerError, Start: 10 * time.Second, Duration: 5 * time.Second}},
		})
		var got []int
		for _, at := range []time.Duration{0, 10 * time.Second, 4999 * time.Millisecond, time.Millisecond} {
			time.Sleep(at)
			resp, _ := do(t, h.Transport(), chat, "k", reqFor(chat, false))
			got = append(got, resp.StatusCode)
		}
		if want := []int{200, 500, 500, 200}; !slices.Equal(got, want) {
			t.Errorf("statuses at 0s, 10s, 14.999s, 15s = %v, want %v", got, want)
		}
		// Inject measures Start from the call.
		h.Inject(llmhttptest.Fault{Kind: llmhttptest.Timeout, Start: time.Minute, Count: 1})
		time.Sleep(59 * time.Second)
		if resp, _ := do(t, h.Transport(), chat, "k", reqFor(chat, false)); resp.StatusCode != 200 {
			t.Errorf("before the injected start: %d", resp.StatusCode)
		}
		time.Sleep(time.Second)
		if resp, _ := do(t, h.Transport(), chat, "k", reqFor(chat, false)); resp.StatusCode != 504 {
			t.Errorf("at the injected start: %d", resp.StatusCode)
		}
	})
}

func TestFaultFilters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output: fixedOutput(1),
			Faults: []llmhttptest.Fault{
				{Kind: llmhttptest.Overloaded, Provider: llmhttptest.OpenAI},
				{Kind: llmhttptest.ServerError, Model: "sick"},
			},
		})
		rt := h.Transport()
		for _, c := range []struct {
			path, body string
			want       int
		}{
			{chat, openAIReq("m", 10, "x", false, false), 503},
			{msgs, anthropicReq("m", 10, "x", false), 200},
			{msgs, anthropicReq("sick", 10, "x", false), 500},
			{chat, openAIReq("sick", 10, "x", false, false), 503}, // the first match wins
		} {
			if resp, _ := do(t, rt, c.path, "k", c.body); resp.StatusCode != c.want {
				t.Errorf("%s %s: %d, want %d", c.path, c.body, resp.StatusCode, c.want)
			}
		}
	})
}

// Probabilities are drawn from the seeded source: the same seed gives the
// same pattern, and the frequency is about p.
func TestFaultProbabilityIsSeeded(t *testing.T) {
	pattern := func(seed uint64) string {
		var b strings.Builder
		synctest.Test(t, func(t *testing.T) {
			h := llmhttptest.NewHandler(llmhttptest.Config{
				Seed:   seed,
				OpenAI: llmhttptest.Limits{RPM: llmhttptest.Unlimited, TPM: llmhttptest.Unlimited},
				Output: fixedOutput(1),
				Faults: []llmhttptest.Fault{{Kind: llmhttptest.ServerError, Probability: 0.3}},
			})
			for range 1000 {
				resp, _ := do(t, h.Transport(), chat, "k", reqFor(chat, false))
				if resp.StatusCode == 500 {
					b.WriteByte('x')
				} else {
					b.WriteByte('.')
				}
			}
		})
		return b.String()
	}
	a, b, c := pattern(1), pattern(1), pattern(2)
	if a != b {
		t.Error("the same seed gave different fault patterns")
	}
	if a == c {
		t.Error("different seeds gave the same fault pattern")
	}
	if n := strings.Count(a, "x"); n < 250 || n > 350 {
		t.Errorf("%d faults in 1000 at p=0.3", n)
	}
}

func TestFaultLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output: fixedOutput(1),
			Faults: []llmhttptest.Fault{
				{Kind: llmhttptest.Latency, Delay: 2 * time.Second},
				{Kind: llmhttptest.Latency, Delay: time.Second, Count: 1},
				{Kind: llmhttptest.Overloaded, Count: 1},
			},
		})
		for _, want := range []struct {
			d    time.Duration
			code int
		}{{3 * time.Second, 529}, {2 * time.Second, 200}} {
			start := time.Now()
			resp, _ := do(t, h.Transport(), msgs, "k", reqFor(msgs, false))
			if d := time.Since(start); d != want.d || resp.StatusCode != want.code {
				t.Errorf("took %v with %d, want %v with %d", d, resp.StatusCode, want.d, want.code)
			}
		}
	})
}

func TestFaultResetInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Faults: []llmhttptest.Fault{{Kind: llmhttptest.Reset, Count: 1}}})
		resp, err := send(t, h.Transport(), msgs, "k", reqFor(msgs, false))
		if resp != nil || err == nil {
			t.Fatalf("got %v, %v; want an error and no response", resp, err)
		}
		if !errors.Is(err, llmhttptest.ErrConnReset) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want ErrConnReset and io.ErrUnexpectedEOF", err)
		}
		if st := h.Stats(); st.Resets != 1 {
			t.Errorf("Resets = %d", st.Resets)
		}
	})
}

// On a real server the connection is hijacked and closed: the client's
// http.Transport returns an error (with an RST, "connection reset by peer").
func TestFaultResetOnServer(t *testing.T) {
	srv := llmhttptest.NewServer(llmhttptest.Config{Faults: []llmhttptest.Fault{{Kind: llmhttptest.Reset, Count: 1}}})
	defer srv.Close()
	c := srv.Client()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+msgs, strings.NewReader(reqFor(msgs, false)))
	req.Header.Set("x-api-key", "k")
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want a connection error", resp.StatusCode)
	}
	t.Logf("reset seen as: %v", err)
	// The next request works.
	req, _ = http.NewRequest(http.MethodPost, srv.URL+msgs, strings.NewReader(reqFor(msgs, false)))
	req.Header.Set("x-api-key", "k")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.Stats().Resets != 1 {
		t.Errorf("after the reset: %d, stats %+v", resp.StatusCode, srv.Stats())
	}
}

func TestFaultStreamError(t *testing.T) {
	for _, path := range []string{msgs, chat} {
		synctest.Test(t, func(t *testing.T) {
			h := llmhttptest.NewHandler(llmhttptest.Config{
				Output:        fixedOutput(16),
				TokenRounding: -1,
				Faults:        []llmhttptest.Fault{{Kind: llmhttptest.StreamError}},
			})
			// A non-streamed request is not hit.
			resp, b := do(t, h.Transport(), path, "k", reqFor(path, false))
			wantStatus(t, resp, b, 200)

			resp, b = do(t, h.Transport(), path, "k", reqFor(path, true))
			wantStatus(t, resp, b, 200)
			evs, err := readEvents(t, strings.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			last := evs[len(evs)-1]
			var deltas int
			for _, e := range evs {
				if e.name == "content_block_delta" || strings.Contains(e.data, `"content":"`) && !strings.Contains(e.data, `"content":""`) {
					deltas++
				}
			}
			if deltas != 2 { // 8 of 16 tokens, 4 per delta
				t.Errorf("%d deltas before the error, want 2", deltas)
			}
			if path == msgs {
				if last.name != "error" || jsonField(t, last.data, "error.type") != "overloaded_error" || jsonField(t, last.data, "type") != "error" {
					t.Errorf("last event = %+v", last)
				}
			} else if last.name != "" || jsonField(t, last.data, "error.code") != "server_is_overloaded" {
				t.Errorf("last event = %+v", last)
			}
			st := h.Stats()
			var out int64
			for _, p := range st.Partitions {
				out += p.OutputTokens
			}
			if st.StreamErrors != 1 || out != 16+8 {
				t.Errorf("stream errors %d, output charged %d; want 1, 24", st.StreamErrors, out)
			}
		})
	}
}

func TestFaultStreamCut(t *testing.T) {
	check := func(t *testing.T, rt http.RoundTripper, path string, inMemory bool) {
		resp, err := send(t, rt, path, "k", reqFor(path, true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		b, err := io.ReadAll(resp.Body)
		switch {
		case err == nil:
			t.Error("reading a cut stream succeeded")
		case inMemory && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("reading a cut stream: %v, want io.ErrUnexpectedEOF", err)
		}
		if strings.Contains(string(b), "message_stop") || strings.Contains(string(b), "[DONE]") {
			t.Errorf("a cut stream ended properly:\n%s", b)
		}
	}
	for _, path := range []string{msgs, chat} {
		synctest.Test(t, func(t *testing.T) {
			h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(16), Faults: []llmhttptest.Fault{{Kind: llmhttptest.StreamCut}}})
			check(t, h.Transport(), path, true)
		})
		srv := llmhttptest.NewServer(llmhttptest.Config{Output: fixedOutput(16), Faults: []llmhttptest.Fault{{Kind: llmhttptest.StreamCut}}})
		rt := hostRewrite{srv.URL, srv.Client().Transport}
		check(t, rt, path, false) // connection reset by peer
		srv.Close()
	}
}

// hostRewrite sends requests for http://fake.test to the server at url.
type hostRewrite struct {
	url string
	rt  http.RoundTripper
}

func (h hostRewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = "http", h.url[len("http://"):], ""
	return h.rt.RoundTrip(r2)
}
