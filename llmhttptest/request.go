package llmhttptest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Tokens returns the input tokens the server counts for text: its
// characters (runes) divided by 4, rounded up. Requests are counted over
// their text only — system prompt, message text, tool calls and results,
// tool definitions — never over base64 image or PDF data; a request counts
// at least 1 token.
func Tokens(text string) int64 { return (int64(utf8.RuneCountInString(text)) + 3) / 4 }

// Fingerprint returns the name under which the server counts a credential
// in [Stats]: 16 hex digits of the SHA-256 of the raw credential header
// value (x-api-key, api-key, or the whole Authorization header), the same
// function as llmhttp.Fingerprint. It returns "" for "".
func Fingerprint(credential string) string {
	if credential == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(credential))
	return hex.EncodeToString(sum[:8])
}

// credential returns the raw credential of r (as llmhttp reads it) and the
// API key inside it.
func credential(r *http.Request) (raw, apiKey string) {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k, k
	}
	if k := r.Header.Get("Api-Key"); k != "" {
		return k, k
	}
	a := r.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
		return a, strings.TrimSpace(a[7:])
	}
	return a, ""
}

// parsed is what the handler needs from a request body.
type parsed struct {
	model        string
	stream       bool
	includeUsage bool  // OpenAI stream_options.include_usage
	maxTokens    int64 // 0 when absent
	inputTokens  int64
	fast         bool // Anthropic "speed": "fast"
}

type anthropicRequest struct {
	Model     string `json:"model"`
	MaxTokens *int64 `json:"max_tokens"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System json.RawMessage `json:"system"`
	Tools  json.RawMessage `json:"tools"`
	Stream bool            `json:"stream"`
	Speed  string          `json:"speed"`
}

// parseAnthropic decodes a Messages (or count_tokens, when counting is set)
// body. It returns the 400 to send when the body is not a valid request.
func parseAnthropic(body []byte, counting bool) (parsed, *apiError) {
	var req anthropicRequest
	if err := json.Unmarshal(body, &req); err != nil {
		e := errInvalidJSON(Anthropic, err.Error())
		return parsed{}, &e
	}
	switch {
	case req.Model == "":
		e := errInvalid(Anthropic, "", "model: Field required")
		return parsed{}, &e
	case len(req.Messages) == 0:
		e := errInvalid(Anthropic, "", "messages: Field required")
		return parsed{}, &e
	case !counting && req.MaxTokens == nil:
		e := errInvalid(Anthropic, "", "max_tokens: Field required")
		return parsed{}, &e
	case !counting && *req.MaxTokens < 1:
		e := errInvalid(Anthropic, "", "max_tokens: Input should be greater than or equal to 1")
		return parsed{}, &e
	}
	var n int64
	n += anthropicText(req.System)
	for _, m := range req.Messages {
		n += anthropicText(m.Content)
	}
	n += int64(utf8.RuneCount(req.Tools))
	p := parsed{model: req.Model, stream: req.Stream, inputTokens: max((n+3)/4, 1), fast: req.Speed == "fast"}
	if req.MaxTokens != nil {
		p.maxTokens = *req.MaxTokens
	}
	return p, nil
}

// anthropicText returns the characters of text in a system prompt or a
// message content: a string, or an array of blocks.
func anthropicText(raw json.RawMessage) int64 {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) == nil {
			return int64(utf8.RuneCountInString(s))
		}
		return 0
	}
	var blocks []struct {
		Type     string          `json:"type"`
		Text     string          `json:"text"`
		Thinking string          `json:"thinking"`
		Input    json.RawMessage `json:"input"`
		Content  json.RawMessage `json:"content"`
		Source   struct {
			Type string `json:"type"`
			Data string `json:"data"`
		} `json:"source"`
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return 0
	}
	var n int64
	for _, b := range blocks {
		switch b.Type {
		case "text":
			n += int64(utf8.RuneCountInString(b.Text))
		case "thinking":
			n += int64(utf8.RuneCountInString(b.Thinking))
		case "tool_use", "server_tool_use":
			n += int64(utf8.RuneCount(b.Input))
		case "tool_result":
			n += anthropicText(b.Content)
		case "document":
			if b.Source.Type == "text" {
				n += int64(utf8.RuneCountInString(b.Source.Data))
			}
		}
		// image and base64/URL documents: not counted by their bytes.
	}
	return n
}

type openAIRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role      string          `json:"role"`
		Content   json.RawMessage `json:"content"`
		ToolCalls json.RawMessage `json:"tool_calls"`
	} `json:"messages"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	Stream              bool   `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Tools json.RawMessage `json:"tools"`
}

// parseOpenAI decodes a Chat Completions body. It returns the 400 to send
// when the body is not a valid request.
func parseOpenAI(body []byte) (parsed, *apiError) {
	var req openAIRequest
	if err := json.Unmarshal(body, &req); err != nil {
		e := errInvalidJSON(OpenAI, err.Error())
		return parsed{}, &e
	}
	switch {
	case req.Model == "":
		e := errInvalid(OpenAI, "model", "you must provide a model parameter")
		return parsed{}, &e
	case len(req.Messages) == 0:
		e := errInvalid(OpenAI, "messages", "[] is too short - 'messages'")
		return parsed{}, &e
	}
	p := parsed{model: req.Model, stream: req.Stream}
	if req.StreamOptions != nil {
		p.includeUsage = req.StreamOptions.IncludeUsage
	}
	for _, mt := range []*int64{req.MaxCompletionTokens, req.MaxTokens} {
		if mt != nil {
			if *mt < 1 {
				e := errInvalid(OpenAI, "max_tokens", "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1.")
				return parsed{}, &e
			}
			if p.maxTokens == 0 {
				p.maxTokens = *mt
			}
		}
	}
	var n int64
	for _, m := range req.Messages {
		n += openAIText(m.Content)
		if len(m.ToolCalls) > 0 && string(m.ToolCalls) != "null" {
			n += int64(utf8.RuneCount(m.ToolCalls))
		}
	}
	if string(req.Tools) != "null" {
		n += int64(utf8.RuneCount(req.Tools))
	}
	p.inputTokens = max((n+3)/4, 1)
	return p, nil
}

// openAIText returns the characters of text in a message content: a string,
// null, or an array of parts.
func openAIText(raw json.RawMessage) int64 {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) == nil {
			return int64(utf8.RuneCountInString(s))
		}
		return 0
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return 0
	}
	var n int64
	for _, p := range parts {
		if p.Type == "text" {
			n += int64(utf8.RuneCountInString(p.Text))
		}
	}
	return n
}
