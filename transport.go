package llmhttp

import (
	"context"
	"net/http"
	"time"
)

// A Middleware wraps next and returns a RoundTripper that calls it. The
// middlewares in this package forward CloseIdleConnections to next.
type Middleware func(next http.RoundTripper) http.RoundTripper

// RoundTripFunc adapts an ordinary function to [http.RoundTripper].
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(req).
func (f RoundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// closeIdler is the optional interface net/http's Client uses for
// CloseIdleConnections.
type closeIdler interface{ CloseIdleConnections() }

// closeIdle calls rt.CloseIdleConnections if rt has it.
func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(closeIdler); ok {
		c.CloseIdleConnections()
	}
}

// Chain returns base wrapped by mw: mw[0] is outermost, so it sees the request
// first and the response last. If base is nil, [http.DefaultTransport] is
// used. The returned RoundTripper forwards CloseIdleConnections through every
// layer to base, also through layers that do not forward it themselves.
// Chain panics if an element of mw is nil or returns nil.
func Chain(base http.RoundTripper, mw ...Middleware) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	rt := base
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] == nil {
			panic("llmhttp: nil Middleware passed to Chain")
		}
		next := rt
		rt = mw[i](next)
		if rt == nil {
			panic("llmhttp: Middleware returned a nil RoundTripper")
		}
		if _, ok := rt.(closeIdler); !ok {
			rt = &layer{rt: rt, next: next}
		}
	}
	return rt
}

// layer gives a middleware's RoundTripper a CloseIdleConnections method that
// reaches the layer below it.
type layer struct {
	rt   http.RoundTripper
	next http.RoundTripper
}

func (l *layer) RoundTrip(req *http.Request) (*http.Response, error) { return l.rt.RoundTrip(req) }
func (l *layer) CloseIdleConnections()                               { closeIdle(l.next) }

var (
	_ http.RoundTripper = RoundTripFunc(nil)
	_ http.RoundTripper = (*layer)(nil)
	_ closeIdler        = (*layer)(nil)
)

// infoTripper is implemented by the RoundTrippers of this package's layers.
// roundTripInfo is RoundTrip for a request whose description (info, see
// requestInfo) the caller may have in hand already, sent at now (no layer
// before it waited since now was read): a layer hands both to the next one
// when that is one of this package's layers too (see sendOn), so that a
// chain of them describes a request at most once, reads the clock once per
// attempt before sending it, and attaches nothing to its context. info is
// nil when no layer needed it yet; a layer that needs it computes it with
// infoFor. RoundTrip is roundTripInfo with a nil info and the current
// time.
//
// Besides RoundTrip's results, roundTripInfo returns done: the time the
// answer came back, when a layer at or below it read the clock after the
// answer (the pacer does, to reconcile), else the zero time. A layer that
// needs that time takes done rather than reading the clock again (see
// answeredAt).
type infoTripper interface {
	roundTripInfo(req *http.Request, info *requestInfo, now time.Time) (resp *http.Response, done time.Time, err error)
}

// sendOn sends req, described by info (nil: not computed yet), at now, to
// next: by roundTripInfo when next is one of this package's layers, else
// by RoundTrip (done then zero).
func sendOn(next http.RoundTripper, req *http.Request, info *requestInfo, now time.Time) (resp *http.Response, done time.Time, err error) {
	if n, ok := next.(infoTripper); ok {
		return n.roundTripInfo(req, info, now)
	}
	resp, err = next.RoundTrip(req)
	return resp, time.Time{}, err
}

// answeredAt returns done, the time an answer came back as a layer below
// read it (see infoTripper), or the current time when none did.
func answeredAt(done time.Time) time.Time {
	if done.IsZero() {
		return time.Now()
	}
	return done
}

// infoFor returns info, or when it is nil req's own (see infoOf).
func infoFor(req *http.Request, info *requestInfo) *requestInfo {
	if info != nil {
		return info
	}
	return infoOf(req)
}

// Transport is llmhttp's full chain: Retry → Breaker → Pacer → base (with
// a budget layer in front when one is configured). It is safe for
// concurrent use by multiple goroutines and should be reused, like
// [http.Transport].
//
// A Transport counts, per partition, the requests, attempts, 429s, 5xx,
// refusals and retries it sees (see [Transport.Stats]); counting costs no
// allocation. Observers ([WithObserver], [WithLogger]) cost nothing when
// there are none.
type Transport struct {
	rt            http.RoundTripper
	base          http.RoundTripper
	breaker       *Breaker
	pacer         *Pacer
	budgets       *Budgets
	refusalErrors bool

	stats    statsTable
	obs      *Observer  // nil when none
	retryOn  bool       // a retry layer counts the attempts
	tapUsage bool       // read the usage of successful responses
	classify Classifier // for OnRequest's Class
}

