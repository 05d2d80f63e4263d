package llmhttp_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/stretchr/testify/require"
)

// pcUpstream is a scripted in-memory upstream for pacer tests: it records
// when each request arrived and answers with reply.
type pcUpstream struct {
	mu    sync.Mutex
	reply func(n int, req *http.Request) *http.Response
	sent  []pcSent
}

// pcSent is one request the upstream received.
type pcSent struct {
	at time.Time
	id string
}

func (u *pcUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	u.mu.Lock()
	u.sent = append(u.sent, pcSent{at: time.Now(), id: req.Header.Get("X-Test-Id")})
	n := len(u.sent)
	reply := u.reply
	u.mu.Unlock()
	var resp *http.Response
	if reply != nil {
		resp = reply(n, req)
	}
	if resp == nil {
		resp = pcResp(http.StatusOK, `{"ok":true}`)
	}
	resp.Request = req
	return resp, nil
}

// log returns a copy of what the upstream received.
func (u *pcUpstream) log() []pcSent {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]pcSent(nil), u.sent...)
}

// count returns how many requests the upstream received.
func (u *pcUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.sent)
}

// pcResp returns a response with status, body and header pairs kv.
func pcResp(status int, body string, kv ...string) *http.Response {
	h := make(http.Header)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}
}

// pcOpenAIHeaders returns OpenAI rate-limit header pairs for a request
// bucket of limit per minute with remaining left.
func pcOpenAIHeaders(limit, remaining int) []string {
	reset := time.Duration(float64(limit-remaining) / float64(limit) * float64(time.Minute))
	return []string{
		"X-Ratelimit-Limit-Requests", strconv.Itoa(limit),
		"X-Ratelimit-Remaining-Requests", strconv.Itoa(remaining),
		"X-Ratelimit-Reset-Requests", reset.String(),
	}
}

// pcReq returns an OpenAI chat request for model, tagged id, with a body
// GetBody can replay.
func pcReq(ctx context.Context, model, id string) *http.Request {
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hello there"}],"max_tokens":10}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.example.test/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", "Bearer sk-test")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Id", id)
	return req
}

// pcDo sends req through rt and returns the status and headers, with the
// body read and closed.
func pcDo(t *testing.T, rt http.RoundTripper, req *http.Request) (int, http.Header, error) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// pcRefused sends req through rt and returns the local refusal it must be
// answered with, the response's body closed.
func pcRefused(t *testing.T, rt http.RoundTripper, req *http.Request) *llmhttp.Refusal {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	r, ok := llmhttp.RefusalOf(resp)
	require.True(t, ok, "a local refusal")
	return r
}

// pcStats returns the pacer's only partition's stats.
func pcStats(t *testing.T, p *llmhttp.Pacer) llmhttp.PacerStats {
	t.Helper()
	st := p.Stats()
	if len(st) != 1 {
		t.Fatalf("pacer has %d partitions, want 1", len(st))
	}
	return st[0]
}

// pcExact is a jitter of 0, for exact release times.
func pcExact(time.Duration) time.Duration { return 0 }

// pcTrackedBody is a request body that records whether it was closed.
type pcTrackedBody struct {
	io.Reader
	mu     sync.Mutex
	closed int
}

func (b *pcTrackedBody) Close() error {
	b.mu.Lock()
	b.closed++
	b.mu.Unlock()
	return nil
}

func (b *pcTrackedBody) closes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}
