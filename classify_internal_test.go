package llmhttp

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestSuspectSpendCap(t *testing.T) {
	const plain = `{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}`
	const details = `{"type":"error","error":{"type":"rate_limit_error","message":"m","details":{"reason":"x"}}}`
	const openai = `{"error":{"type":"rate_limit_error","code":"slow_down","message":"m"}}`
	cases := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		classify   bool
		want       bool
	}{
		{"row 12a", 429, "", plain, true, true},
		{"with retry-after is row 12", 429, "23", plain, true, false},
		{"with details", 429, "", details, true, false},
		{"OpenAI shape", 429, "", openai, true, false},
		{"not a 429", 529, "", plain, true, false},
		{"not classified yet", 429, "", plain, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tc.body)), ContentLength: -1}
			if tc.retryAfter != "" {
				resp.Header.Set("Retry-After", tc.retryAfter)
			}
			if tc.classify {
				Classify(resp, nil)
			}
			if got := suspectSpendCap(resp); got != tc.want {
				t.Errorf("suspectSpendCap = %v, want %v", got, tc.want)
			}
		})
	}
	if suspectSpendCap(nil) {
		t.Error("suspectSpendCap(nil) = true")
	}
}
