package llmhttp

import (
	"context"
	"net/http"
	"time"
)

// Observer is a set of hooks that llmhttp calls as requests go through it,
// in the style of [net/http/httptrace.ClientTrace]: every field is optional,
// and a nil field costs nothing. Give it to [New] with [WithObserver], which
// threads it to every layer New builds; layers built apart (a Pacer or
// Breaker shared between transports, a Retry in a [Chain]) take it through
// [Observer.PacerSettings], [Observer.BreakerSettings] and
// [Observer.RetryPolicy].
//
// Hooks are called synchronously, from the goroutine of the request that
// caused the event (for usage, the goroutine that read its body to the end
// or closed it), outside every lock of llmhttp's. They may be called
// concurrently for different requests, so they must be safe for concurrent
// use, and they must be fast: the request waits for them. They must not
// modify the requests and responses they are shown, nor read a response's
// body.
//
// Events name their [Partition] (scheme+host, credential fingerprint,
// model), never the credential itself, and never carry the request's body.
// Partitions are [DefaultPartition]'s, whatever partition functions the
// layers use; a breaker's has no Credential.
//
// The adapters in the nested modules github.com/llmhttp/llmhttp/otel and
// github.com/llmhttp/llmhttp/prom are Observers; so is [LogObserver].
type Observer struct {
	// OnRequest is called when a request the Transport carried ends: when
	// its final response head is returned, or its error.
	OnRequest func(RequestEvent)

	// OnAttemptStart is called when an attempt leaves llmhttp for the
	// transport below it (the network), after every wait; the event's
	// Class, Status, Duration, Response and Err are zero.
	OnAttemptStart func(AttemptEvent)
	// OnAttempt is called when an attempt that left llmhttp ends: when its
	// response head arrived, or its error. Locally refused attempts are
	// not attempts: they are reported to OnRefusal.
	OnAttempt func(AttemptEvent)

	// OnRetry is called before the wait for a retry (see
	// [RetryPolicy.OnRetry]).
	OnRetry func(RetryEvent)

	// OnWait is called after a request waited in llmhttp, or was refused
	// by the pacer, or gave up waiting: in the pacer (the causes are those
	// of [WaitEvent]), for a half-open circuit's probe ([WaitBreaker]), and
	// between attempts ([WaitRetryAfter], [WaitBackoff], and [WaitBreaker]
	// for the wait for an open circuit's half-open).
	OnWait func(WaitEvent)

	// OnGate is called when a response closes (or extends) a partition's
	// gate, and when the first request passes it after it opened (see
	// [PacerSettings.OnGate]).
	OnGate func(GateEvent)

	// OnBreakerStateChange is called on every change of a circuit's state,
	// in order, one call at a time per circuit (see
	// [BreakerSettings.OnStateChange]).
	OnBreakerStateChange func(BreakerEvent)

	// OnRefusal is called for every local reply llmhttp makes instead of
	// sending a request (see [Refusal]): when it is the request's final
	// answer, and when the retry layer waits it out (an open circuit).
	OnRefusal func(RefusalEvent)

	// OnUsage is called with the token usage a successful response's body
	// reports, when the body has been read to its end or closed (see
	// [TapUsage]). Setting it makes the Transport read the usage of every
	// successful response.
	OnUsage func(TokenUsageEvent)

	// OnBudgetThreshold is called when a budget's use reaches one of its
	// thresholds (see [BudgetSettings.OnThreshold]), for the budget layer
	// New builds.
	OnBudgetThreshold func(ThresholdEvent)

	// OnStore is called when a shared store ([PacerSettings.Store],
	// [BudgetSettings.Store]) falls back to local state or returns to
	// shared; the store calls it — see the store's documentation, e.g.
	// github.com/llmhttp/llmhttp/redis Settings.Observer.
	OnStore func(StoreEvent)
}

// Causes of a wait in llmhttp outside the pacer, for [WaitEvent.Cause]; the
// pacer's own are listed there.
const (
	// WaitBreaker: waiting for an open circuit to go half-open, or for a
	// half-open circuit's probe to finish.
	WaitBreaker = "breaker"
	// WaitRetryAfter: waiting before a retry for as long as the server
	// said (retry-after, a rate-limit reset).
	WaitRetryAfter = "retry_after"
	// WaitBackoff: waiting before a retry for the exponential backoff.
	WaitBackoff = "backoff"
)