// New returns base wrapped as Retry → Breaker → Pacer, each with its default
// settings unless an Option changes them, behind a budget layer when
// [WithBudgetSettings] or [WithBudgets] asks for one. Observers
// ([WithObserver], [WithLogger]) reach every layer New builds. If base is
// nil, [http.DefaultTransport] is used.
func New(base http.RoundTripper, opts ...Option) *Transport {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	obs := joinObservers(append(c.observers, LogObserver(c.logger))...)
	t := &Transport{base: base, refusalErrors: c.refusalErrors, obs: obs, retryOn: !c.noRetry,
		classify: c.retry.Classifier}
	if t.classify == nil {
		t.classify = Classify
	}
	var mw []Middleware
	switch {
	case c.budgets != nil:
		t.budgets = c.budgets
	case c.budgetSet != nil:
		s := *c.budgetSet
		if obs != nil {
			s.OnThreshold = join2(s.OnThreshold, obs.OnBudgetThreshold)
		}
		if s.Shed.Queued == nil && !c.noPacer {
			s.Shed.Queued = t.queued
		}
		t.budgets = NewBudgets(s)
	}
	if t.budgets != nil {
		mw = append(mw, t.budgets.Wrap)
	}
	if !c.noRetry {
		mw = append(mw, retryWith(obs.RetryPolicy(c.retry), &t.stats))
	}
	if !c.noBreaker {
		t.breaker = c.breaker
		if t.breaker == nil {
			t.breaker = NewBreaker(obs.BreakerSettings(c.breakerSet))
		}
		mw = append(mw, t.breaker.Wrap)
	}
	if !c.noPacer {
		t.pacer = c.pacer
		if t.pacer == nil {
			t.pacer = NewPacer(obs.PacerSettings(c.pacerSet))
		}
		mw = append(mw, t.pacer.Wrap)
	}
	if obs != nil && (obs.OnAttempt != nil || obs.OnAttemptStart != nil) {
		mw = append(mw, func(next http.RoundTripper) http.RoundTripper {
			return &attemptObserver{next: next, obs: obs, classify: t.classify}
		})
	}
	t.tapUsage = t.budgets != nil || (obs != nil && obs.OnUsage != nil)
	t.rt = Chain(base, mw...)
	return t
}

// queued returns how many requests wait in the pacer's queue for p.
func (t *Transport) queued(p Partition) int {
	if t.pacer == nil {
		return 0
	}
	st, _ := t.pacer.PartitionStats(p)
	return st.Queued
}

// requestTrace is what the retry layer tallies for a request when an
// OnRequest hook wants it.
type requestTrace struct{ attempts, retries int }

type traceKey struct{}

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := ownInfo(req, t.pacer != nil)
	pc := t.stats.of(info)
	pc.requests.Add(1)
	start := time.Now()
	var trace *requestTrace
	if t.obs != nil && t.obs.OnRequest != nil {
		trace = new(requestTrace)
		req = req.WithContext(context.WithValue(req.Context(), traceKey{}, trace))
	}

	// The layers hand info and the time along (see infoTripper).
	resp, _, err := sendOn(t.rt, req, info, start)

	var refused *Refusal
	if err == nil && resp != nil {
		if resp.StatusCode/100 != 2 {
			refused, _ = refusalOf(resp)
		}
		switch {
		case refused != nil:
			pc.refusals.Add(1)
			if t.obs != nil && t.obs.OnRefusal != nil {
				r := *refused
				t.obs.OnRefusal(RefusalEvent{Request: req, Partition: info.partition, Refusal: &r})
			}
		case !t.retryOn:
			pc.attempt(resp.StatusCode)
			if trace != nil {
				trace.attempts++
			}
		}
		if t.tapUsage && resp.StatusCode/100 == 2 {
			t.tap(req, info, pc, resp)
		}
	} else if err != nil && !t.retryOn && req.Context().Err() == nil {
		pc.attempt(0)
		if trace != nil {
			trace.attempts++
		}
	}
	if trace != nil {
		t.requestDone(req, info, start, trace, resp, err, refused)
	}

	if t.refusalErrors && refused != nil {
		resp.Body.Close()
		r := *refused
		return nil, &r
	}
	return resp, err
}

// requestDone calls OnRequest.
func (t *Transport) requestDone(req *http.Request, info *requestInfo, start time.Time, trace *requestTrace,
	resp *http.Response, err error, refused *Refusal) {
	ev := RequestEvent{
		Request: req, Partition: info.partition, Provider: info.provider,
		Start: start, Duration: time.Since(start),
		Attempts: trace.attempts, Retries: trace.retries,
		SDKRetryCount: sdkRetryCount(req), Err: err,
	}
	if err == nil && resp != nil {
		ev.Status = resp.StatusCode
	} else {
		resp = nil
	}
	if refused != nil {
		r := *refused
		ev.Refusal, ev.Class = &r, ClassLocal
	} else {
		ev.Class = t.classify(resp, err)
	}
	t.obs.OnRequest(ev)
}

// tap reads the usage of a successful response's body as the caller reads
// it, for the counters and OnUsage.
func (t *Transport) tap(req *http.Request, info *requestInfo, pc *partCounters, resp *http.Response) {
	var onUsage func(TokenUsageEvent)
	if t.obs != nil {
		onUsage = t.obs.OnUsage
	}
	TapUsage(resp, func(u Usage) {
		if u.InputTokens == 0 && u.OutputTokens == 0 && !u.HasInput && !u.HasOutput {
			return // the body reported no usage
		}
		pc.inputTokens.Add(u.InputTokens)
		pc.outputTokens.Add(u.OutputTokens)
		if onUsage != nil {
			onUsage(TokenUsageEvent{Request: req, Partition: info.partition, Usage: u})
		}
	})
}

// CloseIdleConnections closes the idle connections of the base transport.
func (t *Transport) CloseIdleConnections() { closeIdle(t.rt) }

// Breaker returns the transport's breaker, or nil when it has none.
func (t *Transport) Breaker() *Breaker { return t.breaker }

// Pacer returns the transport's pacer, or nil when it has none.
func (t *Transport) Pacer() *Pacer { return t.pacer }

// Budgets returns the transport's budget layer, or nil when it has none.
func (t *Transport) Budgets() *Budgets { return t.budgets }

var _ http.RoundTripper = (*Transport)(nil)
