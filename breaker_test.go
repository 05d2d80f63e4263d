package llmhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Anthropic-shaped error bodies.
const (
	bkOverloaded = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
	bkRateLimit  = `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`
	bkAPIError   = `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`
	bkInvalid    = `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}`
	bkAuth       = `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`
	bkBilling    = `{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low"}}`
	bkTooLarge   = `{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}`
	bkOK         = `{"id":"msg_01","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"model":"claude-x","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}`
)

// bkResp builds a response to req with status, body and header pairs.
func bkResp(req *http.Request, status int, body string, kv ...string) *http.Response {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		Request: req,
	}
}

// bkBase is an in-memory base transport that answers with reply and counts
// the calls per key ("host|model").
type bkBase struct {
	mu    sync.Mutex
	calls map[string]int
	reply func(req *http.Request) (*http.Response, error)
}

func newBKBase(reply func(req *http.Request) (*http.Response, error)) *bkBase {
	return &bkBase{calls: map[string]int{}, reply: reply}
}

func (b *bkBase) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	b.mu.Lock()
	b.calls[llmhttp.BreakerKey(req)]++
	reply := b.reply
	b.mu.Unlock()
	return reply(req)
}

func (b *bkBase) set(reply func(req *http.Request) (*http.Response, error)) {
	b.mu.Lock()
	b.reply = reply
	b.mu.Unlock()
}

func (b *bkBase) n(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[key]
}

func (b *bkBase) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls {
		n += c
	}
	return n
}

// bkStatus returns a reply function answering status with body and headers.
func bkStatus(status int, body string, kv ...string) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) { return bkResp(req, status, body, kv...), nil }
}

const (
	bkHost  = "https://api.anthropic.com"
	bkModel = "claude-x"
	bkKey   = bkHost + "|" + bkModel
)

// bkReq is an Anthropic Messages request to host for model.
func bkReq(ctx context.Context, host, model string) *http.Request {
	return anthropicReq(ctx, host, "sk-ant-secret",
		`{"model":"`+model+`","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`)
}

// anthropicReq is an Anthropic Messages request to host with key and body.
func anthropicReq(ctx context.Context, host, key, body string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, host+"/v1/messages", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	return req
}

// bkDo sends one request for (host, model) through rt and returns its status
// and headers, with the body read and closed.
func bkDo(t *testing.T, rt http.RoundTripper, host, model string) (int, http.Header) {
	t.Helper()
	resp, err := rt.RoundTrip(bkReq(t.Context(), host, model))
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// bkTrip sends n requests that the base answers with 529.
func bkTrip(t *testing.T, rt http.RoundTripper, base *bkBase, n int) {
	t.Helper()
	base.set(bkStatus(529, bkOverloaded))
	for range n {
		status, h := bkDo(t, rt, bkHost, bkModel)
		require.Equal(t, 529, status)
		require.Empty(t, h.Get("Llmhttp-Refusal"))
	}
}

// bkRefused asserts a circuit-open local reply and returns its Retry-After.
func bkRefused(t *testing.T, rt http.RoundTripper, host, model string) time.Duration {
	t.Helper()
	resp, err := rt.RoundTrip(bkReq(t.Context(), host, model))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "circuit-open", resp.Header.Get("Llmhttp-Refusal"))
	assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), `"type":"error"`, "Anthropic-shaped body")
	r, ok := llmhttp.RefusalOf(resp)
	require.True(t, ok)
	assert.Equal(t, llmhttp.ReasonCircuitOpen, r.Reason)
	assert.NotContains(t, r.Message, "sk-ant-secret")
	assert.NotContains(t, string(body), "sk-ant-secret")
	return r.RetryAfter
}

type bkHook struct {
	mu  sync.Mutex
	log []string
}

func (h *bkHook) record(key string, from, to llmhttp.State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, key+" "+from.String()+"→"+to.String())
}

func (h *bkHook) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

func TestStateString(t *testing.T) {
	assert.Equal(t, "closed", llmhttp.StateClosed.String())
	assert.Equal(t, "half-open", llmhttp.StateHalfOpen.String())
	assert.Equal(t, "open", llmhttp.StateOpen.String())
	assert.Equal(t, "unknown", llmhttp.State(42).String())
}

