package llmhttptest

import (
	"math/rand/v2"
	"time"
)

// Provider is the API dialect an endpoint speaks.
type Provider int

const (
	// Anthropic is the Messages API: /v1/messages and /v1/messages/count_tokens.
	Anthropic Provider = iota + 1
	// OpenAI is the Chat Completions API: /v1/chat/completions.
	OpenAI
)

// String returns "anthropic", "openai" or "any" (the zero Provider, which
// matches every provider in a [Fault]).
func (p Provider) String() string {
	switch p {
	case Anthropic:
		return "anthropic"
	case OpenAI:
		return "openai"
	}
	return "any"
}

// Unlimited, as a value of a [Limits] field, turns that limit off: the
// server keeps no bucket for it and sends no header for it.
const Unlimited = -1

// Limits are the rate limits of one model for one credential, per Window
// (a minute unless [Config.Window] says otherwise). A zero field means the
// default for the provider; [Unlimited] (any negative value) turns the limit
// off.
//
// Anthropic endpoints enforce RPM, ITPM and OTPM (and FastITPM and FastOTPM
// for fast mode); OpenAI endpoints enforce RPM and TPM. The other fields are
// ignored.
type Limits struct {
	// RPM is requests per window. Defaults: Anthropic 50, OpenAI 500
	// (the published Tier 1 limits of Claude Sonnet and GPT-4o).
	RPM int64
	// ITPM is Anthropic's input tokens per window. Default 30,000.
	ITPM int64
	// OTPM is Anthropic's output tokens per window. Default 8,000.
	OTPM int64
	// TPM is OpenAI's combined (input + output) tokens per window.
	// Default 30,000.
	TPM int64
	// FastITPM and FastOTPM are Anthropic's fast-mode input and output
	// tokens per window: a request with "speed": "fast" draws on these
	// buckets instead of ITPM and OTPM (it still counts in RPM), and its
	// answers report them in anthropic-fast-{input,output}-tokens-*.
	// Default 0 (or negative): fast mode has no limits of its own, and
	// such a request is served from the standard pool, as a model without
	// fast mode falls back to standard speed.
	FastITPM, FastOTPM int64
}

// Charge is the rule by which output tokens are charged against the output
// (Anthropic OTPM) or combined (OpenAI TPM) bucket. Providers differ, and
// Anthropic changed its rule: see llm-wire.md §1.5 and §2.3.
type Charge int

const (
	// ChargeDefault is the provider's current documented rule:
	// ChargeGenerated for Anthropic, ChargeReserved for OpenAI.
	ChargeDefault Charge = iota
	// ChargeGenerated counts only the output tokens actually generated, when
	// generation ends; max_tokens plays no part. A request is admitted while
	// the output bucket holds at least one token, and the charge at the end
	// may take the bucket below zero (a debt that refills like any level).
	// This is Anthropic's rule since 2026.
	ChargeGenerated
	// ChargeReserved reserves max_tokens (max_completion_tokens) of output
	// at admission, together with the input, and refunds the unused part
	// when generation ends. A request is admitted only when the bucket holds
	// the whole reservation. This is OpenAI's rule, and Anthropic's until
	// 2025. A request without max_tokens reserves no output; its output is
	// charged when generation ends.
	ChargeReserved
)

// String returns "default", "generated" or "reserved".
func (c Charge) String() string {
	switch c {
	case ChargeGenerated:
		return "generated"
	case ChargeReserved:
		return "reserved"
	}
	return "default"
}

// Request describes an admitted request to the [Config.Output] function.
type Request struct {
	// Provider is the endpoint's dialect.
	Provider Provider
	// Model is the body's "model".
	Model string
	// Credential is the fingerprint of the request's API key (see
	// [Fingerprint]), never the key itself.
	Credential string
	// Stream reports whether the request asked for a streamed response.
	Stream bool
	// Fast reports that the request ran in Anthropic's fast mode, on the
	// fast-mode limits ([Limits.FastITPM]).
	Fast bool
	// MaxTokens is max_tokens (Anthropic), or max_completion_tokens, else
	// max_tokens (OpenAI); 0 when the request has none.
	MaxTokens int64
	// InputTokens is the request's input tokens as the server counts them
	// (see [Tokens]).
	InputTokens int64
	// Seq is the request's arrival number at the handler, from 1.
	Seq int64
	// Rand is a source seeded from [Config.Seed] and Seq, for the request
	// alone: the same seed and arrival order give the same draws.
	Rand *rand.Rand
}

