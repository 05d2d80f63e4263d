package llmhttptest

import "encoding/json"

// Anthropic Messages API shapes
// (https://platform.claude.com/docs/en/api/messages and .../streaming).

type anthropicUsage struct {
	InputTokens              int64  `json:"input_tokens"`
	CacheCreationInputTokens int64  `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64  `json:"cache_read_input_tokens"`
	OutputTokens             int64  `json:"output_tokens"`
	ServiceTier              string `json:"service_tier,omitempty"`
}

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anthropicMessage struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []textBlock    `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        anthropicUsage `json:"usage"`
}

// messageID returns the request's message id ("msg_01…").
func (g *generation) messageID() string { return g.x.id.next("msg_01", 22, base62) }

// stopReason returns "max_tokens" when the output hit max_tokens, else
// "end_turn".
func (g *generation) stopReason() string {
	if g.req.maxTokens > 0 && g.out >= g.req.maxTokens {
		return "max_tokens"
	}
	return "end_turn"
}

// anthropicMessage returns the non-streamed Messages reply.
func (g *generation) anthropicMessage() []byte {
	sr := g.stopReason()
	m := anthropicMessage{
		ID: g.messageID(), Type: "message", Role: "assistant", Model: g.req.model,
		Content:    []textBlock{{Type: "text", Text: outputText(0, g.out, g.out)}},
		StopReason: &sr,
		Usage:      anthropicUsage{InputTokens: g.req.inputTokens, OutputTokens: g.out, ServiceTier: "standard"},
	}
	b, _ := json.Marshal(m)
	return b
}

// mustJSON marshals values the package builds itself, which cannot fail.
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// The streamed event sequence: message_start, content_block_start, ping,
// content_block_delta…, content_block_stop, message_delta (stop reason and
// cumulative usage), message_stop.

func (g *generation) streamStart(s *sseWriter) {
	if g.x.p != Anthropic {
		g.openAIStart(s)
		return
	}
	m := anthropicMessage{
		ID: g.messageID(), Type: "message", Role: "assistant", Model: g.req.model,
		Content: []textBlock{},
		Usage:   anthropicUsage{InputTokens: g.req.inputTokens, OutputTokens: min(g.out, 1), ServiceTier: "standard"},
	}
	s.event("message_start", mustJSON(struct {
		Type    string           `json:"type"`
		Message anthropicMessage `json:"message"`
	}{"message_start", m}))
	s.event("content_block_start", []byte(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`))
	s.event("ping", []byte(`{"type": "ping"}`))
}

func (g *generation) streamDelta(s *sseWriter, from, to int64) {
	text := outputText(from, to, g.out)
	if g.x.p != Anthropic {
		g.openAIDelta(s, text)
		return
	}
	s.event("content_block_delta", mustJSON(struct {
		Type  string    `json:"type"`
		Index int       `json:"index"`
		Delta textBlock `json:"delta"`
	}{"content_block_delta", 0, textBlock{Type: "text_delta", Text: text}}))
}

func (g *generation) streamEnd(s *sseWriter, emitted int64) {
	if g.x.p != Anthropic {
		g.openAIEnd(s, emitted)
		return
	}
	s.event("content_block_stop", []byte(`{"type":"content_block_stop","index":0}`))
	type delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
	s.event("message_delta", mustJSON(struct {
		Type  string         `json:"type"`
		Delta delta          `json:"delta"`
		Usage anthropicUsage `json:"usage"`
	}{"message_delta", delta{StopReason: g.stopReason()}, anthropicUsage{InputTokens: g.req.inputTokens, OutputTokens: emitted}}))
	s.event("message_stop", []byte(`{"type":"message_stop"}`))
}

// streamError sends the mid-stream error of llm-wire.md §1.4 (Anthropic:
// "event: error" with the error envelope and no request_id) or its OpenAI
// counterpart (a data chunk holding {"error":…}).
func (g *generation) streamError(s *sseWriter) {
	if g.x.p != Anthropic {
		s.event("", errOverloaded(OpenAI).body(OpenAI, ""))
		return
	}
	s.event("error", errOverloaded(Anthropic).body(Anthropic, ""))
}
