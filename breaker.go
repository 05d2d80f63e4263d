package llmhttp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// State is the state of one circuit.
type State int

// The states of a circuit.
const (
	// StateClosed lets every request through and counts the outcomes.
	StateClosed State = iota
	// StateHalfOpen lets a few probe requests through to find out whether
	// the endpoint has recovered.
	StateHalfOpen
	// StateOpen answers every request locally, without sending it.
	StateOpen
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return "unknown"
}

// stateOf maps gobreaker's states to ours.
func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	case gobreaker.StateOpen:
		return StateOpen
	}
	return StateClosed
}

// BreakerCounts are the outcomes a circuit counted in its current state: in
// the closed state, those of the requests sent during the rolling window; in
// the half-open state, those of the probes. They are cleared on every change
// of state.
type BreakerCounts struct {
	// Requests is how many requests were let through, including those
	// still in flight.
	Requests int
	// Successes and Failures are the outcomes counted as success (a 2xx)
	// and as failure (network, overloaded, server, timeout).
	Successes, Failures int
	// Ignored is how many outcomes were neither: throttles, quota, client
	// and auth errors, the caller's cancellation, local refusals.
	Ignored int
	// ConsecutiveSuccesses and ConsecutiveFailures are the current runs.
	ConsecutiveSuccesses, ConsecutiveFailures int
}

func countsOf(c gobreaker.Counts) BreakerCounts {
	return BreakerCounts{
		Requests:             int(c.Requests),
		Successes:            int(c.TotalSuccesses),
		Failures:             int(c.TotalFailures),
		Ignored:              int(c.TotalExclusions),
		ConsecutiveSuccesses: int(c.ConsecutiveSuccesses),
		ConsecutiveFailures:  int(c.ConsecutiveFailures),
	}
}