func TestBreakerKey(t *testing.T) {
	req := bkReq(context.Background(), bkHost, "claude-sonnet-4-5")
	assert.Equal(t, "https://api.anthropic.com|claude-sonnet-4-5", llmhttp.BreakerKey(req))
	assert.NotContains(t, llmhttp.BreakerKey(req), "secret")
	get, _ := http.NewRequest(http.MethodGet, "http://localhost:8080/v1/models", nil)
	assert.Equal(t, "http://localhost:8080|", llmhttp.BreakerKey(get))
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hook bkHook
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{OnStateChange: hook.record})
		base := newBKBase(bkStatus(529, bkOverloaded))
		rt := b.Wrap(base)

		// A long healthy history does not delay the trip.
		base.set(bkStatus(200, bkOK))
		for range 100 {
			bkDo(t, rt, bkHost, bkModel)
		}
		bkTrip(t, rt, base, 9)
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey), "9 failures in a row are not enough")
		assert.Equal(t, llmhttp.BreakerCounts{Requests: 109, Successes: 100, Failures: 9, ConsecutiveFailures: 9}, b.Counts(bkKey))
		bkTrip(t, rt, base, 1)
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
		assert.Equal(t, []string{bkKey + " closed→open"}, hook.get())

		start := time.Now()
		for range 100 {
			assert.Equal(t, 30*time.Second, bkRefused(t, rt, bkHost, bkModel))
		}
		assert.Equal(t, 110, base.n(bkKey), "an open circuit never calls the base")
		assert.Zero(t, time.Since(start), "an open circuit answers without waiting")
	})
}

func TestBreakerTripPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        llmhttp.BreakerSettings
		pattern  string // s = 200, f = 500, r = 429
		wantOpen bool
	}{
		{"below ratio", llmhttp.BreakerSettings{}, strings.Repeat("ssf", 30), false},
		{"at ratio", llmhttp.BreakerSettings{}, strings.Repeat("sf", 10), true},
		{"above ratio", llmhttp.BreakerSettings{}, strings.Repeat("ffs", 7), true},
		{"below MinRequests", llmhttp.BreakerSettings{}, strings.Repeat("fffffffffs", 2), false},
		{"ratio once MinRequests", llmhttp.BreakerSettings{}, strings.Repeat("fffffffffs", 2) + "f", true},
		{"throttles do not break a run", llmhttp.BreakerSettings{}, "fffff" + strings.Repeat("r", 16) + "fffff", true},
		{"throttles do not count", llmhttp.BreakerSettings{}, strings.Repeat("r", 200), false},
		{"a few failures", llmhttp.BreakerSettings{}, "fffffffff", false},
		{"shorter run", llmhttp.BreakerSettings{ConsecutiveFailures: 3}, "sfff", true},
		{"run rule off", llmhttp.BreakerSettings{ConsecutiveFailures: -1}, strings.Repeat("f", 19), false},
		{"run rule off, ratio on", llmhttp.BreakerSettings{ConsecutiveFailures: -1}, strings.Repeat("f", 20), true},
		{"custom ratio", llmhttp.BreakerSettings{FailureRatio: 0.3, MinRequests: 10}, strings.Repeat("ssf", 4), true},
		{"out-of-range ratio means 0.5", llmhttp.BreakerSettings{FailureRatio: 1.5}, strings.Repeat("ssf", 30), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := llmhttp.NewBreaker(tc.s)
				base := newBKBase(nil)
				rt := b.Wrap(base)
				for _, c := range tc.pattern {
					switch c {
					case 's':
						base.set(bkStatus(200, bkOK))
					case 'f':
						base.set(bkStatus(500, bkAPIError))
					case 'r':
						base.set(bkStatus(429, bkRateLimit, "Retry-After", "5"))
					}
					bkDo(t, rt, bkHost, bkModel)
				}
				assert.Equal(t, tc.wantOpen, b.State(bkKey) == llmhttp.StateOpen, "counts %+v", b.Counts(bkKey))
			})
		})
	}
}

func TestBreakerWindowForgetsOldFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{Window: time.Minute})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 9)
		time.Sleep(61 * time.Second)
		bkTrip(t, rt, base, 1)
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
		assert.Equal(t, 1, b.Counts(bkKey).Failures)
		bkTrip(t, rt, base, 9)
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
	})
}

