package llmhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults of [RetryPolicy]; see each field for the reasoning.
const (
	defaultMaxAttempts     = 4
	defaultInitialInterval = time.Second
	defaultMaxInterval     = 30 * time.Second
	defaultMultiplier      = 2
	defaultMaxElapsedTime  = 10 * time.Minute
	defaultMaxRetryAfter   = 60 * time.Second

	// backoffRandomization is the spread of the default backoff jitter:
	// ExponentialBackOff picks from [0.5·d, 1.5·d].
	backoffRandomization = 0.5
	// hintJitterFraction and hintJitterMax bound the default jitter added on
	// top of a server hint: up to 10 % of it, never more than 250 ms.
	hintJitterFraction = 10
	hintJitterMax      = 250 * time.Millisecond
	// drainLimit is how much of a discarded body is read so that its
	// connection can be reused.
	drainLimit = 4 << 10
)

// RetryPolicy configures the retry layer built by [Retry]. The zero value is
// ready to use: every field's zero value means the documented default.
// A RetryPolicy is copied by Retry; changing it afterwards has no effect.
type RetryPolicy struct {
	// MaxAttempts is the most attempts a request gets, the first included;
	// 1 sends every request once. 0 means 4: one more than the official SDKs'
	// three, because llmhttp is meant to be the only retry loop (the SDKs'
	// own set to option.WithMaxRetries(0)), and a throttled request on a busy
	// key often needs two or three waits behind a refilling bucket. Storms
	// are stopped by Budget, not by this count.
	MaxAttempts int

	// InitialInterval is the first backoff wait, used when the server gives
	// no hint. 0 means 1 s: LLM overloads (529, 503) last seconds, so the
	// 25–100 ms of generic RPC backoff would only add load.
	InitialInterval time.Duration
	// MaxInterval caps a backoff wait before jitter. 0 means 30 s. An
	// InitialInterval above it is lowered to it.
	MaxInterval time.Duration
	// Multiplier is the growth of the backoff wait per retry. Values below 1
	// mean 2, so the default waits are about 1 s, 2 s, 4 s.
	Multiplier float64
	// MaxElapsedTime bounds the whole request: no wait is started that would
	// end later than this after the request arrived, whether the wait comes
	// from backoff or from the server. 0 means 10 min: long enough that a
	// request whose first attempt generated for minutes before failing can
	// still be retried; the request's context deadline, when it has one,
	// is the tighter bound.
	MaxElapsedTime time.Duration

	// MaxRetryAfter is the longest server-requested wait llmhttp honours. A
	// longer Retry-After (or rate-limit reset) ends retrying at once: the
	// response is returned as it came, with X-Should-Retry: false, so that
	// neither llmhttp nor an SDK above sleeps for an hour on a daily or
	// billing limit. 0 means 60 s, about one per-minute window, the span of
	// every per-minute bucket the providers use.
	MaxRetryAfter time.Duration

	// Jitter spreads waits so that clients do not retry in step. It is given
	// the wait llmhttp computed and returns the wait to use. For a server
	// hint the result is raised to the hint, which is a floor; a negative
	// result is treated as 0. nil means: a server hint d gets up to
	// min(d/10, 250 ms) added; a backoff interval d becomes a uniform pick
	// from [d/2, 3d/2] (ExponentialBackOff's own randomisation). When Jitter
	// is set, backoff intervals are not randomised by anything else, so
	// func(d time.Duration) time.Duration { return d } makes every wait exact.
	Jitter func(time.Duration) time.Duration

	// Classifier tells what each attempt's outcome means. nil means
	// [Classify].
	Classifier Classifier

	// Budget bounds retries per partition so that an outage does not become
	// a retry storm. The zero value is the default budget; see [RetryBudget].
	Budget RetryBudget

	// Partition names the partition a request's budget is kept for. nil
	// means [DefaultPartition]. It is called only when the budget needs it:
	// after a failed attempt, or after a success while some partition is
	// below its capacity.
	Partition func(*http.Request) Partition

	// OnRetry, if set, is called before each wait for a retry, from the
	// goroutine of the request, outside any lock. It must be fast and must
	// not modify the event's Request or Response.
	OnRetry func(RetryEvent)

	// OnSDKRetry, if set, is called when a request arrives that an SDK above
	// llmhttp is already retrying: its X-Stainless-Retry-Count header is
	// greater than 0. Two retry loops on top of each other multiply their
	// attempts; set option.WithMaxRetries(0) on the SDK. Called outside any
	// lock; must be fast.
	OnSDKRetry func(req *http.Request, count int)

	// obs is the observer set by [Observer.RetryPolicy].
	obs *Observer
}