// BreakerSettings configures a [Breaker]. The zero value is ready to use:
// every field's zero value means the default documented on it.
//
// The default trip policy has two rules, either of which opens the circuit:
//
//   - ConsecutiveFailures (10) failures in a row detect a hard outage within
//     a couple of seconds at any traffic rate, however long the endpoint was
//     healthy before. A ratio alone would not: after a minute of successes
//     at 5 requests per second, a ratio over a minute-long window needs
//     half a minute of total failure to reach 50 %.
//   - A FailureRatio (50 %) of at least MinRequests (20) counted outcomes
//     in the rolling Window (30 s) detects a heavy but partial overload,
//     where lucky successes keep breaking the runs of failures: that of a
//     circuit breaker à la Hystrix (50 % of at least 20 requests in 10 s),
//     over a longer window because LLM requests last seconds, not
//     milliseconds.
//
// Throttles (429, slow_down), quota, auth and client errors, the caller's
// cancellation and local refusals are neither successes nor failures: they
// do not break a run of failures, and do not enter the ratio. A rate limit
// is not an outage, and tripping on it would hide the provider's Retry-After.
// Each attempt counts, retries included (the Retry layer sits outside the
// breaker), so a request that failed four times is four failures.
type BreakerSettings struct {
	// Key names the circuit a request belongs to; requests with the same key
	// share one circuit. If nil, [BreakerKey] is used: one circuit per
	// scheme+host and model. The key is passed to OnStateChange and appears
	// in refusal messages, so it must not contain secrets.
	Key func(*http.Request) string

	// ConsecutiveFailures is how many failures in a row (within the Window)
	// open the circuit. If ConsecutiveFailures is 0, 10 is used; if it is
	// negative, the rule is off and only the ratio applies.
	ConsecutiveFailures int

	// Window is the rolling period over which a closed circuit counts
	// outcomes. It is kept in ten buckets, so old outcomes age out a tenth
	// of the window at a time. If Window is 0 or negative, 30 seconds is
	// used.
	Window time.Duration

	// MinRequests is the fewest counted outcomes (successes plus failures;
	// ignored outcomes do not count) in the window before the ratio rule
	// may trip the circuit, so that a few unlucky requests never open it.
	// If MinRequests is 0 or negative, 20 is used.
	MinRequests int

	// FailureRatio is the share of failures among the counted outcomes in
	// the window at which the circuit trips. If FailureRatio is 0, negative
	// or above 1, 0.5 is used.
	FailureRatio float64

	// ReadyToTrip, if set, replaces the default policy (ConsecutiveFailures,
	// MinRequests and FailureRatio): it is called after every failure
	// counted by a closed circuit, with the window's counts, and the circuit
	// opens when it returns true. It is called while the circuit is locked:
	// it must be fast and must not call back into the Breaker.
	ReadyToTrip func(BreakerCounts) bool

	// OpenDuration is how long a circuit stays open before letting probes
	// through. A longer Retry-After (or retry-after-ms) on the failure that
	// opened the circuit is honoured, up to MaxOpenDuration. If OpenDuration
	// is 0 or negative, 30 seconds is used.
	OpenDuration time.Duration

	// MaxOpenDuration caps how long a server's Retry-After can hold a circuit
	// open; longer hints are clamped to it. If MaxOpenDuration is 0,
	// negative or shorter than OpenDuration, 5 minutes (or OpenDuration, if
	// longer) is used.
	MaxOpenDuration time.Duration

	// HalfOpenProbes is how many requests a half-open circuit lets through
	// at once, and how many consecutive successes among them close it; any
	// failure re-opens it. Requests beyond the probes wait until a probe's
	// outcome is known (or their context ends), then go through if the
	// circuit closed, or get the circuit-open reply if it re-opened. If
	// HalfOpenProbes is 0 or negative, 1 is used.
	HalfOpenProbes int

	// Classifier tells what an outcome means. If nil, [Classify] is used.
	// ClassOK counts as success; ClassNetwork, ClassOverloaded, ClassServer
	// and ClassTimeout as failure; every other class is ignored. A local
	// refusal from an inner layer (see [RefusalOf]) is always ignored,
	// whatever the Classifier says.
	Classifier Classifier

	// OnStateChange, if set, is called on every change of a circuit's state,
	// with the circuit's key. It is called synchronously by the goroutine
	// whose request caused the change (or whose call observed it: leaving
	// the open state is noticed lazily, by the next request or State call),
	// outside any lock, one call at a time per circuit and in the order the
	// changes happened. It may call back into the Breaker. It must be fast:
	// a request waits for it.
	OnStateChange func(key string, from, to State)

	// MaxCircuits bounds the number of circuits kept. There is one circuit
	// per distinct key, which with the default key is one per endpoint and
	// model a program talks to. When a new key would exceed MaxCircuits,
	// closed circuits are forgotten first (a forgotten circuit loses its
	// counts); open and half-open ones are kept. If MaxCircuits is 0 or
	// negative, 1000 is used.
	MaxCircuits int

	// obs is the observer set by [Observer.BreakerSettings].
	obs *Observer
}

// BreakerKey returns the default circuit key of req: its scheme and host,
// "|", and its model, as in "https://api.anthropic.com|claude-sonnet-4-5",
// followed by "|" and the lane for a request in one (see [LaneFast]): fast
// mode overloads and recovers apart from the standard pool. The credential
// is not part of it: outages are per endpoint and model, not per API key.
func BreakerKey(req *http.Request) string {
	return circuitKey(&infoOf(req).partition)
}

// circuitKey is BreakerKey for the partition p.
func circuitKey(p *Partition) string {
	if p.Lane != "" {
		return p.Host + "|" + p.Model + "|" + p.Lane
	}
	return p.Host + "|" + p.Model
}

// Breaker is a set of circuit breakers, one per key (see
// [BreakerSettings.Key]), each a [gobreaker.CircuitBreaker] created
// on the key's first request. [Breaker.Wrap] puts it in front of a
// transport. A Breaker is safe for concurrent use by multiple goroutines and
// may be shared by several transports.
//
// While a circuit is open, requests for its key are answered at once with a
// local reply (see [Refusal]): status 503, Llmhttp-Refusal: circuit-open,
// Retry-After: the time until the circuit goes half-open, X-Should-Retry:
// false and a provider-shaped error body, or [ErrCircuitOpen] in
// typed-error mode. Their bodies are closed and they never reach the inner
// transport.
//
// When the open period ends the circuit goes half-open: HalfOpenProbes
// requests are sent, and the others wait for their outcome (see
// [BreakerSettings.HalfOpenProbes]). The Retry layer of [New] waits out an
// open circuit's Retry-After when it fits the request's deadline, so that
// its requests arrive as the circuit half-opens.
//
// The outcome of a streaming request is recorded when its response head
// arrives; an error event later in the stream (Anthropic's event: error, an
// OpenAI error chunk) is counted as a further failure once the caller has
// read it, and is never retried.
type Breaker struct {
	key         func(*http.Request) string
	classify    Classifier
	onChange    func(key string, from, to State)
	onEvent     func(BreakerEvent) // the observer's; nil when none
	onWait      func(WaitEvent)    // the observer's; nil when none
	trip        func(gobreaker.Counts) bool
	window      time.Duration
	open        time.Duration
	maxOpen     time.Duration
	probes      uint32
	maxCircuits int

	circuits   sync.Map // key → *circuit
	defaultKey bool     // key is BreakerKey

	mu      sync.Mutex // serialises creating and forgetting circuits
	n       int        // circuits in the map, under mu
	sweepAt int        // n at which the next sweep happens, under mu
}