// RequestEvent describes a request the Transport finished, for
// [Observer.OnRequest].
type RequestEvent struct {
	// Request is the caller's request (or a shallow copy of it whose
	// context carries llmhttp's own values). Do not modify it.
	Request *http.Request
	// Partition is the request's partition.
	Partition Partition
	// Provider is the request's dialect.
	Provider Provider
	// Start is when the request arrived; Duration how long it took until
	// its final response head, or its error: waits and retries included.
	Start    time.Time
	Duration time.Duration
	// Attempts is how many attempts were sent to the server, retries
	// included; locally refused attempts are not counted.
	Attempts int
	// Retries is how many times the retry layer tried again.
	Retries int
	// Class is what the final answer means; Status its HTTP status (0 when
	// there was none).
	Class  Class
	Status int
	// Refusal is llmhttp's own refusal when the final answer is a local
	// reply; nil otherwise.
	Refusal *Refusal
	// Err is the request's error, when it ended without a response.
	Err error
	// SDKRetryCount is the request's X-Stainless-Retry-Count: how many
	// times an SDK above llmhttp had already retried this call. More than 0
	// means two retry loops on top of each other (see
	// [RetryPolicy.OnSDKRetry]).
	SDKRetryCount int
}

// AttemptEvent describes one attempt sent to the server, for
// [Observer.OnAttemptStart] and [Observer.OnAttempt].
type AttemptEvent struct {
	// Request is the attempt's request. Do not modify it.
	Request *http.Request
	// Partition is the request's partition.
	Partition Partition
	// Attempt is the attempt's number, from 1. Attempt-1 is OpenTelemetry's
	// http.request.resend_count (see [ResendCount]).
	Attempt int
	// Start is when the attempt left llmhttp; Duration how long until its
	// response head or error (the time on the wire, without llmhttp's
	// waits).
	Start    time.Time
	Duration time.Duration
	// Class is what the attempt's outcome means; Status its HTTP status,
	// 0 when it got no response.
	Class  Class
	Status int
	// Response is the attempt's response, nil when Err is set. Do not read
	// its body.
	Response *http.Response
	// Err is the attempt's error.
	Err error
}

// BreakerEvent describes a change of a circuit's state, for
// [Observer.OnBreakerStateChange].
type BreakerEvent struct {
	// Key is the circuit's key (see [BreakerSettings.Key]).
	Key string
	// Partition is the host and model of the request that created the
	// circuit; its Credential is empty (circuits are per endpoint and
	// model).
	Partition Partition
	// From and To are the states before and after.
	From, To State
	// Until is, when To is StateOpen, when the circuit lets probes
	// through; zero otherwise.
	Until time.Time
}

// RefusalEvent describes a local reply, for [Observer.OnRefusal].
type RefusalEvent struct {
	// Request is the refused request. Do not modify it.
	Request *http.Request
	// Partition is the request's partition.
	Partition Partition
	// Refusal is the reply's reason and details.
	Refusal *Refusal
	// Retried reports that the retry layer waits the refusal out (an open
	// circuit whose half-open fits the request's deadline) instead of
	// returning it.
	Retried bool
}

// TokenUsageEvent describes the token usage of a response, for
// [Observer.OnUsage].
type TokenUsageEvent struct {
	// Request is the caller's request (or a shallow copy of it, as in
	// RequestEvent). Do not modify it.
	Request *http.Request
	// Partition is the request's partition.
	Partition Partition
	// Usage is what the response's body reported.
	Usage Usage
}

// WithObserver adds o to the observers of the transport New builds (see
// [Observer]). Several observers compose: each hook of each is called, in
// the order given. A nil o is ignored.
func WithObserver(o *Observer) Option {
	return func(c *config) {
		if o != nil {
			c.observers = append(c.observers, o)
		}
	}
}

// PacerSettings returns s with its OnWait and OnGate hooks extended to also
// report to o, for a [Pacer] built apart from [New] (shared by several
// transports): NewPacer(o.PacerSettings(s)). The hooks s already has are
// called first.
func (o *Observer) PacerSettings(s PacerSettings) PacerSettings {
	if o == nil {
		return s
	}
	s.OnWait = join2(s.OnWait, o.OnWait)
	s.OnGate = join2(s.OnGate, o.OnGate)
	return s
}