// RetryEvent describes a retry about to happen, for [RetryPolicy.OnRetry].
type RetryEvent struct {
	// Request is the caller's request. Do not modify it.
	Request *http.Request
	// Attempt is the attempt that just failed, from 1; the retry is
	// attempt Attempt+1.
	Attempt int
	// Class is what the failed attempt meant.
	Class Class
	// Status is the failed attempt's HTTP status, or 0 when it got no
	// response.
	Status int
	// Response is the failed attempt's response, its Body already drained
	// and closed; nil when Err is set.
	Response *http.Response
	// Err is the failed attempt's error; nil when it got a response.
	Err error
	// Delay is the wait before the retry.
	Delay time.Duration
	// ServerDelay reports that Delay comes from the server's hint (or an
	// open circuit's time to half-open) rather than from backoff.
	ServerDelay bool
	// SDKRetryCount is the request's X-Stainless-Retry-Count: how many times
	// an SDK above llmhttp had already retried this call. 0 when absent.
	SDKRetryCount int
}

// RetryError is the error the retry layer returns when a request ends
// without a response: the last attempt's transport error, or the request's
// context ending during a wait between attempts. It unwraps to that error,
// so errors.Is(err, context.Canceled) and errors.As work through it and
// through the [*url.Error] an [http.Client] adds.
type RetryError struct {
	// Attempts is how many attempts were sent.
	Attempts int
	// Err is the last attempt's error, or the request's context's error when
	// it ended during a wait (wrapping context.Cause too, when the context
	// was cancelled with a cause).
	Err error
}

// Error implements error.
func (e *RetryError) Error() string {
	if e.Attempts == 1 {
		return "llmhttp: after 1 attempt: " + e.Err.Error()
	}
	return fmt.Sprintf("llmhttp: after %d attempts: %v", e.Attempts, e.Err)
}

// Unwrap returns e.Err.
func (e *RetryError) Unwrap() error { return e.Err }

// errNilResponse replaces the (nil, nil) a broken RoundTripper may return.
var errNilResponse = errors.New("llmhttp: RoundTripper returned a nil response and a nil error")