// NewBreaker returns a Breaker configured by s.
func NewBreaker(s BreakerSettings) *Breaker {
	b := &Breaker{
		key:         s.Key,
		classify:    s.Classifier,
		onChange:    s.OnStateChange,
		window:      s.Window,
		open:        s.OpenDuration,
		maxOpen:     s.MaxOpenDuration,
		maxCircuits: s.MaxCircuits,
	}
	if b.key == nil {
		b.key, b.defaultKey = BreakerKey, true
	}
	if s.obs != nil {
		b.onEvent, b.onWait = s.obs.OnBreakerStateChange, s.obs.OnWait
	}
	if b.classify == nil {
		b.classify = Classify
	}
	if b.window <= 0 {
		b.window = 30 * time.Second
	}
	if b.open <= 0 {
		b.open = 30 * time.Second
	}
	if b.maxOpen <= 0 {
		b.maxOpen = 5 * time.Minute
	}
	b.maxOpen = max(b.maxOpen, b.open)
	b.probes = 1
	if s.HalfOpenProbes > 0 {
		b.probes = uint32(min(s.HalfOpenProbes, 1<<30))
	}
	if b.maxCircuits <= 0 {
		b.maxCircuits = 1000
	}
	b.sweepAt = b.maxCircuits
	if s.ReadyToTrip != nil {
		f := s.ReadyToTrip
		b.trip = func(c gobreaker.Counts) bool { return f(countsOf(c)) }
	} else {
		minN := uint32(20)
		if s.MinRequests > 0 {
			minN = uint32(min(s.MinRequests, 1<<30))
		}
		ratio := s.FailureRatio
		if ratio <= 0 || ratio > 1 {
			ratio = 0.5
		}
		run := uint32(10)
		switch {
		case s.ConsecutiveFailures > 0:
			run = uint32(min(s.ConsecutiveFailures, 1<<30))
		case s.ConsecutiveFailures < 0:
			run = 0
		}
		b.trip = func(c gobreaker.Counts) bool {
			if run > 0 && c.ConsecutiveFailures >= run {
				return true
			}
			n := c.TotalSuccesses + c.TotalFailures
			return n >= minN && float64(c.TotalFailures) >= ratio*float64(n)
		}
	}
	return b
}

// State returns the state of the circuit for key (see [BreakerKey]). A key
// the Breaker has not seen is closed.
func (b *Breaker) State(key string) State {
	v, ok := b.circuits.Load(key)
	if !ok {
		return StateClosed
	}
	c := v.(*circuit)
	if _, held := c.held(time.Now()); held {
		return StateOpen
	}
	s := c.cb.State()
	b.deliver(c)
	return stateOf(s)
}

// Counts returns what the circuit for key has counted in its current state,
// as of its last request (the window moves on with the next one); zero for a
// key the Breaker has not seen.
func (b *Breaker) Counts(key string) BreakerCounts {
	v, ok := b.circuits.Load(key)
	if !ok {
		return BreakerCounts{}
	}
	return countsOf(v.(*circuit).cb.Counts())
}

// Wrap returns next behind the breaker; b.Wrap is a [Middleware]. If next is
// nil, [http.DefaultTransport] is used. The returned RoundTripper forwards
// CloseIdleConnections to next.
func (b *Breaker) Wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &breakerTransport{b: b, next: next}
}

// breakerTransport is one transport behind a Breaker.
type breakerTransport struct {
	b    *Breaker
	next http.RoundTripper
}

