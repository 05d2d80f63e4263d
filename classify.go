package llmhttp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Class is what an attempt's outcome means for retrying, circuit breaking and
// pacing. See [Classify] for how each is recognised.
type Class int

// The classes, from llm-wire §5.1.
const (
	// ClassOK is a 2xx response.
	ClassOK Class = iota
	// ClassRateLimited is a transient throttle (429): wait as told and retry.
	ClassRateLimited
	// ClassSlowDown is a ramp-rate throttle (OpenAI slow_down): retry and
	// lower the pace.
	ClassSlowDown
	// ClassQuota is billing, credits, a spend cap or a daily exhaustion: never
	// retried automatically.
	ClassQuota
	// ClassOverloaded is the provider out of capacity (529, 503 overloaded).
	ClassOverloaded
	// ClassServer is any other 5xx.
	ClassServer
	// ClassTimeout is 408 or a provider timeout_error (Anthropic 504).
	ClassTimeout
	// ClassNetwork is no response at all: dial, TLS, reset, unexpected EOF,
	// response-header timeout.
	ClassNetwork
	// ClassTooLarge is a request that can never succeed as it is: 413, or a
	// single request larger than the whole token limit.
	ClassTooLarge
	// ClassAuth is 401 or 403.
	ClassAuth
	// ClassClient is any other 4xx.
	ClassClient
	// ClassCanceled is the caller's own context ending.
	ClassCanceled
	// ClassLocal is llmhttp's own refusal (see [Refusal]); it never comes
	// from the network.
	ClassLocal
)

var classNames = [...]string{
	ClassOK:          "ok",
	ClassRateLimited: "rate_limited",
	ClassSlowDown:    "slow_down",
	ClassQuota:       "quota",
	ClassOverloaded:  "overloaded",
	ClassServer:      "server",
	ClassTimeout:     "timeout",
	ClassNetwork:     "network",
	ClassTooLarge:    "too_large",
	ClassAuth:        "auth",
	ClassClient:      "client",
	ClassCanceled:    "canceled",
	ClassLocal:       "local",
}

// String returns the class's name in snake case ("rate_limited"), as used in
// logs and metric labels.
func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// A Classifier tells what an attempt's outcome means. [Classify] is the
// default; wrap it to handle a gateway's own signals.
type Classifier func(resp *http.Response, err error) Class

// Classify tells what an attempt's outcome — the response and error a
// RoundTripper returned — means. It implements the table of llm-wire §5.2:
// the rows are tried in order and the first that matches wins.
//
// Errors (resp is then ignored):
//   - the caller's context ending is ClassCanceled (row 1): an error that
//     errors.Is context.Canceled, or whose chain (through *url.Error, %w, …)
//     holds context.DeadlineExceeded itself. Timeouts of the transport that
//     merely say they are errors.Is context.DeadlineExceeded — net/http's
//     response-header timeout, net's dial and i/o timeouts — are
//     ClassNetwork. A context canceled with a custom cause
//     (context.WithCancelCause) makes the transport return that cause, which
//     Classify cannot tell from a network error: a caller that has the
//     request checks its context first;
//   - a [*Refusal] returned as an error is ClassLocal;
//   - any other error — dial, TLS, connection reset, io.ErrUnexpectedEOF,
//     the response-header timeout, an HTTP/2 GOAWAY — is ClassNetwork
//     (row 2). A nil response with a nil error is ClassNetwork too.
//
// Responses:
//   - a local reply ([RefusalOf] reports true) is ClassLocal;
//   - a response whose request's context has ended is ClassCanceled (row 1);
//   - a status below 400 is ClassOK (row 3): 1xx and 3xx are not failures
//     (an http.Client above follows the redirects). Its body is never
//     touched and nothing is allocated;
//   - a status of 400 or more is classified from the status, the headers
//     and the first 64 KiB of the body (rows 4–19, see the comments in
//     classifyError). A body that is not JSON, or is cut short (longer
//     than 64 KiB, or its read failed before the JSON ended), is classified
//     by its status and headers alone.
//
// To read an error body Classify replaces resp.Body with a reader that
// replays the bytes it read and then the rest of the original body, so the
// caller (an SDK) reads the whole, byte-identical body. A read error met
// while peeking is returned after the peeked bytes, as the original would
// have; Close closes the original body once. Peeking blocks only as long as
// reading 64 KiB (or the whole body, if shorter) takes.
//
// Several layers may call Classify on the same response: the replacement
// body remembers what was decoded from it, so later calls neither read nor
// decode again; only the cheap checks of the status and headers are
// repeated, so a layer that changes them between calls still gets the
// right class. Classify is not safe for concurrent use on the same response.
//
// Classify does not look at x-should-retry (rows 10 and 17): it returns the
// class the status and body give, and the retry layer applies the header's
// override (see [ParseShouldRetry]).
func Classify(resp *http.Response, err error) Class {
	if err != nil {
		if errors.Is(err, context.Canceled) || holdsDeadline(err) {
			return ClassCanceled // row 1
		}
		var r *Refusal
		if errors.As(err, &r) {
			return ClassLocal
		}
		return ClassNetwork // row 2
	}
	if resp == nil {
		return ClassNetwork // row 2: no response (a RoundTripper contract violation)
	}
	if resp.StatusCode >= 400 {
		if _, ok := refusalOf(resp); ok {
			return ClassLocal
		}
	}
	if resp.Request != nil && resp.Request.Context().Err() != nil {
		return ClassCanceled // row 1
	}
	switch {
	case resp.StatusCode < 100:
		return ClassServer // not an HTTP status: a broken upstream (row 15's spirit)
	case resp.StatusCode < 400:
		return ClassOK // row 3
	}
	b := peekErrorBody(resp)
	return classifyError(resp, &b)
}