// Retry returns the retry middleware: it sends a request again when an
// attempt fails in a way that a later attempt may fix.
//
// Retried are the classes [ClassRateLimited], [ClassSlowDown],
// [ClassOverloaded], [ClassServer], [ClassTimeout] and [ClassNetwork];
// a 409 Conflict at most once; any other 4xx only when the server says
// x-should-retry: true. Never retried: [ClassQuota], [ClassTooLarge],
// [ClassAuth] and [ClassClient] (unless the server says so), [ClassCanceled]
// and llmhttp's own refusals, except an open circuit, whose time to
// half-open is waited out when it fits (below). x-should-retry: false from
// the server stops retrying whatever the status. A 2xx is never retried:
// once its head is returned the body, a stream included, is the caller's.
//
// Only requests whose body can be replayed are retried: no body,
// [http.NoBody], or GetBody set (as [http.NewRequest] sets it for in-memory
// bodies and both official SDKs always do). Any other body is sent once and
// never buffered. The caller's request is never modified: each retry is a
// clone with a fresh body from GetBody.
//
// The wait before a retry is the server's hint when it gives one ([ServerDelay]:
// retry-after-ms, retry-after, the IETF RateLimit field, the exhausted
// bucket's reset), as a floor with a small upward-only jitter; otherwise an
// exponential backoff ([backoff.ExponentialBackOff], one per request) with
// jitter. A 429 with no hint at all is retried at most once: it is often a
// spend limit in disguise (llm-wire §5.2 row 12a). When the hint is above
// MaxRetryAfter, or the wait would end after the request's context deadline
// or after MaxElapsedTime, no wait starts: the response is returned at once.
// A wait ends early, with the context's error, when the request's context is
// cancelled.
//
// Every response the layer returns is the attempt's own, unaltered, with one
// exception: a non-success response that llmhttp decided not to retry, or
// could retry no longer, gets X-Should-Retry: false, so that an SDK above
// neither retries it again nor loses the provider's error body. llmhttp's own
// refusals are returned exactly as they come. Every discarded response's
// body is drained (at most 4 KiB, so the connection can be reused) and
// closed. A request that ends without a response returns a [*RetryError].
//
// The returned RoundTripper is safe for concurrent use by multiple
// goroutines and forwards CloseIdleConnections to next. Each RoundTripper
// Retry's middleware returns keeps its own per-partition budgets.
func Retry(p RetryPolicy) Middleware { return retryWith(p, nil) }

// retryWith is Retry counting into stats (which may be nil) for
// [Transport.Stats].
func retryWith(p RetryPolicy, stats *statsTable) Middleware {
	defaultPart := p.Partition == nil
	p = p.withDefaults()
	var onWait func(WaitEvent)
	var onRefusal func(RefusalEvent)
	traced := false
	if p.obs != nil {
		p.OnRetry = join2(p.OnRetry, p.obs.OnRetry)
		onWait, onRefusal, traced = p.obs.OnWait, p.obs.OnRefusal, p.obs.OnRequest != nil
	}
	return func(next http.RoundTripper) http.RoundTripper {
		return &retryTransport{p: p, next: next, budget: newBudgets(p.Budget),
			stats: stats, onWait: onWait, onRefusal: onRefusal, traced: traced, defaultPart: defaultPart}
	}
}

// withDefaults returns p with every zero field set to its default.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = defaultMaxAttempts
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = defaultInitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = defaultMaxInterval
	}
	p.InitialInterval = min(p.InitialInterval, p.MaxInterval)
	if p.Multiplier < 1 {
		p.Multiplier = defaultMultiplier
	}
	if p.MaxElapsedTime <= 0 {
		p.MaxElapsedTime = defaultMaxElapsedTime
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = defaultMaxRetryAfter
	}
	if p.Classifier == nil {
		p.Classifier = Classify
	}
	if p.Partition == nil {
		p.Partition = DefaultPartition
	}
	return p
}

// retryTransport is the RoundTripper [Retry] returns.
type retryTransport struct {
	p      RetryPolicy
	next   http.RoundTripper
	budget *budgets // nil when the budget is disabled

	// stats, onWait and onRefusal report to a Transport and its observer;
	// each is nil when there is none.
	stats     *statsTable
	onWait    func(WaitEvent)
	onRefusal func(RefusalEvent)
	traced    bool // an OnRequest hook wants the per-request tally
	// defaultPart reports that p.Partition is DefaultPartition, which is
	// the partition of the request's info.
	defaultPart bool
}

var (
	_ http.RoundTripper = (*retryTransport)(nil)
	_ closeIdler        = (*retryTransport)(nil)
	_ infoTripper       = (*retryTransport)(nil)
)

// CloseIdleConnections forwards to the next RoundTripper.
func (t *retryTransport) CloseIdleConnections() { closeIdle(t.next) }

