package llmhttptest

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
)

// NewRequest returns a request of body for provider p's endpoint
// (Anthropic's /v1/messages, OpenAI's /v1/chat/completions) at baseURL,
// with key as its credential and the headers p requires; "" as baseURL
// means https://api.anthropic.test or https://api.openai.test, for
// [Handler.Transport]. GetBody is set, as the SDKs set it. Like
// net/http/httptest.NewRequest, it panics when baseURL does not parse.
func NewRequest(ctx context.Context, p Provider, baseURL, key string, body []byte) *http.Request {
	path, host := "/v1/chat/completions", "https://api.openai.test"
	if p == Anthropic {
		path, host = "/v1/messages", "https://api.anthropic.test"
	}
	if baseURL == "" {
		baseURL = host
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+path, bytes.NewReader(body))
	if err != nil {
		panic("llmhttptest: NewRequest: " + err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	if p == Anthropic {
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req
}

// Body returns a request body for provider p and model whose prompt the
// handler counts as exactly inputTokens tokens (4 characters each, see
// [Tokens]), asking for at most maxTokens of output (max_tokens for
// Anthropic, max_completion_tokens for OpenAI).
func Body(p Provider, model string, inputTokens, maxTokens int64) []byte {
	text := strings.Repeat("abc ", int(max(inputTokens, 0)))
	mt := strconv.FormatInt(maxTokens, 10)
	field := "max_completion_tokens"
	if p == Anthropic {
		field = "max_tokens"
	}
	return []byte(`{"model":` + strconv.Quote(model) + `,"` + field + `":` + mt + `,"messages":[{"role":"user","content":"` + text + `"}]}`)
}
