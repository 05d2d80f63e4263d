// Command quickstart sends a request through llmhttp to an in-memory fake
// LLM API. (A later change turns it into a burst against llmhttptest.)
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/llmhttp/llmhttp"
)

func main() {
	fake := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"type":"message","content":[{"type":"text","text":"hello"}]}`)),
			Request:    req,
		}, nil
	})
	client := &http.Client{Transport: llmhttp.New(fake)}
	resp, err := client.Post("https://api.anthropic.com/v1/messages", "application/json",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
}
