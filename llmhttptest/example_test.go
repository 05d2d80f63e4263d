package llmhttptest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

// A fake Anthropic API allowing 2 requests per minute: the third request
// gets a 429 with retry-after, as the real API would send it.
func Example() {
	srv := llmhttptest.NewServer(llmhttptest.Config{
		Anthropic: llmhttptest.Limits{RPM: 2},
		Output:    func(llmhttptest.Request) int64 { return 5 }, // every reply is 5 tokens
	})
	defer srv.Close()

	body := `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"Hello!"}]}`
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", "test-key")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var msg struct {
			Content []struct{ Text string }
			Error   struct{ Type string }
		}
		json.Unmarshal(b, &msg)
		if resp.StatusCode == http.StatusOK {
			fmt.Printf("%d remaining=%s text=%q\n", resp.StatusCode,
				resp.Header.Get("anthropic-ratelimit-requests-remaining"), msg.Content[0].Text)
		} else {
			fmt.Printf("%d %s retry-after=%s\n", resp.StatusCode, msg.Error.Type, resp.Header.Get("retry-after"))
		}
	}
	fmt.Println(srv.Stats().ByStatus)
	// Output:
	// 200 remaining=1 text="the fox saw two big"
	// 200 remaining=0 text="the fox saw two big"
	// 429 rate_limit_error retry-after=30
	// map[200:2 429:1]
}

// Capacity is the steady rate the limits allow: here the output tokens per
// minute bind, at 8000 / 400 = 20 requests a minute.
func ExampleHandler_Capacity() {
	h := llmhttptest.NewHandler(llmhttptest.Config{}) // Tier 1: 50 RPM, 30k ITPM, 8k OTPM
	rate := h.Capacity(llmhttptest.Workload{
		Provider: llmhttptest.Anthropic,
		Mix: []llmhttptest.RequestSize{
			{InputTokens: 1000, OutputTokens: 300, Weight: 2},
			{InputTokens: 1000, OutputTokens: 600, Weight: 1},
		},
	})
	fmt.Printf("%.1f requests per minute\n", rate*60)
	// Output: 20.0 requests per minute
}

// Faults are scripted: here the next two requests meet an overloaded API.
func ExampleHandler_Inject() {
	h := llmhttptest.NewHandler(llmhttptest.Config{})
	h.Inject(llmhttptest.Fault{Kind: llmhttptest.Overloaded, Count: 2})
	c := &http.Client{Transport: h.Transport()} // in memory, no sockets
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`))
		req.Header.Set("Authorization", "Bearer test-key")
		resp, err := c.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	// Output:
	// 503 Service Unavailable
	// 503 Service Unavailable
	// 200 OK
}
