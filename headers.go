package llmhttp

import (
	"net/http"
	"time"
)

// Limit is one rate-limit dimension as a provider reported it on a response.
// The zero Limit means "not reported".
type Limit struct {
	// Limit is the bucket's capacity; 0 means not reported.
	Limit int64
	// Remaining is what is left in the bucket. It is meaningful only when
	// HasRemaining is true: 0 is a real "exhausted".
	Remaining    int64
	HasRemaining bool
	// Reset is when the bucket is fully replenished; zero means unknown.
	Reset time.Time
	// Window is the period the limit is counted over (time.Minute for a
	// per-minute limit, 24h for a per-day one); 0 means unknown, which the
	// pacer treats as a minute.
	Window time.Duration
}

// Limits is every rate-limit dimension a response reported. Dimensions the
// response did not report are zero.
type Limits struct {
	// Requests is the requests-per-window bucket (RPM for every provider but
	// Groq, whose request limit is per day and goes to RequestsPerDay).
	Requests Limit
	// RequestsPerDay is a per-day request bucket (Groq's RPD).
	RequestsPerDay Limit
	// Tokens is a combined-token bucket: OpenAI-style TPM (the tighter of the
	// organisation and project limits), or Anthropic's combined tokens when
	// the input/output headers are absent.
	Tokens Limit
	// InputTokens and OutputTokens are Anthropic's ITPM and OTPM buckets.
	InputTokens, OutputTokens Limit
	// PriorityInputTokens and PriorityOutputTokens are Anthropic's Priority
	// Tier buckets; FastInputTokens and FastOutputTokens its fast-mode ones.
	PriorityInputTokens, PriorityOutputTokens Limit
	FastInputTokens, FastOutputTokens         Limit
}

// ParseLimits reads every rate-limit header family llmhttp knows from h. Values
// that cannot be parsed are ignored. Relative resets are taken relative to now.
func ParseLimits(h http.Header, now time.Time) Limits {
	panic("TODO")
}

// ParseRetryAfter returns the wait a response asks for: retry-after-ms
// (float milliseconds) first, then retry-after as delta-seconds or an
// HTTP-date relative to now. It reports false when neither header holds a
// usable value; it never returns a negative duration.
func ParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	panic("TODO")
}

// ParseShouldRetry reads the x-should-retry header the official SDKs honour:
// set reports whether it holds "true" or "false"; anything else is unset.
func ParseShouldRetry(h http.Header) (retry, set bool) {
	panic("TODO")
}

// ServerDelay returns the wait the server asks for, in the order of llm-wire
// §5.3: retry-after-ms, retry-after, the IETF RateLimit field's t for an
// exhausted quota, then the reset of an exhausted bucket in the provider's
// rate-limit headers. It reports false when the response gives no hint.
func ServerDelay(h http.Header, now time.Time) (time.Duration, bool) {
	panic("TODO")
}