func TestBreakerNeverOpensOnThrottlesOrCallerErrors(t *testing.T) {
	cases := map[string]func(*http.Request) (*http.Response, error){
		"429 rate limit":   bkStatus(429, bkRateLimit, "Retry-After", "30"),
		"429 no hint":      bkStatus(429, bkRateLimit),
		"slow_down":        bkStatus(429, `{"error":{"message":"slow down","type":"requests","code":"slow_down"}}`),
		"quota 429":        bkStatus(429, `{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}`),
		"billing 402":      bkStatus(402, bkBilling),
		"auth 401":         bkStatus(401, bkAuth),
		"client 400":       bkStatus(400, bkInvalid),
		"too large 413":    bkStatus(413, bkTooLarge),
		"canceled by base": func(*http.Request) (*http.Response, error) { return nil, context.Canceled },
	}
	for name, reply := range cases {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
				base := newBKBase(reply)
				rt := b.Wrap(base)
				for range 500 {
					resp, err := rt.RoundTrip(bkReq(t.Context(), bkHost, bkModel))
					if err == nil {
						resp.Body.Close()
					}
				}
				assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
				c := b.Counts(bkKey)
				assert.Equal(t, 500, c.Ignored)
				assert.Zero(t, c.Failures)
				assert.Equal(t, 500, base.n(bkKey))
			})
		})
	}
}

func TestBreakerIgnoresTheCallersCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		ctx, cancel := context.WithCancel(t.Context())
		base := newBKBase(func(req *http.Request) (*http.Response, error) {
			cancel()
			return nil, errors.New("read tcp: use of closed network connection")
		})
		rt := b.Wrap(base)
		for range 50 {
			_, err := rt.RoundTrip(bkReq(ctx, bkHost, bkModel))
			require.Error(t, err)
		}
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
		assert.Equal(t, 50, b.Counts(bkKey).Ignored)
	})
}

func TestBreakerCountsNetworkErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		netErr := errors.New("dial tcp: connection refused")
		base := newBKBase(func(*http.Request) (*http.Response, error) { return nil, netErr })
		rt := b.Wrap(base)
		for range 10 {
			_, err := rt.RoundTrip(bkReq(t.Context(), bkHost, bkModel))
			require.ErrorIs(t, err, netErr)
		}
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
	})
}

func TestBreakerNeverCountsInnerRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Even a classifier that calls everything a failure: a reply the
		// inner layer made up itself never reached the server.
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{
			Classifier: func(*http.Response, error) llmhttp.Class { return llmhttp.ClassOverloaded },
		})
		inner := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			req.Body.Close()
			r := &llmhttp.Refusal{Reason: llmhttp.ReasonWaitTooLong, RetryAfter: time.Minute}
			return r.Response(req), nil
		})
		innerErr := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			req.Body.Close()
			return nil, &llmhttp.Refusal{Reason: llmhttp.ReasonShed}
		})
		for range 20 {
			resp, err := b.Wrap(inner).RoundTrip(bkReq(t.Context(), bkHost, bkModel))
			require.NoError(t, err)
			resp.Body.Close()
			_, err = b.Wrap(innerErr).RoundTrip(bkReq(t.Context(), bkHost, bkModel))
			require.ErrorIs(t, err, llmhttp.ErrShed)
		}
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
		assert.Equal(t, 40, b.Counts(bkKey).Ignored)
	})
}

func TestBreakerHalfOpenClosesOnGoodProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hook bkHook
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{OnStateChange: hook.record})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		d := bkRefused(t, rt, bkHost, bkModel)

		time.Sleep(d - time.Millisecond)
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
		bkRefused(t, rt, bkHost, bkModel)
		time.Sleep(time.Millisecond)
		assert.Equal(t, llmhttp.StateHalfOpen, b.State(bkKey), "half-open exactly when Retry-After said")

		base.set(bkStatus(200, bkOK))
		status, _ := bkDo(t, rt, bkHost, bkModel)
		assert.Equal(t, 200, status)
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
		assert.Equal(t, 11, base.n(bkKey))
		assert.Equal(t, []string{
			bkKey + " closed→open",
			bkKey + " open→half-open",
			bkKey + " half-open→closed",
		}, hook.get())
		// Closed again: counting starts afresh.
		assert.Equal(t, llmhttp.BreakerCounts{}, b.Counts(bkKey))
	})
}

func TestBreakerHalfOpenReopensOnBadProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hook bkHook
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{OnStateChange: hook.record, OpenDuration: 10 * time.Second})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		time.Sleep(bkRefused(t, rt, bkHost, bkModel))

		base.set(bkStatus(503, bkAPIError))
		status, h := bkDo(t, rt, bkHost, bkModel)
		assert.Equal(t, 503, status)
		assert.Empty(t, h.Get("Llmhttp-Refusal"), "the probe's own answer goes back as it came")
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
		d := bkRefused(t, rt, bkHost, bkModel)
		assert.Equal(t, 10*time.Second, d, "a fresh open period")
		assert.Equal(t, 11, base.n(bkKey))
		assert.Equal(t, []string{
			bkKey + " closed→open",
			bkKey + " open→half-open",
			bkKey + " half-open→open",
		}, hook.get())
	})
}

func TestBreakerHalfOpenProbesNeedConsecutiveSuccesses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{HalfOpenProbes: 3})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		time.Sleep(bkRefused(t, rt, bkHost, bkModel))
		base.set(bkStatus(200, bkOK))
		bkDo(t, rt, bkHost, bkModel)
		bkDo(t, rt, bkHost, bkModel)
		assert.Equal(t, llmhttp.StateHalfOpen, b.State(bkKey))
		bkDo(t, rt, bkHost, bkModel)
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
	})
}

// bkGate is a base whose calls block until released, each with its own reply.
type bkGate struct {
	calls   atomic.Int32
	release chan func(*http.Request) (*http.Response, error)
}

func (g *bkGate) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Body.Close()
	g.calls.Add(1)
	select {
	case reply := <-g.release:
		return reply(req)
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
}

func TestBreakerHalfOpenWaitersFollowTheProbe(t *testing.T) {
	for _, tc := range []struct {
		name    string
		probe   func(*http.Request) (*http.Response, error)
		waiters string // what the waiting requests get
	}{
		{"good probe lets them through", bkStatus(200, bkOK), "sent"},
		{"bad probe refuses them", bkStatus(529, bkOverloaded), "refused"},
		{"ignored probe frees the slot", bkStatus(429, bkRateLimit), "sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
				base := newBKBase(nil)
				bkTrip(t, b.Wrap(base), base, 10)
				time.Sleep(30 * time.Second)

				gate := &bkGate{release: make(chan func(*http.Request) (*http.Response, error))}
				rt := b.Wrap(gate)
				var wg sync.WaitGroup
				results := make(chan string, 5)
				for range 5 {
					wg.Go(func() {
						resp, err := rt.RoundTrip(bkReq(t.Context(), bkHost, bkModel))
						if !assert.NoError(t, err) {
							return
						}
						resp.Body.Close()
						if resp.Header.Get("Llmhttp-Refusal") != "" {
							results <- "refused"
						} else {
							results <- strconv.Itoa(resp.StatusCode)
						}
					})
				}
				synctest.Wait()
				assert.EqualValues(t, 1, gate.calls.Load(), "one probe, four waiting")
				assert.Equal(t, llmhttp.StateHalfOpen, b.State(bkKey))

				gate.release <- tc.probe
				if tc.waiters == "sent" {
					for range 4 {
						gate.release <- bkStatus(200, bkOK)
					}
				}
				wg.Wait()
				close(results)
				var got []string
				for r := range results {
					got = append(got, r)
				}
				switch tc.waiters {
				case "sent":
					assert.EqualValues(t, 5, gate.calls.Load())
					assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
				case "refused":
					assert.EqualValues(t, 1, gate.calls.Load())
					assert.ElementsMatch(t, []string{"529", "refused", "refused", "refused", "refused"}, got)
				}
			})
		})
	}
}

// bkBody counts Close calls.
type bkBody struct {
	io.Reader
	closes atomic.Int32
}

func (b *bkBody) Close() error { b.closes.Add(1); return nil }

func TestBreakerWaiterReturnsWhenItsContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		base := newBKBase(nil)
		bkTrip(t, b.Wrap(base), base, 10)
		time.Sleep(30 * time.Second)
		gate := &bkGate{release: make(chan func(*http.Request) (*http.Response, error))}
		rt := b.Wrap(gate)
		probeDone := make(chan struct{})
		go func() {
			defer close(probeDone)
			resp, err := rt.RoundTrip(bkReq(t.Context(), bkHost, bkModel))
			if assert.NoError(t, err) {
				resp.Body.Close()
			}
		}()
		synctest.Wait()

		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req := bkReq(ctx, bkHost, bkModel)
		body := &bkBody{Reader: strings.NewReader(`{"model":"claude-x"}`)}
		req.Body = body
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		assert.Nil(t, resp)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 5*time.Second, time.Since(start))
		assert.EqualValues(t, 1, body.closes.Load())
		assert.EqualValues(t, 1, gate.calls.Load())

		gate.release <- bkStatus(200, bkOK)
		<-probeDone
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
	})
}

func TestBreakerProbeWaitEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		refused bool
	}{
		{"good probe", 200, bkOK, false},
		{"bad probe", 529, bkOverloaded, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var waits []llmhttp.WaitEvent
				base := newBKBase(nil)
				rt := llmhttp.New(base, llmhttp.WithoutRetry(), llmhttp.WithoutPacing(),
					llmhttp.WithObserver(&llmhttp.Observer{OnWait: func(e llmhttp.WaitEvent) {
						mu.Lock()
						waits = append(waits, e)
						mu.Unlock()
					}}))
				bkTrip(t, rt, base, 10)
				time.Sleep(30 * time.Second)

				// The probe takes 3 s; the requests let through after it,
				// 10 s each: their waits end when they are let through.
				var calls atomic.Int32
				base.set(func(req *http.Request) (*http.Response, error) {
					if calls.Add(1) == 1 {
						time.Sleep(3 * time.Second)
						return bkResp(req, tc.status, tc.body), nil
					}
					time.Sleep(10 * time.Second)
					return bkResp(req, 200, bkOK), nil
				})
				var wg sync.WaitGroup
				for range 5 {
					wg.Go(func() { bkDo(t, rt, bkHost, bkModel) })
				}
				wg.Wait()

				mu.Lock()
				defer mu.Unlock()
				require.Len(t, waits, 4, "four requests waited for the probe")
				for _, e := range waits {
					assert.Equal(t, llmhttp.WaitBreaker, e.Cause)
					assert.Equal(t, 3*time.Second, e.Waited, "until the probe's outcome, not the request's own answer")
					assert.Equal(t, bkModel, e.Partition.Model)
					assert.NoError(t, e.Err)
					if tc.refused {
						if assert.NotNil(t, e.Refusal) {
							assert.Equal(t, llmhttp.ReasonCircuitOpen, e.Refusal.Reason)
						}
					} else {
						assert.Nil(t, e.Refusal)
					}
				}
				if tc.refused {
					assert.EqualValues(t, 1, calls.Load())
				} else {
					assert.EqualValues(t, 5, calls.Load())
				}
			})
		})
	}
}

func TestBreakerHonoursALongerServerHint(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   []string
		want time.Duration
	}{
		{"no hint", nil, 30 * time.Second},
		{"shorter hint", []string{"Retry-After", "5"}, 30 * time.Second},
		{"longer hint", []string{"Retry-After", "120"}, 120 * time.Second},
		{"retry-after-ms", []string{"Retry-After-Ms", "90500"}, 90500 * time.Millisecond},
		{"hint over the cap", []string{"Retry-After", "86400"}, 5 * time.Minute},
		{"malformed hint", []string{"Retry-After", "-7"}, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var hook bkHook
				b := llmhttp.NewBreaker(llmhttp.BreakerSettings{OnStateChange: hook.record})
				base := newBKBase(nil)
				rt := b.Wrap(base)
				bkTrip(t, rt, base, 9)
				// Only the failure that trips the circuit sets its open period.
				base.set(bkStatus(503, bkOverloaded, tc.kv...))
				bkDo(t, rt, bkHost, bkModel)
				d := bkRefused(t, rt, bkHost, bkModel)
				assert.Equal(t, tc.want, d)

				time.Sleep(tc.want - time.Nanosecond)
				assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
				bkRefused(t, rt, bkHost, bkModel)
				time.Sleep(time.Nanosecond)
				assert.Equal(t, llmhttp.StateHalfOpen, b.State(bkKey))
				assert.Equal(t, []string{bkKey + " closed→open", bkKey + " open→half-open"}, hook.get())
				assert.Equal(t, 10, base.n(bkKey))
			})
		})
	}
}