// attemptState is what one request's retry loop remembers between attempts.
type attemptState struct {
	req        *http.Request
	info       *requestInfo
	start      time.Time
	attempt    int
	replayable bool
	sdkRetries int
	conflicts  int // 409s retried
	unhinted   int // 429s retried without a server hint
	eb         *backoff.ExponentialBackOff
	part       Partition
	hasPart    bool
	counters   *partCounters // the Transport's counters; nil without stats
	trace      *requestTrace // the Transport's per-request tally; nil when none
}

// partition returns the request's partition, computing it once.
func (t *retryTransport) partition(s *attemptState) Partition {
	if !s.hasPart {
		if t.defaultPart {
			s.part = infoFor(s.req, s.info).partition
		} else {
			s.part = t.p.Partition(s.req)
		}
		s.hasPart = true
	}
	return s.part
}

// RoundTrip implements [http.RoundTripper].
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := t.roundTripInfo(req, nil, time.Now())
	return resp, err
}

// roundTripInfo implements infoTripper.
func (t *retryTransport) roundTripInfo(req *http.Request, info *requestInfo, now time.Time) (*http.Response, time.Time, error) {
	if _, ok := t.next.(infoTripper); ok || t.stats != nil {
		// One description for every attempt, so that the layers below
		// keep one memory of the request across its attempts.
		info = infoFor(req, info)
	}
	s := attemptState{
		req:        req,
		info:       info,
		start:      now,
		replayable: req.Body == nil || req.Body == http.NoBody || req.GetBody != nil,
		sdkRetries: sdkRetryCount(req),
	}
	if s.sdkRetries > 0 && t.p.OnSDKRetry != nil {
		t.p.OnSDKRetry(req, s.sdkRetries)
	}
	if t.stats != nil {
		s.counters = t.stats.of(info)
	}
	if t.traced {
		s.trace, _ = req.Context().Value(traceKey{}).(*requestTrace)
	}
	areq := req // the first attempt sends the caller's request as it is
	for {
		s.attempt++
		resp, done, err := sendOn(t.next, areq, info, now)
		if err != nil {
			if resp != nil && resp.Body != nil {
				resp.Body.Close() // a broken RoundTripper; net/http ignores resp too
			}
			resp = nil
		} else if resp == nil {
			err = errNilResponse
		}
		class := t.p.Classifier(resp, err)
		t.account(&s, class)
		var refused *Refusal // a local reply from a layer below
		if resp != nil && resp.StatusCode/100 != 2 {
			refused, _ = refusalOf(resp)
		}
		if refused == nil && (err == nil || req.Context().Err() == nil) {
			if s.counters != nil {
				s.counters.attempt(status(resp))
			}
			if s.trace != nil {
				s.trace.attempts++
			}
		}
		if err == nil && (class == ClassOK || resp.StatusCode/100 == 2) {
			return resp, done, nil // a success, or a 2xx whose body is the caller's
		}
		delay, hinted, ok := t.decide(&s, resp, err, class)
		if !ok {
			resp, err := giveUp(&s, resp, err, class)
			return resp, done, err
		}
		body, berr := freshBody(req)
		if berr != nil {
			resp, err := giveUp(&s, resp, err, class)
			return resp, done, err
		}
		if refused != nil {
			// Refusals returned as the final answer are reported by the
			// Transport; this one is waited out.
			if s.counters != nil {
				s.counters.refusals.Add(1)
			}
			if t.onRefusal != nil {
				r := *refused
				t.onRefusal(RefusalEvent{Request: req, Partition: infoFor(req, info).partition, Refusal: &r, Retried: true})
			}
		}
		if resp != nil {
			discard(resp)
		}
		if s.counters != nil {
			s.counters.retries.Add(1)
		}
		if s.trace != nil {
			s.trace.retries++
		}
		if t.p.OnRetry != nil {
			t.p.OnRetry(RetryEvent{
				Request: req, Attempt: s.attempt, Class: class, Status: status(resp),
				Response: resp, Err: err, Delay: delay, ServerDelay: hinted,
				SDKRetryCount: s.sdkRetries,
			})
		}
		var waitStart time.Time
		if t.onWait != nil {
			waitStart = time.Now()
		}
		werr := sleep(req.Context(), delay)
		if t.onWait != nil {
			cause := WaitBackoff
			switch {
			case refused != nil:
				cause = WaitBreaker
			case hinted:
				cause = WaitRetryAfter
			}
			t.onWait(WaitEvent{Request: req, Partition: infoFor(req, info).partition, Waited: time.Since(waitStart),
				Cause: cause, Err: werr})
		}
		if werr != nil {
			if body != nil {
				body.Close()
			}
			return nil, time.Time{}, &RetryError{Attempts: s.attempt, Err: werr}
		}
		areq = req.Clone(withResend(req.Context(), s.attempt))
		if body != nil {
			areq.Body = body
		}
		now = time.Now()
	}
}

