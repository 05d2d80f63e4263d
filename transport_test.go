package llmhttp_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trOK answers 200 with a small JSON body.
func trOK(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(strings.NewReader(`{"ok":true}`)),
		Request: req,
	}, nil
}

// trIdleBase counts CloseIdleConnections calls.
type trIdleBase struct {
	http.RoundTripper
	closed atomic.Int32
}

func (b *trIdleBase) CloseIdleConnections() { b.closed.Add(1) }

// trTag is a middleware that records its name on the way in and out.
func trTag(log *[]string, name string) llmhttp.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			*log = append(*log, name+">")
			resp, err := next.RoundTrip(req)
			*log = append(*log, "<"+name)
			return resp, err
		})
	}
}

func TestChainOrder(t *testing.T) {
	var log []string
	rt := llmhttp.Chain(llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		log = append(log, "base")
		return trOK(req)
	}), trTag(&log, "a"), trTag(&log, "b"), trTag(&log, "c"))
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/", nil)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"a>", "b>", "c>", "base", "<c", "<b", "<a"}, log)
}

func TestChainNilBaseIsDefaultTransport(t *testing.T) {
	assert.Same(t, http.DefaultTransport, llmhttp.Chain(nil))
	var seen http.RoundTripper
	llmhttp.Chain(nil, func(next http.RoundTripper) http.RoundTripper { seen = next; return next })
	assert.Same(t, http.DefaultTransport, seen)
}

func TestChainForwardsCloseIdleConnections(t *testing.T) {
	base := &trIdleBase{RoundTripper: llmhttp.RoundTripFunc(trOK)}
	var log []string
	// Layers built from RoundTripFunc have no CloseIdleConnections of their
	// own; Chain must still reach the base, exactly once.
	rt := llmhttp.Chain(base, trTag(&log, "a"), trTag(&log, "b"))
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	assert.EqualValues(t, 1, base.closed.Load())
}

// trForwarder is a layer with its own CloseIdleConnections that forwards.
type trForwarder struct {
	next  http.RoundTripper
	calls *atomic.Int32
}

func (f *trForwarder) RoundTrip(r *http.Request) (*http.Response, error) { return f.next.RoundTrip(r) }
func (f *trForwarder) CloseIdleConnections() {
	f.calls.Add(1)
	if c, ok := f.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func TestChainUsesALayersOwnCloseIdleConnections(t *testing.T) {
	base := &trIdleBase{RoundTripper: llmhttp.RoundTripFunc(trOK)}
	var calls atomic.Int32
	var log []string
	fwd := func(next http.RoundTripper) http.RoundTripper { return &trForwarder{next: next, calls: &calls} }
	rt := llmhttp.Chain(base, trTag(&log, "outer"), fwd, trTag(&log, "inner"))
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	assert.EqualValues(t, 1, calls.Load(), "the forwarding layer is called once")
	assert.EqualValues(t, 1, base.closed.Load(), "the base is reached once, not twice")
}

func TestChainPanicsOnNilMiddleware(t *testing.T) {
	assert.PanicsWithValue(t, "llmhttp: nil Middleware passed to Chain", func() {
		llmhttp.Chain(llmhttp.RoundTripFunc(trOK), nil)
	})
	assert.Panics(t, func() {
		llmhttp.Chain(llmhttp.RoundTripFunc(trOK), func(http.RoundTripper) http.RoundTripper { return nil })
	})
}

func TestNewForwardsCloseIdleConnections(t *testing.T) {
	base := &trIdleBase{RoundTripper: llmhttp.RoundTripFunc(trOK)}
	tr := llmhttp.New(base)
	tr.CloseIdleConnections()
	assert.EqualValues(t, 1, base.closed.Load())

	// Through an http.Client too.
	(&http.Client{Transport: llmhttp.New(base)}).CloseIdleConnections()
	assert.EqualValues(t, 2, base.closed.Load())
}

func TestNewWithoutLayersIsTheBase(t *testing.T) {
	var calls atomic.Int32
	base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		calls.Add(1)
		return trOK(req)
	})
	tr := llmhttp.New(base, llmhttp.WithoutRetry(), llmhttp.WithoutBreaker(), llmhttp.WithoutPacing())
	assert.Nil(t, tr.Breaker())
	assert.Nil(t, tr.Pacer())
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.test/v1/messages", strings.NewReader(`{"model":"m"}`))
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.EqualValues(t, 1, calls.Load())
}

