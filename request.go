package llmhttp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// Provider is the API dialect of a request, which decides the shape of local
// replies and how output tokens are charged.
type Provider int

const (
	// ProviderOpenAI is the OpenAI-compatible dialect (OpenAI, Azure, Groq,
	// Mistral, OpenRouter, DeepSeek, …); the default.
	ProviderOpenAI Provider = iota
	// ProviderAnthropic is Anthropic's Messages API.
	ProviderAnthropic
)

// String returns "openai" or "anthropic".
func (p Provider) String() string {
	if p == ProviderAnthropic {
		return "anthropic"
	}
	return "openai"
}

// DetectProvider guesses the dialect of req: Anthropic when it carries an
// x-api-key or anthropic-version header or its path ends in /v1/messages,
// otherwise OpenAI.
func DetectProvider(req *http.Request) Provider {
	if req.Header.Get("Anthropic-Version") != "" || req.Header.Get("X-Api-Key") != "" {
		return ProviderAnthropic
	}
	if req.URL != nil && strings.Contains(req.URL.Path, "/messages") && !strings.Contains(req.URL.Path, "/threads/") {
		return ProviderAnthropic
	}
	return ProviderOpenAI
}

// A Partition names the unit llmhttp keeps state for: the pacer keeps one per
// (Host, Credential, Model), the breaker one per (Host, Model).
type Partition struct {
	// Host is the request's scheme and host, as in "https://api.anthropic.com".
	Host string
	// Credential is a fingerprint of the request's API key (see
	// [Fingerprint]), never the key itself; "" when the request has none.
	Credential string
	// Model is the JSON body's top-level "model", or the deployment name in
	// an Azure path; "" when there is none.
	Model string
}

// String returns the partition as "host|credential|model", safe to log.
func (p Partition) String() string { return p.Host + "|" + p.Credential + "|" + p.Model }

// Fingerprint returns a short, stable, non-reversible name for an API key:
// 16 hex digits of its SHA-256. It returns "" for "".
func Fingerprint(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// credential returns the raw credential of req: x-api-key, api-key (Azure)
// or the Authorization header.
func credential(req *http.Request) string {
	if k := req.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	if k := req.Header.Get("Api-Key"); k != "" {
		return k
	}
	return req.Header.Get("Authorization")
}

// requestInfo is what llmhttp learns from a request before sending it. It is
// computed once per request and shared by every layer through the context.
type requestInfo struct {
	partition Partition
	provider  Provider
	stream    bool
	// maxTokens is max_tokens / max_completion_tokens / max_output_tokens;
	// 0 when absent.
	maxTokens int64
	// inputTokens is the estimated input tokens of the body's text.
	inputTokens int64
}

type infoKey struct{}

// infoOf returns req's requestInfo, from its context when an outer llmhttp
// layer already computed it, else computed now.
func infoOf(req *http.Request) *requestInfo {
	if info, ok := req.Context().Value(infoKey{}).(*requestInfo); ok {
		return info
	}
	return describe(req)
}

// withInfo returns a shallow copy of req whose context carries info.
func withInfo(req *http.Request, info *requestInfo) *http.Request {
	return req.WithContext(context.WithValue(req.Context(), infoKey{}, info))
}

// DefaultPartition returns req's partition: scheme+host, the fingerprint of
// its credential and its model.
func DefaultPartition(req *http.Request) Partition { return infoOf(req).partition }

// describe computes req's requestInfo. The body is read through GetBody, so
// req.Body is untouched; a request without GetBody is described from its
// headers and URL alone.
func describe(req *http.Request) *requestInfo {
	info := &requestInfo{provider: DetectProvider(req)}
	info.partition.Host = req.URL.Scheme + "://" + req.URL.Host
	info.partition.Credential = Fingerprint(credential(req))
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if rc, err := req.GetBody(); err == nil {
			b, _ := io.ReadAll(io.LimitReader(rc, 8<<20))
			rc.Close()
			var body struct {
				Model               string `json:"model"`
				Stream              bool   `json:"stream"`
				MaxTokens           int64  `json:"max_tokens"`
				MaxCompletionTokens int64  `json:"max_completion_tokens"`
				MaxOutputTokens     int64  `json:"max_output_tokens"`
			}
			if json.Unmarshal(b, &body) == nil {
				info.partition.Model = body.Model
				info.stream = body.Stream
				info.maxTokens = max(body.MaxTokens, body.MaxCompletionTokens, body.MaxOutputTokens)
			}
			info.inputTokens = int64(len(b)) / 4
		}
	}
	return info
}