// account feeds an attempt's outcome to the partition's budget: a success
// gives tokens back, an outage-like failure takes one. Throttles, client
// errors and refusals are neither.
func (t *retryTransport) account(s *attemptState, class Class) {
	if t.budget == nil {
		return
	}
	switch class {
	case ClassOK:
		if t.budget.inDeficit() {
			t.budget.succeed(t.partition(s), time.Now())
		}
	case ClassOverloaded, ClassServer, ClassTimeout, ClassNetwork:
		t.budget.fail(t.partition(s), time.Now())
	}
}

// decide reports whether the failed attempt is retried and after what wait;
// hinted reports that the wait is the server's (or the breaker's).
func (t *retryTransport) decide(s *attemptState, resp *http.Response, err error, class Class) (delay time.Duration, hinted, ok bool) {
	ctx := s.req.Context()
	if ctx.Err() != nil || s.attempt >= t.p.MaxAttempts || !s.replayable {
		return 0, false, false
	}
	now := time.Now()
	var hint time.Duration
	switch class {
	case ClassLocal:
		// Wait out an open circuit when its time to half-open fits; return
		// every other refusal as it is.
		if resp == nil {
			return 0, false, false // a typed *Refusal error: returned as it is
		}
		r, isRefusal := refusalOf(resp)
		if !isRefusal || r.Reason != ReasonCircuitOpen {
			return 0, false, false
		}
		hint, hinted = r.RetryAfter, r.RetryAfter > 0
	case ClassRateLimited, ClassSlowDown, ClassOverloaded, ClassServer, ClassTimeout, ClassNetwork,
		ClassClient, ClassAuth:
		if resp != nil {
			if retry, set := ParseShouldRetry(resp.Header); set && !retry {
				return 0, false, false // row 10: the server says no
			}
			hint, hinted = ServerDelay(resp.Header, now)
		}
		if !t.retryable(s, resp, class, hinted) {
			return 0, false, false
		}
		// A throttle whose wait the server dictated is not a storm; every
		// other retry needs budget.
		throttle := class == ClassRateLimited || class == ClassSlowDown
		if t.budget != nil && !(throttle && hinted) && !t.budget.allows(t.partition(s), now) {
			return 0, false, false
		}
	default:
		return 0, false, false
	}
	if hinted {
		if hint > t.p.MaxRetryAfter {
			return 0, false, false
		}
		delay = t.jitterHint(hint)
	} else {
		delay = t.backoff(s)
	}
	if now.Add(delay).Sub(s.start) > t.p.MaxElapsedTime {
		return 0, false, false
	}
	if dl, has := ctx.Deadline(); has && now.Add(delay).After(dl) {
		return 0, false, false
	}
	if class == ClassClient && status(resp) == http.StatusConflict {
		s.conflicts++
	}
	if class == ClassRateLimited && !hinted {
		s.unhinted++
	}
	return delay, hinted, true
}