func TestNewSharesGivenBreakerAndPacer(t *testing.T) {
	b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
	p := llmhttp.NewPacer(llmhttp.PacerSettings{})
	tr1 := llmhttp.New(llmhttp.RoundTripFunc(trOK), llmhttp.WithBreaker(b), llmhttp.WithPacer(p))
	tr2 := llmhttp.New(llmhttp.RoundTripFunc(trOK), llmhttp.WithBreaker(b), llmhttp.WithPacer(p))
	assert.Same(t, b, tr1.Breaker())
	assert.Same(t, tr1.Breaker(), tr2.Breaker())
	assert.Same(t, tr1.Pacer(), tr2.Pacer())
	assert.NotSame(t, llmhttp.New(nil).Pacer(), llmhttp.New(nil).Pacer(), "each New has its own pacer by default")
}

// TestRefusalErrorsMode checks that WithRefusalErrors turns a local reply
// into a *Refusal error that errors.Is/As see through *url.Error.
func TestRefusalErrorsMode(t *testing.T) {
	refuse := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		r := &llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen, Message: "test"}
		return r.Response(req), nil
	})
	c := &http.Client{Transport: llmhttp.New(refuse, llmhttp.WithoutRetry(), llmhttp.WithoutBreaker(),
		llmhttp.WithoutPacing(), llmhttp.WithRefusalErrors())}
	resp, err := c.Post("https://api.anthropic.com/v1/messages", "application/json", strings.NewReader(`{"model":"m"}`))
	require.Error(t, err)
	assert.Nil(t, resp)
	var ue *url.Error
	require.True(t, errors.As(err, &ue))
	assert.ErrorIs(t, err, llmhttp.ErrCircuitOpen)
	var r *llmhttp.Refusal
	require.ErrorAs(t, err, &r)
	assert.Equal(t, llmhttp.ReasonCircuitOpen, r.Reason)

	// Without the option the caller gets the local reply.
	c.Transport = llmhttp.New(refuse, llmhttp.WithoutRetry(), llmhttp.WithoutBreaker(), llmhttp.WithoutPacing())
	resp, err = c.Post("https://api.anthropic.com/v1/messages", "application/json", strings.NewReader(`{"model":"m"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
}

// TestTransportDoesNotMutateRequest checks the RoundTripper contract.
func TestTransportDoesNotMutateRequest(t *testing.T) {
	tr := llmhttp.New(llmhttp.RoundTripFunc(trOK), llmhttp.WithoutRetry(), llmhttp.WithoutBreaker(), llmhttp.WithoutPacing())
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.test/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	req.Header.Set("Authorization", "Bearer k")
	ctx := req.Context()
	before := req.Header.Clone()
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, before, req.Header)
	assert.Equal(t, ctx, req.Context())
}

// TestTransportAllocations pins what the full chain allocates on the happy
// path beyond a bare transport: the request's info (with its first
// flight and the gobreaker call, none) and GetBody's reader (two). The
// budget of BenchmarkPacerOverhead is 20; this keeps it at 3.
func TestTransportAllocations(t *testing.T) {
	body := llmhttptest.ChatBody(1 << 10)
	bare := llmhttptest.OKTransport()
	full := llmhttp.New(llmhttptest.OKTransport())
	send := func(rt http.RoundTripper) func() {
		return func() {
			if err := llmhttptest.SendChat(rt, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(full)() // the partition's state is made once
	added := testing.AllocsPerRun(200, send(full)) - testing.AllocsPerRun(200, send(bare))
	limit := 3.0
	if raceEnabled {
		limit++ // the pools' random misses
	}
	assert.LessOrEqual(t, added, limit, "allocations the chain adds per request")
	assert.Greater(t, added, 0.0)
}
