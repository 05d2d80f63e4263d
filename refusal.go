package llmhttp

import (
	"errors"
	"net/http"
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

// A Refusal is llmhttp answering a request itself instead of sending it.
type Refusal struct {
	// Reason is one of the Reason constants.
	Reason string
	// RetryAfter is when trying again may succeed; 0 means unknown.
	RetryAfter time.Duration
	// Message is a human-readable explanation, without secrets.
	Message string
}

// Error implements error.
func (r *Refusal) Error() string { panic("TODO") }

// Unwrap returns the sentinel error for r.Reason.
func (r *Refusal) Unwrap() error { panic("TODO") }

// Response returns the local reply for r to req.
func (r *Refusal) Response(req *http.Request) *http.Response { panic("TODO") }

// RefusalOf reports whether resp is a local reply, and its details.
func RefusalOf(resp *http.Response) (*Refusal, bool) { panic("TODO") }
