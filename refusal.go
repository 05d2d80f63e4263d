package llmhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Refusal reasons, as carried by the Llmhttp-Refusal header of a local reply.
const (
	// ReasonCircuitOpen: the circuit for the request's host and model is open.
	ReasonCircuitOpen = "circuit-open"
	// ReasonWaitTooLong: the pacer's predicted wait is longer than the
	// request's deadline or the configured maximum wait.
	ReasonWaitTooLong = "wait-too-long"
	// ReasonQuota: the provider said the credential's quota or spend cap is
	// exhausted, and llmhttp remembers it until the reset.
	ReasonQuota = "quota-exhausted"
	// ReasonBudgetExhausted: a user-defined token budget is spent.
	ReasonBudgetExhausted = "budget-exhausted"
	// ReasonShed: dropped under load because of its low priority.
	ReasonShed = "shed"
	// ReasonTooLarge: the request can never fit the limits.
	ReasonTooLarge = "too-large"
)

// Sentinel errors, one per refusal reason, for errors.Is on a [*Refusal]
// returned in typed-error mode.
var (
	ErrCircuitOpen     = errors.New("llmhttp: circuit open")
	ErrWaitTooLong     = errors.New("llmhttp: wait would exceed the deadline or the maximum wait")
	ErrQuotaExhausted  = errors.New("llmhttp: quota exhausted")
	ErrBudgetExhausted = errors.New("llmhttp: budget exhausted")
	ErrShed            = errors.New("llmhttp: request shed under load")
	ErrTooLarge        = errors.New("llmhttp: request too large for the limits")
)

// headerRefusal names the reason of a local reply: one of the Reason
// constants. [RefusalOf] recognises a local reply by it when a layer above
// has wrapped the reply's body.
const headerRefusal = "Llmhttp-Refusal"

// A Refusal is llmhttp answering a request itself instead of sending it.
// It is an error: in typed-error mode ([WithRefusalErrors]) the Transport
// returns it instead of its [Refusal.Response], and errors.Is matches it
// against the sentinel of its reason (ErrCircuitOpen, …), also through the
// *url.Error of an http.Client.
type Refusal struct {
	// Reason is one of the Reason constants.
	Reason string
	// RetryAfter is when trying again may succeed; 0 means unknown.
	RetryAfter time.Duration
	// Message is a human-readable explanation, without secrets: it goes
	// into Error and the local reply's body. It may be empty.
	Message string
}

// Error returns "llmhttp: <reason>: <message>", or "llmhttp: <reason>" when
// the message is empty.
func (r *Refusal) Error() string {
	if r == nil {
		return "llmhttp: <nil refusal>"
	}
	reason := r.Reason
	if reason == "" {
		reason = "refused"
	}
	if r.Message == "" {
		return "llmhttp: " + reason
	}
	return "llmhttp: " + reason + ": " + r.Message
}

// Unwrap returns the sentinel error for r.Reason (ErrCircuitOpen for
// ReasonCircuitOpen, …), or nil for a reason this package does not know.
func (r *Refusal) Unwrap() error {
	if r == nil {
		return nil
	}
	switch r.Reason {
	case ReasonCircuitOpen:
		return ErrCircuitOpen
	case ReasonWaitTooLong:
		return ErrWaitTooLong
	case ReasonQuota:
		return ErrQuotaExhausted
	case ReasonBudgetExhausted:
		return ErrBudgetExhausted
	case ReasonShed:
		return ErrShed
	case ReasonTooLarge:
		return ErrTooLarge
	}
	return nil
}

