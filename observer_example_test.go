package llmhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/llmhttp/llmhttp"
)

// An Observer sees each attempt and retry; Stats counts them per partition.
func ExampleWithObserver() {
	calls := 0
	base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		calls++
		status, h := http.StatusOK, http.Header{}
		if calls == 1 {
			status = http.StatusTooManyRequests
			h.Set("Retry-After-Ms", "1") // wait 1 ms, then try again
		}
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(`{}`)), Request: req}, nil
	})
	t := llmhttp.New(base, llmhttp.WithObserver(&llmhttp.Observer{
		OnAttempt: func(e llmhttp.AttemptEvent) {
			fmt.Printf("attempt %d: %d %s\n", e.Attempt, e.Status, e.Class)
		},
		OnRetry: func(e llmhttp.RetryEvent) {
			fmt.Printf("retrying after attempt %d (server delay: %v)\n", e.Attempt, e.ServerDelay)
		},
	}))
	req, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
	req.Header.Set("Authorization", "Bearer sk-example")
	resp, err := t.RoundTrip(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	for _, s := range t.Stats() {
		fmt.Printf("%s: requests %d, attempts %d, 429s %d, retries %d\n",
			s.Partition.Model, s.Requests, s.Attempts, s.RateLimited, s.Retries)
	}
	// Output:
	// attempt 1: 429 rate_limited
	// retrying after attempt 1 (server delay: true)
	// attempt 2: 200 ok
	// gpt-4o: requests 1, attempts 2, 429s 1, retries 1
}