var (
	_ http.RoundTripper = (*breakerTransport)(nil)
	_ closeIdler        = (*breakerTransport)(nil)
	_ infoTripper       = (*breakerTransport)(nil)
)

// CloseIdleConnections forwards to the inner transport.
func (t *breakerTransport) CloseIdleConnections() { closeIdle(t.next) }

// RoundTrip implements [http.RoundTripper].
func (t *breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := t.roundTripInfo(req, nil, time.Now())
	return resp, err
}

// roundTripInfo implements infoTripper.
func (t *breakerTransport) roundTripInfo(req *http.Request, info *requestInfo, now time.Time) (resp *http.Response, done time.Time, err error) {
	b := t.b
	if b.defaultKey {
		info = infoFor(req, info)
	}
	c := b.circuitOf(req, info)
	key := c.key
	// The request is sent inside gobreaker's Execute, which reports the
	// outcome send returns. If next or the classifier panics, Execute
	// reports an error that IsExcluded ignores: an unreported half-open
	// probe would hold its slot forever.
	var (
		sent    bool
		outcome error
		late    bool
	)
	send := func(at time.Time) error {
		sent = true
		a := admission{at: at, gen: c.gen.Load()}
		resp, done, err = sendOn(t.next, req, info, at)
		outcome = b.outcome(req, resp, err)
		if late = b.isLate(c, a, done, outcome); late {
			return errBreakerIgnored
		}
		return outcome
	}
	defer func() {
		if sent {
			if late {
				b.refile(c, outcome)
			}
			b.finish(c)
		}
	}()
	refusal, aerr := b.admit(req, info, c, now, send)
	if !sent {
		if req.Body != nil {
			req.Body.Close()
		}
		if aerr != nil {
			return nil, time.Time{}, aerr
		}
		return refusal.Response(req), time.Time{}, nil
	}
	if outcome == nil && isEventStream(resp) {
		// A stream's outcome is recorded at its head; an error event in
		// the middle of it (Anthropic's overloaded_error, an OpenAI error
		// chunk) is counted after the fact, once the caller has read it.
		// It is never retried: the output has gone to the caller.
		TapUsage(resp, func(u Usage) {
			if u.Err != nil {
				b.report(key, u.Err.Class)
			}
		})
	}
	return resp, done, err
}

// isEventStream reports whether resp is a server-sent event stream.
func isEventStream(resp *http.Response) bool {
	ct := header(resp.Header, "Content-Type")
	return len(ct) >= 17 && strings.EqualFold(ct[:17], "text/event-stream")
}

// outcome turns an attempt's result into what gobreaker's done callback
// takes: nil for a success, a *breakerFailure for a failure,
// errBreakerIgnored for anything else.
func (b *Breaker) outcome(req *http.Request, resp *http.Response, err error) error {
	// The caller's context ended: whatever the transport made of it (a
	// reset connection, an EOF), it is not the endpoint's failure.
	if req.Context().Err() != nil {
		return errBreakerIgnored
	}
	out := classOutcome(b.classify(resp, err))
	if out == errBreakerIgnored {
		return out
	}
	// Refused before reaching the server: never counted, whatever a custom
	// classifier says.
	if mayBeRefusal(resp) {
		if _, ok := refusalOf(resp); ok {
			return errBreakerIgnored
		}
	}
	if err != nil {
		if r := (*Refusal)(nil); errors.As(err, &r) {
			return errBreakerIgnored
		}
	}
	if f, ok := out.(*breakerFailure); ok && resp != nil {
		if d, ok := ParseRetryAfter(resp.Header, time.Now()); ok {
			return &breakerFailure{hint: d}
		}
		return f
	}
	return out
}

// mayBeRefusal reports whether resp may be a local refusal: false spares
// refusalOf's header lookup for the answers that cannot be one (no
// refusal body, no Llmhttp-Refusal header).
func mayBeRefusal(resp *http.Response) bool {
	if resp == nil || resp.StatusCode/100 == 2 {
		return false // a refusal is never a success
	}
	if _, ok := resp.Body.(*refusalBody); ok {
		return true
	}
	return len(resp.Header[headerRefusal]) > 0
}

// classOutcome maps a class to a done argument; see [Breaker.outcome].
func classOutcome(class Class) error {
	switch class {
	case ClassOK:
		return nil
	case ClassNetwork, ClassOverloaded, ClassServer, ClassTimeout:
		return errBreakerFailure
	}
	return errBreakerIgnored
}

