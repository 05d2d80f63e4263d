package llmhttp

import (
	"net/http"
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

// Transport is llmhttp's full chain: Retry → Breaker → Pacer → base. It is
// safe for concurrent use by multiple goroutines and should be reused, like
// [http.Transport].
type Transport struct {
	rt            http.RoundTripper
	base          http.RoundTripper
	breaker       *Breaker
	pacer         *Pacer
	refusalErrors bool
}

// New returns base wrapped as Retry → Breaker → Pacer, each with its default
// settings unless an Option changes them. If base is nil,
// [http.DefaultTransport] is used.
func New(base http.RoundTripper, opts ...Option) *Transport {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	t := &Transport{base: base, refusalErrors: c.refusalErrors}
	var mw []Middleware
	if !c.noRetry {
		mw = append(mw, Retry(c.retry))
	}
	if !c.noBreaker {
		t.breaker = c.breaker
		if t.breaker == nil {
			t.breaker = NewBreaker(c.breakerSet)
		}
		mw = append(mw, t.breaker.Wrap)
	}
	if !c.noPacer {
		t.pacer = c.pacer
		if t.pacer == nil {
			t.pacer = NewPacer(c.pacerSet)
		}
		mw = append(mw, t.pacer.Wrap)
	}
	t.rt = Chain(base, mw...)
	return t
}

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := req.Context().Value(infoKey{}).(*requestInfo); !ok {
		req = withInfo(req, describe(req))
	}
	resp, err := t.rt.RoundTrip(req)
	if t.refusalErrors && err == nil {
		if r, ok := RefusalOf(resp); ok {
			resp.Body.Close()
			return nil, r
		}
	}
	return resp, err
}

// CloseIdleConnections closes the idle connections of the base transport.
func (t *Transport) CloseIdleConnections() { closeIdle(t.rt) }

// Breaker returns the transport's breaker, or nil when it has none.
func (t *Transport) Breaker() *Breaker { return t.breaker }

// Pacer returns the transport's pacer, or nil when it has none.
func (t *Transport) Pacer() *Pacer { return t.pacer }

var _ http.RoundTripper = (*Transport)(nil)
