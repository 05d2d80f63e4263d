package llmhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/llmhttp/llmhttp"
)

// An endpoint answering every request with 529 Overloaded: after ten
// failures in a row the circuit for its host and model opens, and further
// requests get a local 503 at once, without reaching the network.
func ExampleBreaker() {
	b := llmhttp.NewBreaker(llmhttp.BreakerSettings{
		OnStateChange: func(key string, from, to llmhttp.State) {
			fmt.Printf("%s: %s → %s\n", key, from, to)
		},
	})
	sent := 0
	overloaded := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		sent++
		req.Body.Close()
		return &http.Response{
			StatusCode: 529,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)),
			Request:    req,
		}, nil
	})
	client := &http.Client{Transport: llmhttp.Chain(overloaded, b.Wrap)}

	var last *http.Response
	for range 12 {
		req, _ := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages",
			strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[]}`))
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		last = resp
	}
	fmt.Println("sent:", sent)
	fmt.Println("state:", b.State("https://api.anthropic.com|claude-sonnet-4-5"))
	fmt.Println("last reply:", last.StatusCode, last.Header.Get("Llmhttp-Refusal"),
		"X-Should-Retry:", last.Header.Get("X-Should-Retry"))
	if r, ok := llmhttp.RefusalOf(last); ok {
		fmt.Println("retry in about", r.RetryAfter.Round(time.Second))
	}
	// Output:
	// https://api.anthropic.com|claude-sonnet-4-5: closed → open
	// sent: 10
	// state: open
	// last reply: 503 circuit-open X-Should-Retry: false
	// retry in about 30s
}