// errBreakerIgnored is the done argument of an outcome that is neither
// success nor failure; gobreaker's IsExcluded recognises it.
var errBreakerIgnored = errors.New("llmhttp: breaker: ignored outcome")

// breakerFailure is the done argument of a failure; hint is the server's
// Retry-After on it, 0 when none.
type breakerFailure struct{ hint time.Duration }

func (*breakerFailure) Error() string { return "llmhttp: breaker: failure" }

var errBreakerFailure = &breakerFailure{}

// report records an outcome learnt after the request's RoundTrip returned —
// a stream that failed after a 2xx head (an SSE event: error with
// overloaded_error or api_error) — for the circuit named key. It is counted
// like the outcome of a new request: it is dropped while the circuit is open
// or all its half-open probe slots are taken, and a failure reported for a
// request whose head was counted as a success leaves that success counted.
// Classes other than failures and ClassOK are ignored.
func (b *Breaker) report(key string, class Class) {
	out := classOutcome(class)
	if out == errBreakerIgnored {
		return
	}
	c := b.circuit(key, nil, nil)
	if _, held := c.held(time.Now()); held {
		return
	}
	b.refile(c, out)
	b.finish(c)
}

// circuit is the state kept for one key.
type circuit struct {
	key string
	cb  *gobreaker.CircuitBreaker[struct{}]
	// part is the host and model of the request that created the circuit,
	// for observers and [Transport.Stats].
	part Partition

	// openUntil is when the circuit goes half-open: the instant it opened
	// plus the open duration, or the server's longer hint. nil until it
	// first opens. It is later than gobreaker's own expiry (see Timeout in
	// newCircuit), so "not held" implies gobreaker no longer says open.
	openUntil atomic.Pointer[time.Time]
	// state is the last state gobreaker reported, and gen counts the
	// changes. state lags the lazy open→half-open move: it is only used to
	// choose circuits to forget and, with gen, to tell that a circuit has
	// stayed closed since a request was let through.
	state atomic.Int32
	gen   atomic.Uint64
	// hint is the server hint of the failure being recorded. It is written
	// by IsSuccessful and read by OnStateChange, both called by gobreaker
	// under its own mutex, which guards it.
	hint time.Duration

	// waiters counts requests waiting for a half-open probe's outcome.
	waiters atomic.Int32
	// forgotten is set when the Breaker forgets the circuit (see sweep):
	// a partRef naming it is stale.
	forgotten atomic.Bool
	// hasEvents is set when events is non-empty (a lock-free check).
	hasEvents atomic.Bool

	mu         sync.Mutex
	events     []stateChange // recorded under gobreaker's lock, not delivered yet
	delivering bool          // a goroutine is calling OnStateChange
	wake       chan struct{} // closed when a request's outcome is recorded
}

type stateChange struct {
	from, to State
	until    time.Time // when an opened circuit lets probes through
}

// circuitOf returns the circuit of req, described by info (which may be
// nil with a custom key), creating it on first use. With the default key,
// the circuit a request of the partition found last is kept in the
// partition's partRef, so that the common case builds no key string and
// looks nothing up.
func (b *Breaker) circuitOf(req *http.Request, info *requestInfo) *circuit {
	if !b.defaultKey {
		return b.circuit(b.key(req), req, info)
	}
	r := info.ref
	if cr := r.circuit.Load(); cr != nil && cr.b == b && !cr.c.forgotten.Load() {
		return cr.c
	}
	c := b.circuit(circuitKey(&info.partition), req, info)
	r.circuit.Store(&circuitRef{b: b, c: c})
	return c
}