// Config configures a [Handler]. The zero Config is a server with each
// provider's Tier 1 limits per minute, instant responses, no faults and
// seed 0. A Config is copied by [NewHandler]; changing it afterwards has no
// effect.
type Config struct {
	// Anthropic are the limits of every Anthropic model not listed in Models.
	Anthropic Limits
	// OpenAI are the limits of every OpenAI model not listed in Models.
	OpenAI Limits
	// Models overrides the limits per model name (the body's "model"). Its
	// zero fields still mean the provider's defaults.
	Models map[string]Limits

	// Window is the length of "a minute": the period over which every limit
	// refills completely. Default time.Minute. Tests may use a second, or
	// keep the minute and run under testing/synctest's fake clock.
	Window time.Duration

	// AnthropicCharge is how Anthropic endpoints charge output tokens.
	// Default (ChargeDefault) ChargeGenerated.
	AnthropicCharge Charge
	// OpenAICharge is how OpenAI endpoints charge output tokens.
	// Default (ChargeDefault) ChargeReserved.
	OpenAICharge Charge

	// RejectedCost makes a request rejected with 429 by the limiter still
	// cost one request from the RPM bucket, as OpenAI documents
	// ("unsuccessful requests contribute to your per-minute limit").
	// Default false: a 429 costs nothing.
	RejectedCost bool

	// TokenRounding is the granularity of Anthropic's token *-remaining
	// headers, which Anthropic documents as "rounded to the nearest
	// thousand". Default 1000; a negative value reports exact values.
	// OpenAI's headers are always exact.
	TokenRounding int64

	// Output returns how many output tokens an admitted request generates.
	// The result is clamped to [0, MaxTokens] when the request sets
	// MaxTokens. Default: a uniform draw from [1, 2×MeanOutput−1] using
	// r.Rand (so its mean is MeanOutput), capped by MaxTokens.
	Output func(r Request) int64
	// MeanOutput is the mean of the default Output distribution.
	// Default 100.
	MeanOutput int64

	// Latency is how long a response takes before its first output token:
	// a non-streamed response is written after Latency +
	// TokenLatency×output, a streamed one sends its head at once, its first
	// event after Latency and its deltas TokenLatency per token apart.
	// Default 0.
	Latency time.Duration
	// TokenLatency is the time per generated output token. Default 0.
	TokenLatency time.Duration

	// Seed seeds every random choice (fault probabilities, default output
	// lengths, ids). Default 0, which is a seed like any other: handlers with
	// the same Config and the same arrival order behave identically.
	Seed uint64

	// Faults are injected from the handler's creation on: a fault's Start
	// is measured from [NewHandler]. See [Fault] and [Handler.Inject].
	Faults []Fault

	// APIKeys, when not empty, are the only API keys accepted; any other
	// key is answered 401 with the provider's invalid-key error. Default:
	// every non-empty key is accepted.
	APIKeys []string

	// MaxBodyBytes is the largest request body accepted; a larger one is
	// answered 413 request_too_large. Default 32 MiB (Anthropic's Messages
	// API limit).
	MaxBodyBytes int64
}

// Defaults, applied to zero fields.
const (
	defaultAnthropicRPM  = 50
	defaultAnthropicITPM = 30_000
	defaultAnthropicOTPM = 8_000
	defaultOpenAIRPM     = 500
	defaultOpenAITPM     = 30_000
	defaultMeanOutput    = 100
	defaultRounding      = 1000
	defaultMaxBody       = 32 << 20
)

// resolve returns l with zero fields set to p's defaults and negative ones
// set to 0, which from here on means "no bucket".
func (l Limits) resolve(p Provider) Limits {
	pick := func(v, def int64) int64 {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	if p == Anthropic {
		return Limits{
			RPM:      pick(l.RPM, defaultAnthropicRPM),
			ITPM:     pick(l.ITPM, defaultAnthropicITPM),
			OTPM:     pick(l.OTPM, defaultAnthropicOTPM),
			FastITPM: pick(l.FastITPM, 0),
			FastOTPM: pick(l.FastOTPM, 0),
		}
	}
	return Limits{
		RPM: pick(l.RPM, defaultOpenAIRPM),
		TPM: pick(l.TPM, defaultOpenAITPM),
	}
}

// limitsFor returns the resolved limits of model on p's endpoints. In the
// result 0 means unlimited.
func (c *Config) limitsFor(p Provider, model string) Limits {
	if l, ok := c.Models[model]; ok {
		return l.resolve(p)
	}
	if p == Anthropic {
		return c.Anthropic.resolve(p)
	}
	return c.OpenAI.resolve(p)
}

// chargeFor returns p's output charging rule, ChargeDefault resolved.
func (c *Config) chargeFor(p Provider) Charge {
	ch := c.OpenAICharge
	if p == Anthropic {
		ch = c.AnthropicCharge
	}
	if ch == ChargeGenerated || ch == ChargeReserved {
		return ch
	}
	if p == Anthropic {
		return ChargeGenerated
	}
	return ChargeReserved
}

// window returns Window or its default.
func (c *Config) window() time.Duration {
	if c.Window <= 0 {
		return time.Minute
	}
	return c.Window
}

// outputTokens returns the output length of r.
func (c *Config) outputTokens(r Request) int64 {
	var n int64
	if c.Output != nil {
		n = c.Output(r)
	} else {
		mean := c.MeanOutput
		if mean <= 0 {
			mean = defaultMeanOutput
		}
		n = 1 + r.Rand.Int64N(2*mean-1)
	}
	if n < 0 {
		n = 0
	}
	if r.MaxTokens > 0 && n > r.MaxTokens {
		n = r.MaxTokens
	}
	return n
}