// StatusCode returns the HTTP status of r's local reply:
//   - 503 Service Unavailable for ReasonCircuitOpen: the upstream is taken
//     as down, as an Envoy local reply for an open circuit says;
//   - 413 Content Too Large for ReasonTooLarge: the request can never
//     succeed as it is, which is what 413 means (Groq answers a request
//     larger than its TPM this way too), and no client retries a 413;
//   - 429 Too Many Requests for every other reason (pacing, quota, budget,
//     shed): the caller is sending more than it may.
func (r *Refusal) StatusCode() int {
	switch r.Reason {
	case ReasonCircuitOpen:
		return http.StatusServiceUnavailable
	case ReasonTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusTooManyRequests
}

// Response returns the local reply for r to req: a synthesised response, as
// an Envoy local reply, that both official SDKs decode as their own API
// error and do not retry. It has
//   - the status of [Refusal.StatusCode];
//   - the headers X-Should-Retry: false (which both SDKs honour),
//     Llmhttp-Refusal: <reason>, Content-Type: application/json and, when
//     RetryAfter > 0, Retry-After (whole seconds, rounded up) and
//     Retry-After-Ms;
//   - a JSON body in the provider's error shape: Anthropic's
//     {"type":"error","error":{"type":…,"message":…}} when [DetectProvider]
//     says req is Anthropic's, else OpenAI's
//     {"error":{"message":…,"type":…,"param":null,"code":…}}, whose code is
//     the reason in snake case ("circuit_open"). The message is r.Error().
//   - Request set to req, Proto HTTP/1.1, ContentLength set and a non-nil
//     Body that [RefusalOf] recognises.
//
// Response neither reads nor closes req.Body: the layer that refuses the
// request owns that, and must close req.Body before returning the reply, as
// the RoundTripper contract asks. req may be nil (the reply is then in
// OpenAI's shape, without a Request).
func (r *Refusal) Response(req *http.Request) *http.Response {
	status := r.StatusCode()
	provider := ProviderOpenAI
	if req != nil {
		provider = DetectProvider(req)
	}
	body := r.body(provider)
	h := make(http.Header, 5)
	h["Content-Type"] = []string{"application/json"}
	h["X-Should-Retry"] = []string{"false"}
	h[headerRefusal] = []string{r.Reason}
	if r.RetryAfter > 0 {
		secs := r.RetryAfter / time.Second
		if r.RetryAfter%time.Second != 0 {
			secs++
		}
		ms := r.RetryAfter / time.Millisecond
		if r.RetryAfter%time.Millisecond != 0 {
			ms++
		}
		h["Retry-After"] = []string{strconv.FormatInt(int64(secs), 10)}
		h["Retry-After-Ms"] = []string{strconv.FormatInt(int64(ms), 10)}
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          &refusalBody{Reader: bytes.NewReader(body), refusal: r},
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// body returns the JSON error body of r's reply in provider's shape.
func (r *Refusal) body(provider Provider) []byte {
	msg := r.Error()
	var v any
	if provider == ProviderAnthropic {
		type anthropicError struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}
		v = struct {
			Type  string         `json:"type"`
			Error anthropicError `json:"error"`
		}{"error", anthropicError{r.anthropicType(), msg}}
	} else {
		type openaiError struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		}
		v = struct {
			Error openaiError `json:"error"`
		}{openaiError{Message: msg, Type: r.openaiType(), Code: r.code()}}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("llmhttp: cannot encode a local reply: " + err.Error()) // strings and a nil pointer always encode
	}
	return b
}

// anthropicType is the Anthropic error.type matching r's status.
func (r *Refusal) anthropicType() string {
	switch r.StatusCode() {
	case http.StatusServiceUnavailable:
		return "overloaded_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	}
	return "rate_limit_error"
}

// openaiType is the OpenAI error.type matching r's reason.
func (r *Refusal) openaiType() string {
	switch r.Reason {
	case ReasonCircuitOpen:
		return "service_unavailable_error"
	case ReasonTooLarge:
		return "invalid_request_error"
	case ReasonQuota, ReasonBudgetExhausted:
		return "insufficient_quota"
	}
	return "rate_limit_error"
}

// code is r.Reason in snake case, for OpenAI's error.code: "circuit_open".
func (r *Refusal) code() string {
	if r.Reason == "" {
		return "refused"
	}
	return strings.ReplaceAll(r.Reason, "-", "_")
}

// refusalBody is the body of a local reply; it carries the Refusal so that
// [RefusalOf] gives it back exactly.
type refusalBody struct {
	*bytes.Reader
	refusal *Refusal
}

// Close does nothing: the body is in memory.
func (b *refusalBody) Close() error { return nil }

// RefusalOf reports whether resp is a local reply, and its details. It
// recognises the body of a [Refusal.Response] reply and returns a copy of
// its Refusal. When a layer above has replaced the body (wrapped it to count
// or log it), it falls back to the headers: Llmhttp-Refusal gives the
// reason, Retry-After-Ms or else Retry-After (delta-seconds) the RetryAfter;
// the Message is then empty. The body is never read.
//
// A response from the network that carries an Llmhttp-Refusal header (an
// upstream llmhttp proxy's local reply) is taken as a local reply too.
func RefusalOf(resp *http.Response) (*Refusal, bool) {
	r, ok := refusalOf(resp)
	if !ok {
		return nil, false
	}
	c := *r
	return &c, true
}

// refusalOf is RefusalOf without the copy, for Classify: when the body is a
// refusalBody it does not allocate.
func refusalOf(resp *http.Response) (*Refusal, bool) {
	if resp == nil {
		return nil, false
	}
	if b, ok := resp.Body.(*refusalBody); ok && b.refusal != nil {
		return b.refusal, true
	}
	reason := strings.TrimSpace(resp.Header.Get(headerRefusal))
	if !validReason(reason) {
		return nil, false
	}
	r := &Refusal{Reason: reason}
	if ms, ok := parseNonNegFloat(strings.TrimSpace(resp.Header.Get("Retry-After-Ms"))); ok {
		if ms < float64(maxDuration/time.Millisecond) {
			r.RetryAfter = time.Duration(ms * float64(time.Millisecond))
		}
	} else if s, err := strconv.ParseInt(strings.TrimSpace(resp.Header.Get("Retry-After")), 10, 64); err == nil &&
		s > 0 && s < int64(maxDuration/time.Second) {
		r.RetryAfter = time.Duration(s) * time.Second
	}
	return r, true
}

// validReason reports whether s looks like a refusal reason: 1–64 bytes of
// lower-case letters, digits, '-' and '_'.
func validReason(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
