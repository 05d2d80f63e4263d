package llmhttp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slRecords decodes the JSON log lines in buf.
func slRecords(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func TestLoggerLevelsAndAttributes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{
				{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: 2 * time.Second},
				{Kind: llmhttptest.ServerError, Count: 1},
			},
		})
		var buf bytes.Buffer
		l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
		tr := llmhttp.New(h.Transport(), append(obExact, llmhttp.WithLogger(l),
			llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{ConsecutiveFailures: 1, OpenDuration: 3 * time.Second}))...)
		req := obRequest(t.Context(), t)
		req.Header.Set("X-Stainless-Retry-Count", "1")
		code, err := obDo(t, tr, req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)

		assert.NotContains(t, buf.String(), obKey)
		assert.NotContains(t, buf.String(), obPrompt)
		part := map[string]any{"host": "https://api.anthropic.test", "model": "claude-sonnet-4-5",
			"credential": llmhttp.Fingerprint(obKey)}
		with := func(m map[string]any) map[string]any {
			for k, v := range part {
				m[k] = v
			}
			return m
		}
		noCred := func(m map[string]any) map[string]any {
			m["host"], m["model"] = part["host"], part["model"]
			return m
		}
		assert.Equal(t, []map[string]any{
			with(map[string]any{"level": "INFO", "msg": "llmhttp: gate closed", "for": 2e9,
				"until": "2000-01-01T00:00:02Z", "class": "rate_limited", "status": 429.0}),
			with(map[string]any{"level": "INFO", "msg": "llmhttp: retrying", "attempt": 1.0, "class": "rate_limited",
				"status": 429.0, "delay": 2e9, "server_delay": true}),
			noCred(map[string]any{"level": "WARN", "msg": "llmhttp: circuit open", "from": "closed", "to": "open",
				"until": "2000-01-01T00:00:05Z"}),
			with(map[string]any{"level": "INFO", "msg": "llmhttp: retrying", "attempt": 2.0, "class": "server",
				"status": 500.0, "delay": 1e9, "server_delay": false}),
			with(map[string]any{"level": "WARN", "msg": "llmhttp: refused", "reason": "circuit-open",
				"retry_after": 2e9, "retried": true}),
			with(map[string]any{"level": "INFO", "msg": "llmhttp: retrying", "attempt": 3.0, "class": "local",
				"status": 503.0, "delay": 2e9, "server_delay": true}),
			noCred(map[string]any{"level": "INFO", "msg": "llmhttp: circuit half-open", "from": "open", "to": "half-open"}),
			noCred(map[string]any{"level": "INFO", "msg": "llmhttp: circuit closed", "from": "half-open", "to": "closed"}),
			with(map[string]any{"level": "WARN", "msg": "llmhttp: an SDK above llmhttp retries too; set its max retries to 0",
				"sdk_retry_count": 1.0}),
		}, slRecords(t, &buf))
	})
}

// Debug adds every attempt and wait.
func TestLoggerDebug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: time.Second}},
		})
		var buf bytes.Buffer
		l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		tr := llmhttp.New(h.Transport(), append(obExact, llmhttp.WithLogger(l))...)
		_, err := obDo(t, tr, obRequest(t.Context(), t))
		require.NoError(t, err)
		var msgs []string
		for _, r := range slRecords(t, &buf) {
			msgs = append(msgs, r["level"].(string)+" "+r["msg"].(string))
		}
		assert.Equal(t, []string{
			"DEBUG llmhttp: attempt", "INFO llmhttp: gate closed", "INFO llmhttp: retrying",
			"DEBUG llmhttp: waited", "DEBUG llmhttp: gate open", "DEBUG llmhttp: attempt",
		}, msgs)
		assert.NotContains(t, buf.String(), obKey)
	})
}

// Without WithLogger nothing is logged, not even through slog.Default; a
// nil logger is ignored.
func TestLoggerDefaultDiscards(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Faults: []llmhttptest.Fault{{Kind: llmhttptest.RateLimit, Count: 1, RetryAfter: time.Second}},
		})
		for _, tr := range []*llmhttp.Transport{llmhttp.New(h.Transport()), llmhttp.New(h.Transport(), llmhttp.WithLogger(nil))} {
			code, err := obDo(t, tr, obRequest(t.Context(), t))
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, code)
		}
	})
	assert.Empty(t, buf.String())
	assert.Nil(t, llmhttp.LogObserver(nil))
	assert.Nil(t, llmhttp.LogObserver(slog.New(slog.DiscardHandler)), "a discarding logger costs nothing")
}

// An error's text is logged without the URL, which may carry a key.
func TestLoggerErrorWithoutURL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			return nil, &url.Error{Op: "Get", URL: req.URL.String(), Err: errors.New("connection refused")}
		})
		var buf bytes.Buffer
		l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		tr := llmhttp.New(base, llmhttp.WithLogger(l), llmhttp.WithoutPacing(),
			llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{MaxAttempts: 2}))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://gemini.example.test/v1/models?key="+obKey, nil)
		_, err := tr.RoundTrip(req)
		require.Error(t, err)
		assert.Contains(t, buf.String(), "connection refused")
		assert.NotContains(t, buf.String(), obKey)
	})
}

// A shared store's fallback is a Warn with its error (without a URL), its
// recovery an Info with how long it was down.
func TestLoggerStore(t *testing.T) {
	var buf bytes.Buffer
	o := llmhttp.LogObserver(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	require.NotNil(t, o.OnStore)
	o.OnStore(llmhttp.StoreEvent{Store: "redis", Err: &url.Error{Op: "Get", URL: "https://x.test/?key=" + obKey,
		Err: errors.New("i/o timeout")}})
	o.OnStore(llmhttp.StoreEvent{Store: "redis", Shared: true, Since: time.Now(), Down: 3 * time.Second})
	assert.Equal(t, []map[string]any{
		{"level": "WARN", "msg": "llmhttp: shared store failed; falling back to this process's own state",
			"store": "redis", "error": "i/o timeout"},
		{"level": "INFO", "msg": "llmhttp: shared store answers again; its state is shared again",
			"store": "redis", "down": 3e9},
	}, slRecords(t, &buf))
	assert.NotContains(t, buf.String(), obKey)

	buf.Reset()
	o = llmhttp.LogObserver(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	o.OnStore(llmhttp.StoreEvent{Store: "redis", Shared: true, Down: time.Second})
	assert.Empty(t, buf.String(), "a recovery is Info")
}