// holdsDeadline reports whether err's chain holds context.DeadlineExceeded
// itself: a context's deadline. errors.Is is not enough here: net/http's
// response-header timeout and net's i/o timeouts are errors.Is
// context.DeadlineExceeded too, and they are row 2 (Network), not the
// caller's deadline.
func holdsDeadline(err error) bool {
	for err != nil {
		if err == context.DeadlineExceeded {
			return true
		}
		switch x := err.(type) {
		case interface{ Unwrap() error }:
			err = x.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				if holdsDeadline(e) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// classifyError applies rows 4–19 of llm-wire §5.2 to a response with a
// status of 400 or more, given what its body says.
func classifyError(resp *http.Response, b *errorBody) Class {
	status := resp.StatusCode
	h := resp.Header

	// Row 4: Anthropic, any status, error.details.error_code ==
	// "enforced_spend_limit_reached" (the tier spend cap).
	if b.errorCode == "enforced_spend_limit_reached" && isAnthropic(resp, b) {
		return ClassQuota
	}
	// Row 5: Anthropic 400 invalid_request_error "You have reached your
	// specified (workspace) API usage limits" (a spend limit the user set).
	if status == http.StatusBadRequest && b.typ == "invalid_request_error" &&
		strings.HasPrefix(b.message, "You have reached your specified") && isAnthropic(resp, b) {
		return ClassQuota
	}
	// Row 6: 402, any provider. OpenRouter's one 402 that carries a
	// Retry-After (its in-flight budget) is "wait and retry", not billing.
	if status == http.StatusPaymentRequired {
		if hasHeader(h, "Retry-After") || hasHeader(h, "Retry-After-Ms") {
			return ClassRateLimited
		}
		return ClassQuota
	}
	// Row 7: 429 or 403 whose error.code or error.type is a billing code.
	if (status == http.StatusTooManyRequests || status == http.StatusForbidden) &&
		(isBillingCode(b.code) || isBillingCode(b.typ)) {
		return ClassQuota
	}
	// Row 8: 429 and a daily exhaustion: Groq's per-day request bucket empty,
	// a Gemini QuotaFailure quotaId with PerDay, or a "per day" message. A
	// "Request too large" message (row 9) names a per-day limit without
	// saying the day's quota is spent, so it is left to row 9.
	if status == http.StatusTooManyRequests &&
		(dailyRequestsExhausted(h) || b.perDay ||
			(containsFold(b.message, "per day") && !tooLargeMessage(b.message))) {
		return ClassQuota
	}
	// Row 9: 413, or a 429 "Request too large … Limit N, Requested M" with
	// M > N: a single request larger than the whole limit.
	if status == http.StatusRequestEntityTooLarge ||
		(status == http.StatusTooManyRequests && tooLargeMessage(b.message)) {
		return ClassTooLarge
	}
	// Row 10 (x-should-retry: false) keeps the class of rows 11–16; the retry
	// layer applies the override.
	if status == http.StatusTooManyRequests {
		// Row 11: OpenAI ramp-rate throttle.
		if b.code == "slow_down" {
			return ClassSlowDown
		}
		// Row 12a: an Anthropic rate_limit_error without retry-after or
		// details is a suspect (a spend cap would carry details, row 4), but
		// still a throttle; the retry layer bounds its tries.
		// Row 12: every other 429.
		return ClassRateLimited
	}
	// Row 13: 529, or 503 overloaded.
	if status == 529 || (status == http.StatusServiceUnavailable && overloaded503(resp, b)) {
		return ClassOverloaded
	}
	// Row 14: 408, or Anthropic 504 timeout_error.
	if status == http.StatusRequestTimeout ||
		(status == http.StatusGatewayTimeout && b.typ == "timeout_error" && isAnthropic(resp, b)) {
		return ClassTimeout
	}
	// Row 15: every other 5xx (500, 502, 503, 504, 520–524, …).
	if status >= 500 {
		return ClassServer
	}
	// Row 16: 409 conflict; the retry layer retries it at most once.
	if status == http.StatusConflict {
		return ClassClient
	}
	// Row 17 (x-should-retry: true on another 4xx) is the retry layer's
	// override; the class stays that of rows 18–19.
	// Row 18: 401, 403.
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return ClassAuth
	}
	// Row 19: every other 4xx (400, 404, 405, 422, …).
	return ClassClient
}

// suspectSpendCap reports row 12a: a 429 Anthropic rate_limit_error with
// neither retry-after nor error.details. Classify calls it RateLimited (row
// 12), but a spend cap is sent the same way without its details on some
// paths, so the retry layer should try it only once or twice with backoff
// and escalate to Quota if it repeats. Call it after Classify: it reads what
// Classify decoded and never reads the body itself.
func suspectSpendCap(resp *http.Response) bool {
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		return false
	}
	pb, ok := resp.Body.(*peekedBody)
	if !ok {
		return false
	}
	b := &pb.info
	return b.typ == "rate_limit_error" && !b.hasDetails &&
		!hasHeader(resp.Header, "Retry-After") && !hasHeader(resp.Header, "Retry-After-Ms") &&
		isAnthropic(resp, b)
}

// billingCodes are the error.code / error.type values of row 7: billing,
// credits and spend limits, which retrying never fixes.
var billingCodes = [...]string{
	"insufficient_quota",
	"credit_balance_exhausted",
	"organization_spend_limit_exceeded",
	"project_spend_limit_exceeded",
	"organization_usage_limit_exceeded",
	"billing_hard_limit_reached",
}

func isBillingCode(s string) bool {
	for _, c := range billingCodes {
		if s == c {
			return true
		}
	}
	return false
}

// perMinuteResetMax is the longest x-ratelimit-reset-requests a per-minute
// request bucket reports: it is full again within a minute (plus a second of
// rounding). A longer reset on an empty bucket means a per-day bucket (Groq's
// RPD), so an OpenAI RPM 429 (reset ≤ 60 s) is never taken for a quota.
const perMinuteResetMax = time.Minute + time.Second

// dailyRequestsExhausted reports row 8's header signal: the request bucket
// is empty and fills again only after more than a minute.
func dailyRequestsExhausted(h http.Header) bool {
	v := strings.TrimSpace(h.Get("X-Ratelimit-Remaining-Requests"))
	if v != "0" {
		return false
	}
	reset, ok := parseResetDuration(h.Get("X-Ratelimit-Reset-Requests"))
	return ok && reset > perMinuteResetMax
}

// parseResetDuration parses an OpenAI-style reset: a Go duration ("6m0s",
// "2m59.56s", "12ms") or bare seconds ("7", "0.5"). Negative, NaN, infinite
// or overflowing values are not ok.
func parseResetDuration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d, d >= 0
	}
	secs, ok := parseNonNegFloat(v)
	if !ok || secs > float64(maxDuration/time.Second) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

