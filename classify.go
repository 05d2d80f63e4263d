package llmhttp

import (
	"net/http"
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

// Classify tells what an attempt's outcome means. See llm-wire §5.2.
func Classify(resp *http.Response, err error) Class {
	panic("TODO")
}