// circuit returns the circuit for key, creating it on first use for req,
// described by info (both may be nil).
func (b *Breaker) circuit(key string, req *http.Request, info *requestInfo) *circuit {
	if v, ok := b.circuits.Load(key); ok {
		return v.(*circuit)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.circuits.Load(key); ok {
		return v.(*circuit)
	}
	if b.n >= b.sweepAt {
		b.sweep()
		b.sweepAt = max(b.maxCircuits, 2*b.n)
	}
	c := b.newCircuit(key)
	if req != nil {
		p := infoFor(req, info).partition
		c.part = Partition{Host: p.Host, Model: p.Model, Lane: p.Lane}
	}
	b.circuits.Store(key, c)
	b.n++
	return c
}

// sweep forgets closed circuits. Called with b.mu held; it calls no user
// code and no gobreaker method.
func (b *Breaker) sweep() {
	b.circuits.Range(func(k, v any) bool {
		c := v.(*circuit)
		if State(c.state.Load()) == StateClosed && c.waiters.Load() == 0 {
			b.circuits.Delete(k)
			c.forgotten.Store(true)
			b.n--
		}
		return true
	})
}

// newCircuit returns the circuit for key. Its gobreaker Timeout is a
// nanosecond shorter than the open duration: gobreaker goes half-open once
// its expiry is strictly before now, which makes that the instant openUntil
// names, so that a caller who waits exactly the Retry-After of a refusal
// finds the circuit half-open.
func (b *Breaker) newCircuit(key string) *circuit {
	c := &circuit{key: key}
	c.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         key,
		MaxRequests:  b.probes,
		Interval:     b.window,
		BucketPeriod: b.window / 10,
		Timeout:      max(b.open-time.Nanosecond, time.Nanosecond), // see above
		ReadyToTrip:  b.trip,
		// Excluded: errBreakerIgnored, and the error Execute reports for a
		// request that panicked.
		IsExcluded: func(err error) bool {
			_, failed := err.(*breakerFailure)
			return err != nil && !failed
		},
		IsSuccessful: func(err error) bool {
			f, failed := err.(*breakerFailure)
			if failed {
				c.hint = f.hint
			}
			return !failed
		},
		// gobreaker calls this with its mutex held: record the change and
		// let deliver call the user's hook once the lock is released.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			now := time.Now()
			c.state.Store(int32(stateOf(to)))
			c.gen.Add(1)
			var until time.Time
			if to == gobreaker.StateOpen {
				until = now.Add(max(b.open, min(c.hint, b.maxOpen)))
				c.openUntil.Store(&until)
			}
			c.hint = 0
			if b.onChange != nil || b.onEvent != nil {
				c.mu.Lock()
				c.events = append(c.events, stateChange{stateOf(from), stateOf(to), until})
				c.hasEvents.Store(true)
				c.mu.Unlock()
			}
		},
	})
	return c
}

// held reports whether c is open at now, and for how much longer: until the
// instant it lets probes through.
func (c *circuit) held(now time.Time) (time.Duration, bool) {
	until := c.openUntil.Load()
	if until == nil || !now.Before(*until) {
		return 0, false
	}
	return until.Sub(now), true
}

// refusal is the local answer of an open circuit.
func (b *Breaker) refusal(c *circuit, retryAfter time.Duration) *Refusal {
	return &Refusal{
		Reason:     ReasonCircuitOpen,
		RetryAfter: retryAfter,
		Message:    "too many recent failures from " + c.key,
	}
}

// admit asks c to let req, described by info, through at now, and sends
// it with send, inside gobreaker's Execute, once it may go: at once, or
// when it has waited for a half-open probe's outcome. send takes the time
// of the admission and returns the outcome to report. Unless it sent,
// admit returns the refusal of an open circuit, or the context's error when
// it ended while the request waited for a probe's outcome.
func (b *Breaker) admit(req *http.Request, info *requestInfo, c *circuit, now time.Time, send func(at time.Time) error) (refusal *Refusal, err error) {
	ctx := req.Context()
	waiting := false
	var since time.Time // when the wait for a probe began
	endWait := func(refusal *Refusal, err error) {
		if !waiting {
			return
		}
		waiting = false
		c.waiters.Add(-1)
		if b.onWait != nil {
			b.onWait(WaitEvent{Request: req, Partition: infoFor(req, info).partition, Waited: time.Since(since),
				Cause: WaitBreaker, Refusal: refusal, Err: err})
		}
	}
	at := now
	for {
		if d, held := c.held(at); held {
			refusal = b.refusal(c, d)
			endWait(refusal, nil)
			return refusal, nil
		}
		var wake <-chan struct{}
		if waiting {
			wake = c.wakeChan()
		}
		ran := false
		_, err := c.cb.Execute(func() (struct{}, error) {
			ran = true
			b.deliver(c)
			endWait(nil, nil)
			return struct{}{}, send(at)
		})
		if ran {
			return nil, nil
		}
		b.deliver(c)
		switch {
		case errors.Is(err, gobreaker.ErrOpenState):
			// Opened between the check above and Execute.
			d, held := c.held(time.Now())
			if !held {
				d = time.Nanosecond // only with a 1 ns OpenDuration
			}
			refusal = b.refusal(c, d)
			endWait(refusal, nil)
			return refusal, nil
		case !waiting:
			// Half-open with every probe slot taken: register as a waiter,
			// then ask again holding a wake channel, so an outcome recorded
			// in between is not missed.
			waiting = true
			since = time.Now()
			at = since
			c.waiters.Add(1)
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			err = context.Cause(ctx)
			endWait(nil, err)
			return nil, err
		}
		at = time.Now()
	}
}