const maxDuration = time.Duration(1<<63 - 1)

// tooLargeMessage reports whether msg matches row 9's
// `Request too large .* Limit (\d+), Requested (\d+)` with Requested > Limit.
// It is parsed by hand: any "Limit N, Requested M" after "Request too large"
// counts.
func tooLargeMessage(msg string) bool {
	i := strings.Index(msg, "Request too large")
	if i < 0 {
		return false
	}
	rest := msg[i+len("Request too large"):]
	for {
		j := strings.Index(rest, "Limit ")
		if j < 0 {
			return false
		}
		rest = rest[j+len("Limit "):]
		limit, n := leadingUint(rest)
		if n == 0 || !strings.HasPrefix(rest[n:], ", Requested ") {
			continue
		}
		requested, m := leadingUint(rest[n+len(", Requested "):])
		if m > 0 && requested > limit {
			return true
		}
	}
}

// leadingUint parses the decimal digits at the start of s, saturating at a
// large value instead of overflowing. It returns the value and how many
// bytes it used.
func leadingUint(s string) (v uint64, n int) {
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		if v < 1<<60 {
			v = v*10 + uint64(s[n]-'0')
		}
		n++
	}
	return v, n
}

// overloaded503 reports row 13's conditions on a 503: an overloaded_error /
// server_is_overloaded type or code, "overloaded" in the message, Gemini's
// UNAVAILABLE status, or any 503 from DeepSeek (its "Server Overloaded") or
// OpenRouter (no provider available).
func overloaded503(resp *http.Response, b *errorBody) bool {
	for _, s := range [...]string{b.typ, b.code} {
		if s == "overloaded_error" || s == "server_is_overloaded" {
			return true
		}
	}
	if containsFold(b.message, "overloaded") || b.status == "UNAVAILABLE" {
		return true
	}
	if resp.Request != nil && resp.Request.URL != nil {
		host := resp.Request.URL.Hostname()
		return hostIs(host, "deepseek.com") || hostIs(host, "openrouter.ai")
	}
	return false
}

