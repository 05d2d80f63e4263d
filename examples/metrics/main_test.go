package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
)

// The burst runs on synctest's fake clock against the in-memory fake; the
// /metrics page then shows what the server saw.
func TestMetricsPageMatchesTheServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := defaultConfig()
		cfg.InMemory = true
		reg := prometheus.NewRegistry()
		var out bytes.Buffer
		sum, err := run(t.Context(), &out, cfg, reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())
		if sum.OK != cfg.Requests {
			t.Errorf("%d of %d requests succeeded", sum.OK, cfg.Requests)
		}

		rec := httptest.NewRecorder()
		metricsMux(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("/metrics: %d", rec.Code)
		}
		page := rec.Body.String()
		const l = `host="https://api.anthropic.test",model="claude-sonnet-4-5"`
		want := []string{
			`llmhttp_requests_total{class="ok",` + l + `} ` + strconv.Itoa(cfg.Requests),
			`llmhttp_request_duration_seconds_count{` + l + `} ` + strconv.Itoa(cfg.Requests),
			`llmhttp_queued{` + l + `} 0`,
			`llmhttp_in_flight{` + l + `} 0`,
			`llmhttp_ratelimit_limit{` + l + `,resource="requests"} 50`,
		}
		// Every answer the server sent is an attempt llmhttp counted.
		for code, n := range sum.Server.ByStatus {
			want = append(want, `llmhttp_attempts_total{code="`+strconv.Itoa(code)+`",`+l+`} `+strconv.FormatInt(n, 10))
		}
		if sum.Server.ByStatus[529] == 0 {
			t.Errorf("no 529 in the burst: %v", sum.Server.ByStatus)
		} else {
			want = append(want, `llmhttp_retries_total{class="overloaded",`+l+`} `+strconv.FormatInt(sum.Server.ByStatus[529], 10))
		}
		var input, output int64
		for _, p := range sum.Server.Partitions {
			input, output = input+p.InputTokens, output+p.OutputTokens
		}
		want = append(want,
			`llmhttp_tokens_total{`+l+`,type="input"} `+strconv.FormatInt(input, 10),
			`llmhttp_tokens_total{`+l+`,type="output"} `+strconv.FormatInt(output, 10))
		for _, w := range want {
			if !strings.Contains(page, w+"\n") {
				t.Errorf("/metrics lacks %s", w)
			}
		}
		for _, name := range []string{"llmhttp_wait_seconds_bucket", "llmhttp_attempt_duration_seconds_bucket"} {
			if !strings.Contains(page, name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		if strings.Contains(page, apiKey) {
			t.Error("/metrics shows the API key")
		}
		if sum.Throttle/sum.Attempts >= 0.01 {
			t.Errorf("429 rate %.3f, want < 1 %%", sum.Throttle/sum.Attempts)
		}
	})
}
