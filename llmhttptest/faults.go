package llmhttptest

import (
	"math/rand/v2"
	"time"
)

// FaultKind is what a [Fault] does to a request.
type FaultKind int

const (
	// Overloaded answers Anthropic 529 overloaded_error, OpenAI 503
	// service_unavailable_error / server_is_overloaded.
	Overloaded FaultKind = iota + 1
	// ServerError answers 500: Anthropic api_error, OpenAI server_error.
	ServerError
	// Timeout answers 504: Anthropic timeout_error, OpenAI timeout.
	Timeout
	// Reset drops the connection before any response byte: on a real server
	// the connection is hijacked and closed with an RST (the client reads
	// "connection reset by peer"); on the in-memory [Transport] RoundTrip
	// returns an error wrapping [ErrConnReset] and io.ErrUnexpectedEOF.
	Reset
	// Latency delays the request by Delay before it is handled; unlike the
	// other kinds it does not stop the request, and every matching Latency
	// fault adds its delay.
	Latency
	// Quota answers the provider's billing 429, without retry-after:
	// Anthropic's spend cap (rate_limit_error with details.error_code
	// enforced_spend_limit_reached), OpenAI insufficient_quota (or Code).
	Quota
	// SlowDown answers OpenAI's ramp-rate 429 (rate_limit_error /
	// slow_down), or Anthropic's acceleration-limit 429.
	SlowDown
	// RateLimit answers a 429 rate_limit_error (OpenAI
	// rate_limit_exceeded) whatever the buckets hold.
	RateLimit
	// TooLarge answers 413 request_too_large.
	TooLarge
	// StreamError sends, in a streamed response, an error event after half
	// of the output (Anthropic "event: error" with overloaded_error; OpenAI a
	// "data: {"error":…}" chunk) and ends the stream. The head was 200.
	// Non-streamed requests do not match it.
	StreamError
	// StreamCut drops the connection of a streamed response after half of
	// the output, without the closing events, as Reset does: reading the
	// body fails with "connection reset by peer" from a real server, with
	// [ErrConnReset] and io.ErrUnexpectedEOF from the in-memory [Transport].
	// Non-streamed requests do not match it.
	StreamCut
)

var faultNames = [...]string{
	Overloaded: "overloaded", ServerError: "server_error", Timeout: "timeout",
	Reset: "reset", Latency: "latency", Quota: "quota", SlowDown: "slow_down",
	RateLimit: "rate_limit", TooLarge: "too_large", StreamError: "stream_error",
	StreamCut: "stream_cut",
}

// String returns the kind's name in snake case.
func (k FaultKind) String() string {
	if k > 0 && int(k) < len(faultNames) {
		return faultNames[k]
	}
	return "unknown"
}

// A Fault is a scripted misbehaviour: from Start, for Duration, at most
// Count times, each matching request with probability Probability, do Kind.
// Faults apply to Messages and Chat Completions requests that passed
// authentication and validation, before the rate limiter (StreamError and
// StreamCut: after it); faulted requests are not charged against the
// limits. count_tokens is never faulted.
//
// When several faults match a request, every matching Latency fault adds its
// delay, then the first other fault in order whose draw succeeds applies.
type Fault struct {
	// Kind is what the fault does.
	Kind FaultKind
	// Start is when the fault begins, measured from [NewHandler] for
	// Config.Faults and from the call for [Handler.Inject]. Default 0: at
	// once.
	Start time.Duration
	// Duration is how long the fault lasts. Default 0: for ever.
	Duration time.Duration
	// Count is how many requests the fault hits at most ("the next N
	// requests"). Default 0: no limit.
	Count int
	// Probability is the chance that a matching request is hit, drawn from
	// the seeded source. Default 0 (or any value outside (0, 1)) means 1:
	// every matching request.
	Probability float64
	// Provider restricts the fault to one dialect. Default 0: both.
	Provider Provider
	// Model restricts the fault to one model. Default "": every model.
	Model string
	// RetryAfter, when positive, adds a retry-after header of that many
	// seconds, rounded up, to an Overloaded, ServerError, Timeout, SlowDown
	// or RateLimit reply. Default 0: no retry-after.
	RetryAfter time.Duration
	// Delay is the added latency of a Latency fault.
	Delay time.Duration
	// Code is the OpenAI error.code of a Quota fault: insufficient_quota
	// (the default), credit_balance_exhausted,
	// organization_spend_limit_exceeded, … It is ignored for Anthropic.
	Code string
}

// activeFault is a Fault placed in time, with its remaining count.
type activeFault struct {
	Fault
	from, until time.Time // until is zero for ever
	left        int       // < 0: unlimited
}

func activate(f Fault, origin time.Time) *activeFault {
	a := &activeFault{Fault: f, from: origin.Add(max(f.Start, 0)), left: -1}
	if f.Duration > 0 {
		a.until = a.from.Add(f.Duration)
	}
	if f.Count > 0 {
		a.left = f.Count
	}
	return a
}

// matches reports whether a could apply to a request at now. It does not
// draw or count.
func (a *activeFault) matches(now time.Time, p Provider, model string, stream bool) bool {
	switch {
	case a.left == 0,
		now.Before(a.from),
		!a.until.IsZero() && !now.Before(a.until),
		a.Provider != 0 && a.Provider != p,
		a.Model != "" && a.Model != model,
		(a.Kind == StreamError || a.Kind == StreamCut) && !stream:
		return false
	}
	return true
}

// fire draws a's probability and, when it hits, spends one of its count.
func (a *activeFault) fire(rng *rand.Rand) bool {
	if a.Probability > 0 && a.Probability < 1 && rng.Float64() >= a.Probability {
		return false
	}
	if a.left > 0 {
		a.left--
	}
	return true
}

// plan is what the faults do to one request.
type plan struct {
	delay time.Duration // total Latency
	fault *Fault        // the fault that applies, if any (a copy)
}

// pickFaults decides the faults of a request. The caller holds h.mu.
func (h *Handler) pickFaults(now time.Time, p Provider, model string, stream bool, rng *rand.Rand) plan {
	var pl plan
	live := h.faults[:0]
	for _, a := range h.faults {
		if a.left == 0 || (!a.until.IsZero() && !now.Before(a.until)) {
			continue // spent or over: forget it
		}
		live = append(live, a)
		if !a.matches(now, p, model, stream) {
			continue
		}
		if a.Kind == Latency {
			if a.fire(rng) {
				pl.delay += max(a.Delay, 0)
			}
			continue
		}
		if pl.fault == nil && a.fire(rng) {
			f := a.Fault
			pl.fault = &f
		}
	}
	clear(h.faults[len(live):])
	h.faults = live
	return pl
}