func TestBreakerIsolatesHostsAndModels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		bkRefused(t, rt, bkHost, bkModel)

		base.set(bkStatus(200, bkOK))
		const otherHost = "https://gateway.example.test"
		for _, k := range [][2]string{{bkHost, "claude-y"}, {otherHost, bkModel}, {otherHost, "claude-y"}} {
			status, _ := bkDo(t, rt, k[0], k[1])
			assert.Equal(t, 200, status, k)
			assert.Equal(t, llmhttp.StateClosed, b.State(k[0]+"|"+k[1]))
			assert.Equal(t, 1, base.n(k[0]+"|"+k[1]))
		}
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
		assert.Equal(t, llmhttp.StateClosed, b.State("never seen"))
		assert.Equal(t, llmhttp.BreakerCounts{}, b.Counts("never seen"))
	})
}

func TestBreakerCustomKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{
			Key: func(req *http.Request) string { return req.URL.Host }, // one circuit per host
		})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		assert.Equal(t, llmhttp.StateOpen, b.State("api.anthropic.com"))
		bkRefused(t, rt, bkHost, "claude-y")
	})
}

func TestBreakerReadyToTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{
			ReadyToTrip: func(c llmhttp.BreakerCounts) bool { return c.ConsecutiveFailures >= 3 },
		})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 2)
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
		bkTrip(t, rt, base, 1)
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
	})
}

func TestBreakerHookOutsideLocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			b       *llmhttp.Breaker
			mu      sync.Mutex
			seen    []string
			active  atomic.Int32
			overlap atomic.Bool
		)
		b = llmhttp.NewBreaker(llmhttp.BreakerSettings{
			OpenDuration: time.Second,
			OnStateChange: func(key string, from, to llmhttp.State) {
				if active.Add(1) > 1 {
					overlap.Store(true)
				}
				defer active.Add(-1)
				// Calling back into the breaker from the hook must not
				// deadlock: it runs outside every lock.
				st := b.State(key)
				_ = b.Counts(key)
				mu.Lock()
				seen = append(seen, from.String()+"→"+to.String()+" (now "+st.String()+")")
				mu.Unlock()
			},
		})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		time.Sleep(2 * time.Second)
		base.set(bkStatus(200, bkOK))
		bkDo(t, rt, bkHost, bkModel)
		assert.Equal(t, []string{
			"closed→open (now open)",
			"open→half-open (now half-open)",
			"half-open→closed (now closed)",
		}, seen)
		assert.False(t, overlap.Load())
	})
}

func TestBreakerHookOrderUnderConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu      sync.Mutex
			log     []llmhttp.State // the "to" of each change, in delivery order
			active  atomic.Int32
			overlap atomic.Bool
		)
		var b *llmhttp.Breaker
		b = llmhttp.NewBreaker(llmhttp.BreakerSettings{
			OpenDuration: time.Second,
			OnStateChange: func(key string, from, to llmhttp.State) {
				if active.Add(1) > 1 {
					overlap.Store(true)
				}
				defer active.Add(-1)
				b.State(key)
				for range 50 { // widen the window for an overlapping call
					runtime.Gosched()
				}
				mu.Lock()
				if n := len(log); n > 0 && log[n-1] != from {
					overlap.Store(true) // out of order
				}
				log = append(log, to)
				mu.Unlock()
			},
		})
		// The endpoint fails for 3 s of every 6 s: the circuit opens, probes
		// fail, probes succeed, many times over, with 8 goroutines racing.
		start := time.Now()
		base := newBKBase(func(req *http.Request) (*http.Response, error) {
			if time.Since(start)/(3*time.Second)%2 == 0 {
				return bkResp(req, 529, bkOverloaded), nil
			}
			return bkResp(req, 200, bkOK), nil
		})
		rt := b.Wrap(base)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 300 {
					resp, err := rt.RoundTrip(bkReq(t.Context(), bkHost, bkModel))
					if err == nil {
						resp.Body.Close()
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		assert.False(t, overlap.Load(), "hook calls overlapped or came out of order")
		mu.Lock()
		assert.GreaterOrEqual(t, len(log), 15, "five cycles of closed→open→half-open→closed at least")
		mu.Unlock()
	})
}

func TestBreakerRefusalClosesBodyOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)

		req := bkReq(t.Context(), bkHost, bkModel) // GetBody gives the key
		body := &bkBody{Reader: strings.NewReader("{}")}
		req.Body = body
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "circuit-open", resp.Header.Get("Llmhttp-Refusal"))
		assert.EqualValues(t, 1, body.closes.Load())
		assert.Same(t, req, resp.Request)
	})
}

func TestBreakerRecordsStreamsAtTheHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		pr, pw := io.Pipe()
		base := newBKBase(func(req *http.Request) (*http.Response, error) {
			resp := bkResp(req, 200, "")
			resp.Header.Set("Content-Type", "text/event-stream")
			resp.Body = pr
			return resp, nil
		})
		resp, err := b.Wrap(base).RoundTrip(bkReq(t.Context(), bkHost, bkModel))
		require.NoError(t, err)
		// The stream has not produced a byte, and the success is counted.
		assert.Equal(t, 1, b.Counts(bkKey).Successes)
		pw.CloseWithError(io.ErrUnexpectedEOF)
		_, err = io.ReadAll(resp.Body)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		resp.Body.Close()
		assert.Equal(t, llmhttp.BreakerCounts{Requests: 1, Successes: 1, ConsecutiveSuccesses: 1}, b.Counts(bkKey))
	})
}

func TestBreakerReleasesTheProbeWhenTheBasePanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		time.Sleep(30 * time.Second)
		base.set(func(*http.Request) (*http.Response, error) { panic("boom") })
		assert.PanicsWithValue(t, "boom", func() { rt.RoundTrip(bkReq(t.Context(), bkHost, bkModel)) })
		base.set(bkStatus(200, bkOK))
		status, _ := bkDo(t, rt, bkHost, bkModel)
		assert.Equal(t, 200, status, "the panicking probe's slot was released")
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
	})
}

func TestBreakerForgetsClosedCircuitsBeyondMaxCircuits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{MaxCircuits: 4})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10) // bkKey is open and must be kept
		base.set(bkStatus(500, bkAPIError))
		bkDo(t, rt, bkHost, "first")
		assert.Equal(t, 1, b.Counts(bkHost+"|first").Failures)
		base.set(bkStatus(200, bkOK))
		for i := range 100 {
			bkDo(t, rt, bkHost, "m"+strconv.Itoa(i))
		}
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey))
		bkRefused(t, rt, bkHost, bkModel)
		assert.Equal(t, llmhttp.BreakerCounts{}, b.Counts(bkHost+"|first"), "a closed circuit was forgotten")
		assert.Equal(t, 1, b.Counts(bkHost+"|m99").Successes)
	})
}

// A partition whose circuit was forgotten gets a new circuit, which counts
// its requests, not the one its earlier requests used.
func TestBreakerForgottenCircuitIsReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{MaxCircuits: 2})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		base.set(bkStatus(500, bkAPIError))
		bkDo(t, rt, bkHost, "first")
		assert.Equal(t, 1, b.Counts(bkHost+"|first").Failures)
		base.set(bkStatus(200, bkOK))
		for _, m := range []string{"second", "third", "fourth"} {
			bkDo(t, rt, bkHost, m)
		}
		require.Equal(t, llmhttp.BreakerCounts{}, b.Counts(bkHost+"|first"), "forgotten")
		base.set(bkStatus(500, bkAPIError))
		bkDo(t, rt, bkHost, "first")
		assert.Equal(t, 1, b.Counts(bkHost+"|first").Failures)
	})
}

func TestBreakerForwardsCloseIdleConnections(t *testing.T) {
	base := &trIdleBase{RoundTripper: llmhttp.RoundTripFunc(trOK)}
	rt := llmhttp.NewBreaker(llmhttp.BreakerSettings{}).Wrap(base)
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	assert.EqualValues(t, 1, base.closed.Load())
}

func TestBreakerTypedErrorThroughClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		base := newBKBase(nil)
		bkTrip(t, b.Wrap(base), base, 10)
		c := &http.Client{Transport: llmhttp.New(base,
			llmhttp.WithBreaker(b), llmhttp.WithoutRetry(), llmhttp.WithoutPacing(), llmhttp.WithRefusalErrors())}
		resp, err := c.Do(bkReq(t.Context(), bkHost, bkModel))
		assert.Nil(t, resp)
		require.ErrorIs(t, err, llmhttp.ErrCircuitOpen)
		var r *llmhttp.Refusal
		require.ErrorAs(t, err, &r)
		assert.Equal(t, llmhttp.ReasonCircuitOpen, r.Reason)
		assert.Equal(t, 30*time.Second, r.RetryAfter)
		assert.Equal(t, 10, base.n(bkKey))
	})
}

func TestBreakerHookCallsAreSerialisedAndOrdered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu      sync.Mutex
			log     []string
			active  atomic.Int32
			overlap atomic.Bool
		)
		release := make(chan struct{})
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{
			OnStateChange: func(key string, from, to llmhttp.State) {
				if active.Add(1) > 1 {
					overlap.Store(true)
				}
				defer active.Add(-1)
				if to == llmhttp.StateHalfOpen {
					<-release // a slow hook
				}
				mu.Lock()
				log = append(log, from.String()+"→"+to.String())
				mu.Unlock()
			},
		})
		base := newBKBase(nil)
		rt := b.Wrap(base)
		bkTrip(t, rt, base, 10)
		time.Sleep(30 * time.Second)

		// A observes open→half-open and is stuck delivering it.
		observed := make(chan llmhttp.State)
		go func() { observed <- b.State(bkKey) }()
		synctest.Wait()

		// Meanwhile a probe closes the circuit. Its own change must neither
		// overtake the one being delivered nor run beside it.
		base.set(bkStatus(200, bkOK))
		status, _ := bkDo(t, rt, bkHost, bkModel)
		assert.Equal(t, 200, status)
		mu.Lock()
		assert.Equal(t, []string{"closed→open"}, log)
		mu.Unlock()

		close(release)
		assert.Equal(t, llmhttp.StateHalfOpen, <-observed)
		assert.Equal(t, []string{"closed→open", "open→half-open", "half-open→closed"}, log)
		assert.False(t, overlap.Load())
	})
}

func TestBreakerCountsRequestsLongerThanTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{Window: 30 * time.Second})
		base := newBKBase(func(req *http.Request) (*http.Response, error) {
			time.Sleep(45 * time.Second) // a long generation, then a gateway timeout
			return bkResp(req, 504, `{"type":"error","error":{"type":"timeout_error","message":"Request timed out"}}`), nil
		})
		rt := b.Wrap(base)
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() { bkDo(t, rt, bkHost, bkModel) })
		}
		wg.Wait()
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey), "counts %+v", b.Counts(bkKey))
	})
}

// TestBreakerCountsMidStreamErrors checks that an error event in the middle
// of a 200 stream is counted as a failure once the caller has read it: the
// head counted as a success, the error after the fact, so ten broken streams
// reach the failure ratio (10 of 20) while ten clean ones do not.
func TestBreakerCountsMidStreamErrors(t *testing.T) {
	const (
		clean  = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
		broken = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	)
	stream := func(body string) func(*http.Request) (*http.Response, error) {
		return bkStatus(200, body, "Content-Type", "text/event-stream")
	}
	synctest.Test(t, func(t *testing.T) {
		b := llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		base := newBKBase(stream(clean))
		rt := b.Wrap(base)
		for range 10 {
			bkDo(t, rt, bkHost, bkModel)
		}
		assert.Equal(t, llmhttp.StateClosed, b.State(bkKey))
		assert.Zero(t, b.Counts(bkKey).Failures, "clean streams are not failures")

		b = llmhttp.NewBreaker(llmhttp.BreakerSettings{})
		base = newBKBase(stream(broken))
		rt = b.Wrap(base)
		for i := range 10 {
			assert.Equal(t, llmhttp.StateClosed, b.State(bkKey), "stream %d", i)
			bkDo(t, rt, bkHost, bkModel)
		}
		assert.Equal(t, llmhttp.StateOpen, b.State(bkKey), "10 broken streams: 10 failures of 20 outcomes")
	})
}
