package llmhttptest

import "encoding/json"

// OpenAI Chat Completions shapes
// (https://platform.openai.com/docs/api-reference/chat).

type openAIUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
		AudioTokens  int64 `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int64 `json:"reasoning_tokens"`
		AudioTokens              int64 `json:"audio_tokens"`
		AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

type openAIMessage struct {
	Role        string          `json:"role,omitempty"`
	Content     *string         `json:"content,omitempty"`
	Refusal     json.RawMessage `json:"refusal,omitempty"`     // null where OpenAI sends null
	Annotations json.RawMessage `json:"annotations,omitempty"` // [] in a message
}

type openAIChoice struct {
	Index        int            `json:"index"`
	Message      *openAIMessage `json:"message,omitempty"`
	Delta        *openAIMessage `json:"delta,omitempty"`
	Logprobs     *struct{}      `json:"logprobs"`
	FinishReason *string        `json:"finish_reason"`
}

type openAICompletion struct {
	ID                string         `json:"id"`
	Object            string         `json:"object"`
	Created           int64          `json:"created"`
	Model             string         `json:"model"`
	Choices           []openAIChoice `json:"choices"`
	Usage             *openAIUsage   `json:"usage"`
	ServiceTier       string         `json:"service_tier"`
	SystemFingerprint string         `json:"system_fingerprint"`
}

// openAIChunk is a streamed chunk's usage field: absent, or null on every
// chunk but the last when stream_options.include_usage is set.
type openAIChunk struct {
	openAICompletion
	Usage json.RawMessage `json:"usage,omitempty"`
}

func (g *generation) openAIUsage(output int64) *openAIUsage {
	return &openAIUsage{PromptTokens: g.req.inputTokens, CompletionTokens: output, TotalTokens: g.req.inputTokens + output}
}

// completionID returns the request's completion id ("chatcmpl-…"); a
// stream's chunks share it.
func (g *generation) completionID() string {
	if g.chatID == "" {
		g.chatID = g.x.id.next("chatcmpl-", 29, base62)
	}
	return g.chatID
}

func (g *generation) finishReason() string {
	if g.stopReason() == "max_tokens" {
		return "length"
	}
	return "stop"
}

func (g *generation) openAIBase(object string) openAICompletion {
	return openAICompletion{
		ID: g.completionID(), Object: object, Created: g.x.start.Unix(), Model: g.req.model,
		ServiceTier: "default", SystemFingerprint: "fp_llmhttptest",
	}
}

// openAICompletion returns the non-streamed Chat Completions reply.
func (g *generation) openAICompletion() []byte {
	c := g.openAIBase("chat.completion")
	text, fr := outputText(0, g.out, g.out), g.finishReason()
	c.Choices = []openAIChoice{{Message: &openAIMessage{Role: "assistant", Content: &text, Refusal: json.RawMessage("null"), Annotations: json.RawMessage("[]")}, FinishReason: &fr}}
	c.Usage = g.openAIUsage(g.out)
	return mustJSON(c)
}

// chunk writes one "data: {…}" chunk with choices.
func (g *generation) openAIChunk(s *sseWriter, choices []openAIChoice, usage *openAIUsage) {
	c := openAIChunk{openAICompletion: g.openAIBase("chat.completion.chunk")}
	c.Choices = choices
	switch {
	case usage != nil:
		c.Usage = mustJSON(usage)
	case g.req.includeUsage:
		c.Usage = json.RawMessage("null")
	}
	s.event("", mustJSON(c))
}

func (g *generation) openAIStart(s *sseWriter) {
	empty := ""
	g.openAIChunk(s, []openAIChoice{{Delta: &openAIMessage{Role: "assistant", Content: &empty, Refusal: json.RawMessage("null")}}}, nil)
}

func (g *generation) openAIDelta(s *sseWriter, text string) {
	g.openAIChunk(s, []openAIChoice{{Delta: &openAIMessage{Content: &text}}}, nil)
}

// openAIEnd writes the finishing chunk, the usage chunk when
// stream_options.include_usage is set, and "data: [DONE]".
func (g *generation) openAIEnd(s *sseWriter, emitted int64) {
	fr := g.finishReason()
	g.openAIChunk(s, []openAIChoice{{Delta: &openAIMessage{}, FinishReason: &fr}}, nil)
	if g.req.includeUsage {
		g.openAIChunk(s, []openAIChoice{}, g.openAIUsage(emitted))
	}
	s.event("", []byte("[DONE]"))
}