// hostIs reports whether host is domain or one of its subdomains.
func hostIs(host, domain string) bool {
	if !strings.HasSuffix(host, domain) {
		return false
	}
	rest := host[:len(host)-len(domain)]
	return rest == "" || strings.HasSuffix(rest, ".")
}

// isAnthropic reports whether resp comes from Anthropic's API, for the rows
// whose signal is Anthropic's: the body is in Anthropic's error shape
// (top-level "type":"error"), or the response carries request-id or
// anthropic-* headers, or — when it carries neither those nor OpenAI's
// x-request-id / openai-* headers — its request looks like Anthropic's
// ([DetectProvider]).
func isAnthropic(resp *http.Response, b *errorBody) bool {
	if b.anthropicShape {
		return true
	}
	openai := false
	for k := range resp.Header {
		switch {
		case k == "Request-Id" || strings.HasPrefix(k, "Anthropic-"):
			return true
		case k == "X-Request-Id" || strings.HasPrefix(k, "Openai-"):
			openai = true
		}
	}
	if openai || resp.Request == nil {
		return false
	}
	return DetectProvider(resp.Request) == ProviderAnthropic
}

// hasHeader reports whether h holds a non-blank value for the canonical key.
func hasHeader(h http.Header, key string) bool {
	return strings.TrimSpace(h.Get(key)) != ""
}

// containsFold reports whether the ASCII text substr is in s, ignoring
// ASCII case. It does not allocate.
func containsFold(s, substr string) bool {
	if substr == "" {
		return true
	}
	first := lowerASCII(substr[0])
	for i := 0; i+len(substr) <= len(s); i++ {
		if lowerASCII(s[i]) != first {
			continue
		}
		j := 1
		for j < len(substr) && lowerASCII(s[i+j]) == lowerASCII(substr[j]) {
			j++
		}
		if j == len(substr) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