// retryable reports whether class may be retried at all, before waits and
// budgets are considered.
func (t *retryTransport) retryable(s *attemptState, resp *http.Response, class Class, hinted bool) bool {
	switch class {
	case ClassRateLimited:
		return hinted || s.unhinted == 0 // row 12a: a bare 429 gets one retry
	case ClassSlowDown, ClassOverloaded, ClassServer, ClassTimeout, ClassNetwork:
		return true
	case ClassClient, ClassAuth:
		if resp == nil {
			return false
		}
		if resp.StatusCode == http.StatusConflict {
			return s.conflicts == 0 // row 16: 409 at most once
		}
		retry, set := ParseShouldRetry(resp.Header)
		return set && retry // row 17: the server says yes
	}
	return false
}

// jitterHint spreads a server-given wait upwards: the hint is a floor.
func (t *retryTransport) jitterHint(d time.Duration) time.Duration {
	if t.p.Jitter != nil {
		return max(d, t.p.Jitter(d))
	}
	return d + hintJitter(d)
}

// backoff returns the next backoff wait of the request.
func (t *retryTransport) backoff(s *attemptState) time.Duration {
	if s.eb == nil {
		s.eb = &backoff.ExponentialBackOff{
			InitialInterval:     t.p.InitialInterval,
			RandomizationFactor: backoffRandomization,
			Multiplier:          t.p.Multiplier,
			MaxInterval:         t.p.MaxInterval,
			// MaxElapsedTime is applied by decide to every wait, hinted or
			// not, from the request's arrival; the ExponentialBackOff is
			// created at the first backoff, so its own clock would start
			// late.
			MaxElapsedTime: 0,
			Stop:           backoff.Stop,
			Clock:          backoff.SystemClock,
		}
		if t.p.Jitter != nil {
			s.eb.RandomizationFactor = 0
		}
		s.eb.Reset()
	}
	d := s.eb.NextBackOff()
	if t.p.Jitter != nil {
		d = t.p.Jitter(d)
	}
	return max(d, 0)
}

// giveUp returns the attempt's outcome as the request's final one: a
// response gets X-Should-Retry: false (except llmhttp's own refusals, which
// carry it already), an error becomes a *RetryError.
func giveUp(s *attemptState, resp *http.Response, err error, class Class) (*http.Response, error) {
	if err != nil {
		return nil, &RetryError{Attempts: s.attempt, Err: err}
	}
	if class != ClassLocal {
		if resp.Header == nil {
			resp.Header = make(http.Header)
		}
		resp.Header.Set("X-Should-Retry", "false")
	}
	return resp, nil
}

// freshBody returns a new copy of req's body for a retry: nil when req has
// none.
func freshBody(req *http.Request) (io.ReadCloser, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	return req.GetBody()
}

// discard drains (at most drainLimit bytes) and closes a response that will
// not be returned, so that its connection can be reused.
func discard(resp *http.Response) {
	if resp.Body == nil {
		return
	}
	io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
}

// hintJitter returns the default jitter added to a server hint d: uniform in
// [0, min(d/10, 250 ms)].
func hintJitter(d time.Duration) time.Duration {
	j := min(d/hintJitterFraction, hintJitterMax)
	if j <= 0 {
		return 0
	}
	return rand.N(j + 1)
}

// sleep waits for d or until ctx ends, whichever comes first, and returns
// ctxErr(ctx) in the second case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctxErr(ctx)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// ctxErr returns nil while ctx is live, else its error, joined with its
// cause when the cause is another error, so that errors.Is matches both
// context.Canceled (or DeadlineExceeded) and the cause.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// status returns resp's status code, or 0 for no response.
func status(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// sdkRetryCount returns req's X-Stainless-Retry-Count, or 0 when it is
// absent or malformed. The SDKs set it with Header.Set, so the key is
// looked up in its canonical form directly: Header.Get would canonicalise
// the constant on every request.
func sdkRetryCount(req *http.Request) int {
	vs := req.Header["X-Stainless-Retry-Count"]
	if len(vs) == 0 || vs[0] == "" {
		return 0
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < 0 {
		return 0
	}
	return n
}