// BreakerSettings returns s extended to report to o (state changes and
// waits for half-open probes), for a [Breaker] built apart from [New]:
// NewBreaker(o.BreakerSettings(s)).
func (o *Observer) BreakerSettings(s BreakerSettings) BreakerSettings {
	if o == nil {
		return s
	}
	s.obs = joinObservers(s.obs, o)
	return s
}

// RetryPolicy returns p extended to report to o (retries, the waits
// between attempts, and the refusals it waits out), for a [Retry] layer
// built apart from [New]: Retry(o.RetryPolicy(p)).
func (o *Observer) RetryPolicy(p RetryPolicy) RetryPolicy {
	if o == nil {
		return p
	}
	p.obs = joinObservers(p.obs, o)
	return p
}

// joinObservers returns one Observer that calls the hooks of each of obs in
// turn, or nil when there are none. Its fields are nil where no observer
// sets them, so that an unset hook stays free.
func joinObservers(obs ...*Observer) *Observer {
	var n []*Observer
	for _, o := range obs {
		if o != nil {
			n = append(n, o)
		}
	}
	switch len(n) {
	case 0:
		return nil
	case 1:
		c := *n[0]
		return &c
	}
	j := &Observer{}
	for _, o := range n {
		j.OnRequest = join2(j.OnRequest, o.OnRequest)
		j.OnAttemptStart = join2(j.OnAttemptStart, o.OnAttemptStart)
		j.OnAttempt = join2(j.OnAttempt, o.OnAttempt)
		j.OnRetry = join2(j.OnRetry, o.OnRetry)
		j.OnWait = join2(j.OnWait, o.OnWait)
		j.OnGate = join2(j.OnGate, o.OnGate)
		j.OnBreakerStateChange = join2(j.OnBreakerStateChange, o.OnBreakerStateChange)
		j.OnRefusal = join2(j.OnRefusal, o.OnRefusal)
		j.OnUsage = join2(j.OnUsage, o.OnUsage)
		j.OnBudgetThreshold = join2(j.OnBudgetThreshold, o.OnBudgetThreshold)
		j.OnStore = join2(j.OnStore, o.OnStore)
	}
	return j
}

// join2 returns a hook calling a then b; either may be nil.
func join2[E any](a, b func(E)) func(E) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(e E) { a(e); b(e) }
}

type resendKey struct{}

// ResendCount returns how many times the request whose context is ctx was
// sent before by llmhttp's retry layer: 0 for the first attempt, n for the
// n-th retry. It is OpenTelemetry's http.request.resend_count, for a layer
// below the retry layer (inside otelhttp, say) that annotates each
// attempt's span; the otel module's ResendCount middleware does that.
func ResendCount(ctx context.Context) int {
	n, _ := ctx.Value(resendKey{}).(int)
	return n
}

// withResend returns ctx marked as the context of resend n.
func withResend(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, resendKey{}, n)
}

// attemptObserver is the innermost layer New adds when an observer wants
// attempt events: it times each attempt on the wire.
type attemptObserver struct {
	next     http.RoundTripper
	obs      *Observer
	classify Classifier
}

var (
	_ http.RoundTripper = (*attemptObserver)(nil)
	_ closeIdler        = (*attemptObserver)(nil)
	_ infoTripper       = (*attemptObserver)(nil)
)

// CloseIdleConnections forwards to the next RoundTripper.
func (a *attemptObserver) CloseIdleConnections() { closeIdle(a.next) }

// RoundTrip implements [http.RoundTripper].
func (a *attemptObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := a.roundTripInfo(req, nil, time.Time{})
	return resp, err
}

// roundTripInfo implements infoTripper. It times the attempt by the clock,
// not by now.
func (a *attemptObserver) roundTripInfo(req *http.Request, info *requestInfo, _ time.Time) (*http.Response, time.Time, error) {
	info = infoFor(req, info)
	ev := AttemptEvent{
		Request:   req,
		Partition: info.partition,
		Attempt:   ResendCount(req.Context()) + 1,
		Start:     time.Now(),
	}
	if a.obs.OnAttemptStart != nil {
		a.obs.OnAttemptStart(ev)
	}
	resp, done, err := sendOn(a.next, req, info, ev.Start)
	if a.obs.OnAttempt != nil {
		ev.Duration = answeredAt(done).Sub(ev.Start)
		ev.Response, ev.Err = resp, err
		if err != nil {
			ev.Response = nil
		}
		ev.Status = status(ev.Response)
		ev.Class = a.classify(ev.Response, err)
		a.obs.OnAttempt(ev)
	}
	return resp, done, err
}
