package llmhttptest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// cannedReply is the body OKTransport answers with.
const cannedReply = `{"id":"x","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":250,"completion_tokens":12,"total_tokens":262}}`

// OKTransport returns an in-memory [http.RoundTripper] that reads each
// request's body and answers every request at once with the same 200: an
// OpenAI chat completion with its usage, and rate-limit headers far from
// their limits (10,000 requests and 30,000,000 tokens a minute). It keeps
// no state and does no pacing: it is the bare baseline against which a
// benchmark measures what the RoundTrippers above it cost (see
// [SendChat]). For a server with real limits, use [Handler.Transport].
func OKTransport() http.RoundTripper { return okTransport{} }

type okTransport struct{}

func (okTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	h := http.Header{
		"Content-Type":                   {"application/json"},
		"X-Ratelimit-Limit-Requests":     {"10000"},
		"X-Ratelimit-Remaining-Requests": {"9999"},
		"X-Ratelimit-Reset-Requests":     {"6ms"},
		"X-Ratelimit-Limit-Tokens":       {"30000000"},
		"X-Ratelimit-Remaining-Tokens":   {"29999000"},
		"X-Ratelimit-Reset-Tokens":       {"2ms"},
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(cannedReply)), ContentLength: int64(len(cannedReply)),
		Request: req,
	}, nil
}

// ChatBody returns an OpenAI chat completion request body of about size
// bytes (at least its fixed parts), for model "gpt-bench" with
// max_completion_tokens 256.
func ChatBody(size int) []byte {
	head := `{"model":"gpt-bench","max_completion_tokens":256,"messages":[{"role":"user","content":"`
	tail := `"}]}`
	return []byte(head + strings.Repeat("lorem ipsum ", max(size-len(head)-len(tail), 0)/12) + tail)
}

// SendChat posts body to an OpenAI chat completions URL through rt, with
// an API key, reads the response to its end and closes it. It returns
// rt's error, or an error naming the status when it is not 200.
func SendChat(rt http.RoundTripper, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, "https://api.openai.test/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer sk-bench")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("llmhttptest: status %d", resp.StatusCode)
	}
	return nil
}