// wakeChan returns the channel closed at the next recorded outcome.
func (c *circuit) wakeChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

// admission is when a request was let through, and the circuit's
// generation then.
type admission struct {
	at  time.Time
	gen uint64
}

// isLate reports whether outcome, of a request admitted at a and answered
// at done (see answeredAt), is to be filed as a new request's (see refile)
// rather than its own.
//
// gobreaker files an outcome in the window bucket of the request's start
// and drops it once that bucket has left the window, so the outcome of a
// request that ran for most of a Window (a long generation that ends in a
// 504 or a reset) would never count. The outcome of such a request, let
// through by a circuit that has stayed closed since, is filed as a new
// request's instead: the old admission is reported as ignored, and a fresh
// one takes the outcome.
func (b *Breaker) isLate(c *circuit, a admission, done time.Time, outcome error) bool {
	return outcome != errBreakerIgnored && answeredAt(done).Sub(a.at) > b.window-b.window/10 &&
		c.gen.Load() == a.gen && State(c.state.Load()) == StateClosed
}

// refile reports outcome to c as the outcome of a new request, unless c
// refuses one.
func (b *Breaker) refile(c *circuit, outcome error) {
	c.cb.Execute(func() (struct{}, error) { return struct{}{}, outcome })
}

// finish delivers the state changes an outcome caused and wakes the
// requests waiting for a probe slot.
func (b *Breaker) finish(c *circuit) {
	b.deliver(c)
	if c.waiters.Load() > 0 {
		c.mu.Lock()
		if c.wake != nil {
			close(c.wake)
			c.wake = nil
		}
		c.mu.Unlock()
	}
}

// deliver calls OnStateChange for the changes recorded on c, outside every
// lock. Only one goroutine delivers for a circuit at a time, so the hook sees
// the changes one at a time and in order; changes recorded meanwhile by
// other goroutines (or by the hook itself calling State) are delivered by
// the goroutine already delivering.
func (b *Breaker) deliver(c *circuit) {
	if (b.onChange == nil && b.onEvent == nil) || !c.hasEvents.Load() {
		return
	}
	c.mu.Lock()
	if c.delivering {
		c.mu.Unlock()
		return
	}
	c.delivering = true
	finished := false
	defer func() {
		if !finished { // the hook panicked: let later changes be delivered
			c.mu.Lock()
			c.delivering = false
			c.mu.Unlock()
		}
	}()
	for len(c.events) > 0 {
		events := c.events
		c.events = nil
		c.hasEvents.Store(false)
		c.mu.Unlock()
		for _, e := range events {
			if b.onChange != nil {
				b.onChange(c.key, e.from, e.to)
			}
			if b.onEvent != nil {
				b.onEvent(BreakerEvent{Key: c.key, Partition: c.part, From: e.from, To: e.to, Until: e.until})
			}
		}
		c.mu.Lock()
	}
	c.delivering = false
	finished = true
	c.mu.Unlock()
}

// partitionStates returns the state of every circuit by its host and
// model (see [circuit.part]); where several circuits share them (a custom
// Key), the least healthy state wins.
func (b *Breaker) partitionStates() map[Partition]State {
	out := make(map[Partition]State)
	b.circuits.Range(func(k, v any) bool {
		c := v.(*circuit)
		st := b.State(c.key)
		if old, ok := out[c.part]; !ok || severity(st) > severity(old) {
			out[c.part] = st
		}
		return true
	})
	return out
}

// severity orders states from healthy to failing.
func severity(s State) int {
	switch s {
	case StateHalfOpen:
		return 1
	case StateOpen:
		return 2
	}
	return 0
}
