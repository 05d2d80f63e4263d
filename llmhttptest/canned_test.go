package llmhttptest_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// OKTransport drains the request body and answers a 200 whose usage and
// rate-limit headers llmhttp reads; ChatBody is about the size asked;
// SendChat reports transport errors and any status but 200.
func TestCanned(t *testing.T) {
	body := llmhttptest.ChatBody(1 << 10)
	assert.InDelta(t, 1<<10, len(body), 12)
	assert.Contains(t, string(llmhttptest.ChatBody(0)), `"model":"gpt-bench"`)

	rb := &readCloser{Reader: strings.NewReader(string(body))}
	req, err := http.NewRequest(http.MethodPost, "https://api.openai.test/v1/chat/completions", rb)
	require.NoError(t, err)
	resp, err := llmhttptest.OKTransport().RoundTrip(req)
	require.NoError(t, err)
	assert.True(t, rb.closed, "request body closed")
	assert.Zero(t, rb.Len(), "request body read to its end")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Same(t, req, resp.Request)
	lim := llmhttp.ParseLimits(resp.Header, time.Now())
	assert.EqualValues(t, 10000, lim.Requests.Limit)
	assert.EqualValues(t, 29999000, lim.Tokens.Remaining)
	reply, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Contains(t, string(reply), `"total_tokens":262`)

	require.NoError(t, llmhttptest.SendChat(llmhttptest.OKTransport(), body))
	boom := errors.New("boom")
	assert.ErrorIs(t, llmhttptest.SendChat(llmhttp.RoundTripFunc(func(*http.Request) (*http.Response, error) { return nil, boom }), body), boom)
	err = llmhttptest.SendChat(llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusTooManyRequests, Body: http.NoBody, Request: req}, nil
	}), body)
	assert.ErrorContains(t, err, "429")
}

type readCloser struct {
	*strings.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

// Body's prompt counts exactly the tokens asked, and NewRequest reaches
// each provider's endpoint with its credential.
func TestBodyAndNewRequest(t *testing.T) {
	h := llmhttptest.NewHandler(llmhttptest.Config{})
	for _, p := range []llmhttptest.Provider{llmhttptest.Anthropic, llmhttptest.OpenAI} {
		req := llmhttptest.NewRequest(t.Context(), p, "", "sk-test", llmhttptest.Body(p, "model", 123, 5))
		require.NotNil(t, req.GetBody)
		resp, err := h.Transport().RoundTrip(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		if p == llmhttptest.Anthropic {
			assert.Contains(t, string(b), `"input_tokens":123`)
		} else {
			assert.Contains(t, string(b), `"prompt_tokens":123`)
		}
	}
	assert.Equal(t, "http://127.0.0.1:1/v1/messages",
		llmhttptest.NewRequest(t.Context(), llmhttptest.Anthropic, "http://127.0.0.1:1", "k", nil).URL.String())
	assert.Panics(t, func() { llmhttptest.NewRequest(t.Context(), llmhttptest.OpenAI, "://bad", "k", nil) })
}
