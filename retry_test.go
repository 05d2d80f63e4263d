package llmhttp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
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

// Test fixtures of the retry layer. Every time-dependent test runs in a
// synctest bubble against an in-memory upstream, so waits take no real time
// and elapsed times are exact.

// retryExact is a Jitter that adds nothing, so every wait is exact.
func retryExact(d time.Duration) time.Duration { return d }

// retryBody is a response or request body that counts reads and closes.
type retryBody struct {
	r      io.Reader
	read   atomic.Int64
	closed atomic.Int32
}

func newRetryBody(s string) *retryBody { return &retryBody{r: strings.NewReader(s)} }

func (b *retryBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *retryBody) Close() error { b.closed.Add(1); return nil }

// retryUpstream is an in-memory upstream: answer gives the n-th call's reply
// (n from 1). It records what each attempt received, wraps every response
// body in a retryBody and honours the RoundTripper contract (it reads and
// closes the request body, sets resp.Request).
type retryUpstream struct {
	answer func(n int, req *http.Request) (*http.Response, error)

	mu       sync.Mutex
	calls    int
	reqs     []*http.Request
	reqBody  []io.ReadCloser // the Body object each attempt received
	sent     []string        // the body bytes each attempt sent
	respBody []*retryBody
	at       []time.Time
}

func (u *retryUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	var sent []byte
	if req.Body != nil {
		sent, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	u.mu.Lock()
	u.calls++
	n := u.calls
	u.reqs = append(u.reqs, req)
	u.reqBody = append(u.reqBody, req.Body)
	u.sent = append(u.sent, string(sent))
	u.at = append(u.at, time.Now())
	u.mu.Unlock()
	resp, err := u.answer(n, req)
	if resp != nil {
		resp.Request = req
		if _, local := llmhttp.RefusalOf(resp); !local && resp.Body != nil {
			b := &retryBody{r: resp.Body}
			resp.Body = b
			u.mu.Lock()
			u.respBody = append(u.respBody, b)
			u.mu.Unlock()
		}
	}
	return resp, err
}

func (u *retryUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls
}

// retryReply builds a response; kv are header name/value pairs.
func retryReply(status int, body string, kv ...string) *http.Response {
	h := make(http.Header)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}
}

const (
	retryReqBody     = `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`
	retryOKBody      = `{"id":"msg_1","type":"message","content":[{"type":"text","text":"hello"}]}`
	retryOverloaded  = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
	retryRateLimited = `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`
	retryBilling     = `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`
	retryServerError = `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`
)

// retryRequest returns an Anthropic-style POST whose body can be replayed
// (GetBody set).
func retryRequest(t *testing.T, ctx context.Context) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.anthropic.com/v1/messages",
		strings.NewReader(retryReqBody))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", "sk-ant-test-key")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	return req
}

// retryAlways answers every call with the same reply.
func retryAlways(status int, body string, kv ...string) func(int, *http.Request) (*http.Response, error) {
	return func(int, *http.Request) (*http.Response, error) { return retryReply(status, body, kv...), nil }
}

// retryThen answers the first len(first) calls from first, every later call
// with a 200.
func retryThen(first ...func() *http.Response) func(int, *http.Request) (*http.Response, error) {
	return func(n int, _ *http.Request) (*http.Response, error) {
		if n <= len(first) {
			return first[n-1](), nil
		}
		return retryReply(http.StatusOK, retryOKBody, "Content-Type", "application/json"), nil
	}
}

func retryDo(t *testing.T, p llmhttp.RetryPolicy, u *retryUpstream, req *http.Request) (*http.Response, error) {
	t.Helper()
	return llmhttp.Retry(p)(u).RoundTrip(req)
}

func retryRead(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return string(b)
}

func TestRetryServerHintIsTheWaitExactly(t *testing.T) {
	// Each hint form of llm-wire §5.3, in order; with jitter pinned the wait
	// equals the hint that ServerDelay reads, and that hint is at least what
	// the header says.
	cases := []struct {
		name    string
		headers func(now time.Time) []string
		atLeast time.Duration
	}{
		{"retry-after-ms", func(time.Time) []string { return []string{"Retry-After-Ms", "1500"} }, 1500 * time.Millisecond},
		{"retry-after seconds", func(time.Time) []string { return []string{"Retry-After", "7"} }, 7 * time.Second},
		{"retry-after-ms wins over retry-after", func(time.Time) []string {
			return []string{"Retry-After-Ms", "2500", "Retry-After", "30"}
		}, 2500 * time.Millisecond},
		{"retry-after HTTP-date", func(now time.Time) []string {
			return []string{"Retry-After", now.Add(9 * time.Second).UTC().Format(http.TimeFormat)}
		}, 9 * time.Second},
		{"IETF RateLimit", func(time.Time) []string {
			return []string{"RateLimit-Policy", `"default";q=100;w=60`, "RateLimit", `"default";r=0;t=11`}
		}, 11 * time.Second},
		{"anthropic exhausted bucket reset", func(now time.Time) []string {
			return []string{
				"Anthropic-Ratelimit-Requests-Limit", "50",
				"Anthropic-Ratelimit-Requests-Remaining", "0",
				"Anthropic-Ratelimit-Requests-Reset", now.Add(13 * time.Second).UTC().Format(time.RFC3339),
			}
		}, 13 * time.Second},
		{"openai exhausted bucket reset", func(time.Time) []string {
			return []string{
				"X-Ratelimit-Limit-Tokens", "30000",
				"X-Ratelimit-Remaining-Tokens", "0",
				"X-Ratelimit-Reset-Tokens", "5s",
			}
		}, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				hdr := tc.headers(start)
				var want time.Duration
				u := &retryUpstream{answer: func(n int, _ *http.Request) (*http.Response, error) {
					if n == 1 {
						r := retryReply(http.StatusTooManyRequests, retryRateLimited, hdr...)
						d, ok := llmhttp.ServerDelay(r.Header, time.Now())
						require.True(t, ok, "ServerDelay must read %v", hdr)
						want = d
						return r, nil
					}
					return retryReply(http.StatusOK, retryOKBody), nil
				}}
				resp, err := retryDo(t, llmhttp.RetryPolicy{Jitter: retryExact}, u, retryRequest(t, t.Context()))
				require.NoError(t, err)
				assert.Equal(t, retryOKBody, retryRead(t, resp))
				assert.Equal(t, 2, u.count())
				assert.GreaterOrEqual(t, want, tc.atLeast)
				assert.Equal(t, want, u.at[1].Sub(u.at[0]), "the wait is the hint, exactly")
			})
		})
	}
}

func TestRetryDefaultJitterIsUpwardAndSmall(t *testing.T) {
	for _, hint := range []time.Duration{300 * time.Millisecond, time.Second, 10 * time.Second} {
		synctest.Test(t, func(t *testing.T) {
			ms := strconv.FormatInt(hint.Milliseconds(), 10)
			u := &retryUpstream{answer: func(n int, _ *http.Request) (*http.Response, error) {
				if n%2 == 1 {
					return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After-Ms", ms), nil
				}
				return retryReply(http.StatusOK, retryOKBody), nil
			}}
			rt := llmhttp.Retry(llmhttp.RetryPolicy{})(u)
			for range 50 {
				start := time.Now()
				resp, err := rt.RoundTrip(retryRequest(t, t.Context()))
				require.NoError(t, err)
				retryRead(t, resp)
				got := time.Since(start)
				assert.GreaterOrEqual(t, got, hint, "jitter never undercuts the hint")
				assert.LessOrEqual(t, got, hint+min(hint/10, 250*time.Millisecond))
			}
		})
	}
}

func TestRetryJitterCannotUndercutHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryThen(func() *http.Response {
			return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "10")
		})}
		undercut := func(d time.Duration) time.Duration { return d - 5*time.Second }
		start := time.Now()
		resp, err := retryDo(t, llmhttp.RetryPolicy{Jitter: undercut}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		retryRead(t, resp)
		assert.Equal(t, 10*time.Second, time.Since(start))
	})
}

func TestRetryBackoffSequence(t *testing.T) {
	t.Run("exact", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: retryAlways(http.StatusInternalServerError, retryServerError)}
			var delays []time.Duration
			p := llmhttp.RetryPolicy{
				MaxAttempts: 9, Jitter: retryExact, Budget: llmhttp.RetryBudget{Capacity: -1},
				OnRetry: func(e llmhttp.RetryEvent) { delays = append(delays, e.Delay) },
			}
			resp, err := retryDo(t, p, u, retryRequest(t, t.Context()))
			require.NoError(t, err)
			retryRead(t, resp)
			s := time.Second
			assert.Equal(t, []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s}, delays)
			for i := 1; i < len(u.at); i++ {
				assert.Equal(t, delays[i-1], u.at[i].Sub(u.at[i-1]))
			}
		})
	})
	t.Run("custom", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: retryAlways(http.StatusBadGateway, "bad gateway")}
			var delays []time.Duration
			p := llmhttp.RetryPolicy{
				MaxAttempts: 5, InitialInterval: 100 * time.Millisecond, MaxInterval: 250 * time.Millisecond,
				Multiplier: 3, Jitter: retryExact, Budget: llmhttp.RetryBudget{Capacity: -1},
				OnRetry: func(e llmhttp.RetryEvent) { delays = append(delays, e.Delay) },
			}
			resp, err := retryDo(t, p, u, retryRequest(t, t.Context()))
			require.NoError(t, err)
			retryRead(t, resp)
			ms := time.Millisecond
			assert.Equal(t, []time.Duration{100 * ms, 250 * ms, 250 * ms, 250 * ms}, delays)
		})
	})
	t.Run("default jitter stays in bounds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: retryAlways(http.StatusInternalServerError, retryServerError)}
			p := llmhttp.RetryPolicy{MaxAttempts: 9, Budget: llmhttp.RetryBudget{Capacity: -1}}
			var delays []time.Duration
			p.OnRetry = func(e llmhttp.RetryEvent) {
				assert.False(t, e.ServerDelay)
				delays = append(delays, e.Delay)
			}
			rt := llmhttp.Retry(p)(u)
			for range 20 {
				delays = delays[:0]
				resp, err := rt.RoundTrip(retryRequest(t, t.Context()))
				require.NoError(t, err)
				retryRead(t, resp)
				nominal := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
				require.Len(t, delays, len(nominal))
				for i, d := range delays {
					n := nominal[i] * time.Second
					assert.GreaterOrEqual(t, d, n/2)
					assert.LessOrEqual(t, d, n*3/2)
				}
			}
		})
	})
}

func TestRetryHintAboveCapReturnsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cap        time.Duration
		retryAfter string
		attempts   int
	}{
		{"above the default cap", 0, "61", 1},
		{"at the default cap", 0, "60", 2},
		{"an hour", 0, "3600", 1},
		{"above a custom cap", 5 * time.Second, "6", 1},
		{"below a custom cap", 5 * time.Second, "4", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := &retryUpstream{answer: retryThen(func() *http.Response {
					return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", tc.retryAfter, "Request-Id", "req_1")
				})}
				start := time.Now()
				resp, err := retryDo(t, llmhttp.RetryPolicy{MaxRetryAfter: tc.cap, Jitter: retryExact}, u, retryRequest(t, t.Context()))
				require.NoError(t, err)
				assert.Equal(t, tc.attempts, u.count())
				if tc.attempts == 1 {
					assert.Equal(t, time.Duration(0), time.Since(start), "no wait at all")
					assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
					assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
					assert.Equal(t, tc.retryAfter, resp.Header.Get("Retry-After"), "headers as they came")
					assert.Equal(t, "req_1", resp.Header.Get("Request-Id"))
					assert.Equal(t, retryRateLimited, retryRead(t, resp), "the provider's body intact")
				} else {
					assert.Equal(t, http.StatusOK, resp.StatusCode)
					retryRead(t, resp)
				}
			})
		})
	}
}

func TestRetryWaitPastDeadlineReturnsAtOnce(t *testing.T) {
	t.Run("server hint", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			u := &retryUpstream{answer: retryThen(func() *http.Response {
				return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "10")
			})}
			start := time.Now()
			resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, ctx))
			require.NoError(t, err)
			assert.Equal(t, time.Duration(0), time.Since(start))
			assert.Equal(t, 1, u.count())
			assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
			assert.Equal(t, retryRateLimited, retryRead(t, resp))
		})
	})
	t.Run("backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
			defer cancel()
			u := &retryUpstream{answer: retryAlways(529, retryOverloaded)}
			p := llmhttp.RetryPolicy{Jitter: retryExact} // waits 1 s, then 2 s
			start := time.Now()
			resp, err := retryDo(t, p, u, retryRequest(t, ctx))
			require.NoError(t, err)
			assert.Equal(t, time.Second, time.Since(start), "the 1 s wait fits, the 2 s one does not")
			assert.Equal(t, 2, u.count())
			assert.Equal(t, 529, resp.StatusCode)
			assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
			retryRead(t, resp)
		})
	})
	t.Run("a wait that fits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			u := &retryUpstream{answer: retryThen(func() *http.Response {
				return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "4")
			})}
			resp, err := retryDo(t, llmhttp.RetryPolicy{Jitter: retryExact}, u, retryRequest(t, ctx))
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			retryRead(t, resp)
		})
	})
}

func TestRetryMaxElapsedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: func(int, *http.Request) (*http.Response, error) {
			time.Sleep(2 * time.Second) // the attempt itself takes time, and counts
			return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "3"), nil
		}}
		start := time.Now()
		resp, err := retryDo(t, llmhttp.RetryPolicy{MaxElapsedTime: 12 * time.Second, Jitter: retryExact}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		retryRead(t, resp)
		// 2 s attempt, 3 s wait, 2 s attempt (7 s), 3 s wait, 2 s attempt
		// (12 s): a third wait would end at 15 s.
		assert.Equal(t, 3, u.count())
		assert.Equal(t, 12*time.Second, time.Since(start))
		assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
	})
}

func TestRetryBillingIsNeverRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(http.StatusTooManyRequests, retryBilling,
			"X-Request-Id", "req_b", "Retry-After", "1", "X-Should-Retry", "true")}
		req := retryRequest(t, t.Context())
		req.URL, _ = url.Parse("https://api.openai.com/v1/chat/completions")
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
		require.NoError(t, err)
		assert.Equal(t, 1, u.count())
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"), "the SDK above must not retry it either")
		assert.Equal(t, retryBilling, retryRead(t, resp))
	})
}

func TestRetryOverloadedTwiceThenOK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		overloaded := func() *http.Response { return retryReply(529, retryOverloaded) }
		var final *http.Response
		u := &retryUpstream{answer: func(n int, _ *http.Request) (*http.Response, error) {
			if n <= 2 {
				return overloaded(), nil
			}
			final = retryReply(http.StatusOK, retryOKBody, "Content-Type", "application/json")
			return final, nil
		}}
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, 3, u.count())
		assert.Same(t, final, resp, "the success is returned as it came")
		assert.Equal(t, http.Header{"Content-Type": {"application/json"}}, resp.Header, "no header added to a success")
		assert.Equal(t, retryOKBody, retryRead(t, resp))
		for i, sent := range u.sent {
			assert.Equal(t, retryReqBody, sent, "attempt %d sent the whole body", i+1)
		}
	})
}

func TestRetryExhaustedReturnsLastResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: func(n int, _ *http.Request) (*http.Response, error) {
			return retryReply(http.StatusServiceUnavailable, "attempt "+strconv.Itoa(n), "X-Should-Retry", "true"), nil
		}}
		resp, err := retryDo(t, llmhttp.RetryPolicy{MaxAttempts: 3}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, 3, u.count())
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, []string{"false"}, resp.Header.Values("X-Should-Retry"), "replaced, not added")
		assert.Equal(t, "attempt 3", retryRead(t, resp))
	})
}

func TestRetryMaxAttemptsOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(529, retryOverloaded)}
		resp, err := retryDo(t, llmhttp.RetryPolicy{MaxAttempts: 1}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, 1, u.count())
		assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
		retryRead(t, resp)
	})
}

func TestRetryNonReplayableBodyIsSentOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(529, retryOverloaded)}
		body := newRetryBody(retryReqBody)
		req := retryRequest(t, t.Context())
		req.Body, req.GetBody = body, nil // a stream: cannot be replayed
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
		require.NoError(t, err)
		assert.Equal(t, 1, u.count())
		assert.Same(t, body, u.reqBody[0], "the caller's body went down as it is, not buffered")
		assert.EqualValues(t, len(retryReqBody), body.read.Load(), "read once, by the upstream only")
		assert.EqualValues(t, 1, body.closed.Load())
		assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
		retryRead(t, resp)
	})
	t.Run("network error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: func(int, *http.Request) (*http.Response, error) {
				return nil, io.ErrUnexpectedEOF
			}}
			req := retryRequest(t, t.Context())
			req.Body, req.GetBody = newRetryBody(retryReqBody), nil
			_, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
			var re *llmhttp.RetryError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 1, re.Attempts)
			assert.EqualError(t, err, "llmhttp: after 1 attempt: unexpected EOF")
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
			assert.Equal(t, 1, u.count())
		})
	})
}

func TestRetryBodilessRequestsAreReplayable(t *testing.T) {
	for _, body := range []io.ReadCloser{nil, http.NoBody} {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: retryThen(func() *http.Response { return retryReply(http.StatusBadGateway, "") })}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://api.openai.com/v1/models", nil)
			require.NoError(t, err)
			req.Body = body
			resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
			require.NoError(t, err)
			retryRead(t, resp)
			assert.Equal(t, 2, u.count())
			assert.Equal(t, body, u.reqBody[1])
		})
	}
}

func TestRetryCancelDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		u := &retryUpstream{answer: retryAlways(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "30")}
		var fresh []*retryBody
		req := retryRequest(t, ctx)
		req.GetBody = func() (io.ReadCloser, error) {
			b := newRetryBody(retryReqBody)
			fresh = append(fresh, b)
			return b, nil
		}
		stop := errors.New("shutting down")
		time.AfterFunc(time.Second, func() { cancel(stop) })
		start := time.Now()
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
		assert.Nil(t, resp)
		assert.Equal(t, time.Second, time.Since(start), "returns the moment the context ends")
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, stop, "the context's cause")
		var re *llmhttp.RetryError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 1, re.Attempts)
		assert.Equal(t, 1, u.count())
		require.Len(t, fresh, 1, "the body for the next attempt was taken before the wait")
		assert.EqualValues(t, 1, fresh[0].closed.Load(), "and closed when the wait ended")
		require.Len(t, u.respBody, 1)
		assert.EqualValues(t, 1, u.respBody[0].closed.Load(), "the 429 was closed")
	})
}

func TestRetryCancelledBeforeRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		u := &retryUpstream{answer: func(int, *http.Request) (*http.Response, error) {
			cancel() // the caller gives up while the attempt is on the wire
			return nil, context.Canceled
		}}
		_, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, ctx))
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 1, u.count())
	})
}

func TestRetryDiscardedBodiesDrainedAndClosedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := strings.Repeat("x", 1<<20)
		u := &retryUpstream{answer: retryThen(
			func() *http.Response { return retryReply(http.StatusInternalServerError, big) },
			func() *http.Response { return retryReply(http.StatusInternalServerError, big) },
		)}
		// A classifier that does not peek, so the reads counted are the
		// drain's alone.
		byStatus := func(resp *http.Response, err error) llmhttp.Class {
			if err != nil {
				return llmhttp.ClassNetwork
			}
			if resp.StatusCode >= 500 {
				return llmhttp.ClassServer
			}
			return llmhttp.ClassOK
		}
		resp, err := retryDo(t, llmhttp.RetryPolicy{Classifier: byStatus}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		require.Len(t, u.respBody, 3)
		for _, b := range u.respBody[:2] {
			assert.EqualValues(t, 1, b.closed.Load())
			assert.EqualValues(t, 4<<10, b.read.Load(), "drained, bounded")
		}
		assert.Zero(t, u.respBody[2].closed.Load(), "the final body is the caller's to close")
		assert.Zero(t, u.respBody[2].read.Load())
		retryRead(t, resp)
		assert.EqualValues(t, 1, u.respBody[2].closed.Load())
	})
	t.Run("with the default classifier's peek", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: retryThen(
				func() *http.Response { return retryReply(529, retryOverloaded) },
				func() *http.Response {
					return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "1")
				},
			)}
			resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
			require.NoError(t, err)
			retryRead(t, resp)
			require.Len(t, u.respBody, 3)
			for _, b := range u.respBody {
				assert.EqualValues(t, 1, b.closed.Load())
			}
		})
	})
}

func TestRetryDoesNotMutateRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryThen(
			func() *http.Response { return retryReply(529, retryOverloaded) },
			func() *http.Response {
				return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "1")
			},
		)}
		req := retryRequest(t, t.Context())
		req.Header.Set("X-Stainless-Retry-Count", "0")
		before := *req
		header := req.Header.Clone()
		body, getBody, urlCopy := req.Body, req.GetBody, *req.URL
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
		require.NoError(t, err)
		retryRead(t, resp)
		require.Equal(t, 3, u.count())

		assert.Equal(t, header, req.Header)
		assert.Equal(t, urlCopy, *req.URL)
		assert.True(t, body == req.Body, "the same Body")
		assert.Equal(t, before.Method, req.Method)
		assert.Equal(t, before.ContentLength, req.ContentLength)
		assert.Equal(t, before.Host, req.Host)
		assert.True(t, before.Context() == req.Context())
		assert.NotNil(t, req.GetBody)
		assert.Equal(t, getBody != nil, req.GetBody != nil)

		assert.Same(t, req, u.reqs[0], "the first attempt is the caller's request")
		for i := 1; i < 3; i++ {
			assert.NotSame(t, req, u.reqs[i], "a retry is a clone")
			assert.NotEqual(t, reflect.ValueOf(req.Header).Pointer(), reflect.ValueOf(u.reqs[i].Header).Pointer())
			assert.Equal(t, header, u.reqs[i].Header)
			assert.Equal(t, retryReqBody, u.sent[i])
		}
	})
}

func TestRetryGetBodyFailureReturnsLastResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(529, retryOverloaded)}
		req := retryRequest(t, t.Context())
		req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
		require.NoError(t, err)
		assert.Equal(t, 1, u.count())
		assert.Equal(t, 529, resp.StatusCode)
		assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
		assert.Equal(t, retryOverloaded, retryRead(t, resp))
	})
}

func TestRetryForwardsCloseIdleConnections(t *testing.T) {
	base := &trIdleBase{RoundTripper: llmhttp.RoundTripFunc(trOK)}
	rt := llmhttp.Retry(llmhttp.RetryPolicy{})(base)
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	assert.EqualValues(t, 1, base.closed.Load())

	chained := llmhttp.Chain(base, llmhttp.Retry(llmhttp.RetryPolicy{}))
	chained.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	assert.EqualValues(t, 2, base.closed.Load())
}

// retryNetErr is a network error as net/http would return it.
var retryNetErr = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}

func TestRetryErrorThroughURLError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: func(int, *http.Request) (*http.Response, error) { return nil, retryNetErr }}
		client := &http.Client{Transport: llmhttp.Chain(u, llmhttp.Retry(llmhttp.RetryPolicy{MaxAttempts: 3}))}
		_, err := client.Do(retryRequest(t, t.Context()))
		require.Error(t, err)
		var ue *url.Error
		require.ErrorAs(t, err, &ue)
		var re *llmhttp.RetryError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 3, re.Attempts)
		var oe *net.OpError
		require.ErrorAs(t, err, &oe)
		assert.Same(t, retryNetErr, oe)
		assert.Equal(t, 3, u.count())
		assert.Contains(t, err.Error(), "llmhttp: after 3 attempts: dial tcp: connection refused")
	})
}

func TestRetryNetworkErrorThenOK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: func(n int, _ *http.Request) (*http.Response, error) {
			if n == 1 {
				return nil, io.ErrUnexpectedEOF
			}
			return retryReply(http.StatusOK, retryOKBody), nil
		}}
		var events []llmhttp.RetryEvent
		resp, err := retryDo(t, llmhttp.RetryPolicy{OnRetry: func(e llmhttp.RetryEvent) { events = append(events, e) }}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		retryRead(t, resp)
		require.Len(t, events, 1)
		assert.Equal(t, llmhttp.ClassNetwork, events[0].Class)
		assert.ErrorIs(t, events[0].Err, io.ErrUnexpectedEOF)
		assert.Nil(t, events[0].Response)
		assert.Zero(t, events[0].Status)
	})
}

func TestRetryShouldRetryHeader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		header   string
		attempts int
	}{
		{"false stops a 503", http.StatusServiceUnavailable, retryServerError, "false", 1},
		{"false stops a 429 with retry-after", http.StatusTooManyRequests, retryRateLimited, "false", 1},
		{"true retries a 400", http.StatusBadRequest, `{"type":"error","error":{"type":"invalid_request_error","message":"x"}}`, "true", 4},
		{"true retries a 401", http.StatusUnauthorized, `{"type":"error","error":{"type":"authentication_error","message":"x"}}`, "true", 4},
		{"a 400 alone is not retried", http.StatusBadRequest, `{"type":"error","error":{"type":"invalid_request_error","message":"x"}}`, "", 1},
		{"true does not retry a 413", http.StatusRequestEntityTooLarge, `{"type":"error","error":{"type":"request_too_large","message":"x"}}`, "true", 1},
		{"garbage is ignored", http.StatusServiceUnavailable, retryServerError, "maybe", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				kv := []string{"Retry-After", "1"}
				if tc.header != "" {
					kv = append(kv, "X-Should-Retry", tc.header)
				}
				u := &retryUpstream{answer: retryAlways(tc.status, tc.body, kv...)}
				resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
				require.NoError(t, err)
				assert.Equal(t, tc.attempts, u.count())
				assert.Equal(t, []string{"false"}, resp.Header.Values("X-Should-Retry"))
				assert.Equal(t, tc.body, retryRead(t, resp))
			})
		})
	}
}

func TestRetryConflictAtMostOnce(t *testing.T) {
	for _, header := range []string{"", "true"} {
		synctest.Test(t, func(t *testing.T) {
			kv := []string{}
			if header != "" {
				kv = append(kv, "X-Should-Retry", header)
			}
			u := &retryUpstream{answer: retryAlways(http.StatusConflict, `{"error":{"message":"conflict"}}`, kv...)}
			resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
			require.NoError(t, err)
			assert.Equal(t, 2, u.count())
			assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
			retryRead(t, resp)
		})
	}
}

func TestRetryUnhintedRateLimitAtMostOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// An Anthropic rate_limit_error without retry-after (row 12a): may be
		// a spend cap in disguise, so it gets one backoff retry, no more.
		u := &retryUpstream{answer: retryAlways(http.StatusTooManyRequests, retryRateLimited, "Request-Id", "req_x")}
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, 2, u.count())
		assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
		retryRead(t, resp)
	})
	synctest.Test(t, func(t *testing.T) {
		// With a hint, a 429 is retried as often as the attempts allow.
		u := &retryUpstream{answer: retryAlways(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "2")}
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, 4, u.count())
		retryRead(t, resp)
	})
}

func TestRetrySuccessAndStreamBodyBelongToCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		u := &retryUpstream{answer: func(int, *http.Request) (*http.Response, error) {
			r := retryReply(http.StatusOK, "", "Content-Type", "text/event-stream")
			r.Body, r.ContentLength = pr, -1
			return r, nil
		}}
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, 1, u.count())
		assert.Empty(t, resp.Header.Values("X-Should-Retry"))
		go func() {
			io.WriteString(pw, "event: message_start\ndata: {}\n\n")
			pw.CloseWithError(io.ErrUnexpectedEOF) // dies mid-stream
		}()
		b, err := io.ReadAll(resp.Body)
		assert.Equal(t, "event: message_start\ndata: {}\n\n", string(b))
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "a mid-stream failure is the caller's, never retried")
		resp.Body.Close()
		assert.Equal(t, 1, u.count())
	})
}

func TestRetryWaitsOutOpenCircuit(t *testing.T) {
	open := func(d time.Duration) func(*http.Request) *http.Response {
		return func(req *http.Request) *http.Response {
			return (&llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen, RetryAfter: d}).Response(req)
		}
	}
	t.Run("fits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: func(n int, req *http.Request) (*http.Response, error) {
				if n == 1 {
					return open(5 * time.Second)(req), nil
				}
				return retryReply(http.StatusOK, retryOKBody), nil
			}}
			var ev llmhttp.RetryEvent
			start := time.Now()
			resp, err := retryDo(t, llmhttp.RetryPolicy{Jitter: retryExact, OnRetry: func(e llmhttp.RetryEvent) { ev = e }}, u, retryRequest(t, t.Context()))
			require.NoError(t, err)
			retryRead(t, resp)
			assert.Equal(t, 5*time.Second, time.Since(start))
			assert.Equal(t, llmhttp.ClassLocal, ev.Class)
			assert.True(t, ev.ServerDelay)
		})
	})
	t.Run("time to half-open unknown", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: func(n int, req *http.Request) (*http.Response, error) {
				if n == 1 {
					return open(0)(req), nil
				}
				return retryReply(http.StatusOK, retryOKBody), nil
			}}
			start := time.Now()
			resp, err := retryDo(t, llmhttp.RetryPolicy{Jitter: retryExact}, u, retryRequest(t, t.Context()))
			require.NoError(t, err)
			retryRead(t, resp)
			assert.Equal(t, time.Second, time.Since(start), "backoff's first interval")
		})
	})
	for _, tc := range []struct {
		name     string
		wait     time.Duration
		deadline time.Duration
		attempts int
	}{
		{"above the cap", 2 * time.Minute, 0, 1},
		{"past the deadline", 10 * time.Second, 5 * time.Second, 1},
		{"no attempts left", 5 * time.Second, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				if tc.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.deadline)
					defer cancel()
				}
				var reply *http.Response
				u := &retryUpstream{answer: func(_ int, req *http.Request) (*http.Response, error) {
					reply = open(tc.wait)(req)
					return reply, nil
				}}
				p := llmhttp.RetryPolicy{}
				if tc.name == "no attempts left" {
					p.MaxAttempts = 1
				}
				start := time.Now()
				resp, err := retryDo(t, p, u, retryRequest(t, ctx))
				require.NoError(t, err)
				assert.Equal(t, time.Duration(0), time.Since(start))
				assert.Equal(t, tc.attempts, u.count())
				assert.Same(t, reply, resp, "the local reply as it is")
				r, ok := llmhttp.RefusalOf(resp)
				require.True(t, ok)
				assert.Equal(t, llmhttp.ReasonCircuitOpen, r.Reason)
				retryRead(t, resp)
			})
		})
	}
}

func TestRetryReturnsPacerRefusalAsIs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reply *http.Response
		u := &retryUpstream{answer: func(_ int, req *http.Request) (*http.Response, error) {
			reply = (&llmhttp.Refusal{Reason: llmhttp.ReasonWaitTooLong, RetryAfter: time.Second}).Response(req)
			return reply, nil
		}}
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, 1, u.count())
		assert.Same(t, reply, resp)
		header := reply.Header.Clone()
		assert.Equal(t, header, resp.Header)
		retryRead(t, resp)
	})
}

func TestRetryEventsAndSDKRetryCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryThen(
			func() *http.Response { return retryReply(529, retryOverloaded) },
			func() *http.Response {
				return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "3")
			},
		)}
		var events []llmhttp.RetryEvent
		var sdk []int
		p := llmhttp.RetryPolicy{
			Jitter:     retryExact,
			OnRetry:    func(e llmhttp.RetryEvent) { events = append(events, e) },
			OnSDKRetry: func(_ *http.Request, n int) { sdk = append(sdk, n) },
		}
		req := retryRequest(t, t.Context())
		req.Header.Set("X-Stainless-Retry-Count", "2")
		resp, err := retryDo(t, p, u, req)
		require.NoError(t, err)
		retryRead(t, resp)
		assert.Equal(t, []int{2}, sdk, "an SDK retrying on top of llmhttp is reported once per request")
		require.Len(t, events, 2)
		assert.Same(t, req, events[0].Request)
		assert.Equal(t, 1, events[0].Attempt)
		assert.Equal(t, llmhttp.ClassOverloaded, events[0].Class)
		assert.Equal(t, 529, events[0].Status)
		assert.Equal(t, time.Second, events[0].Delay)
		assert.False(t, events[0].ServerDelay)
		assert.Equal(t, 2, events[0].SDKRetryCount)
		assert.Equal(t, 2, events[1].Attempt)
		assert.Equal(t, llmhttp.ClassRateLimited, events[1].Class)
		assert.Equal(t, http.StatusTooManyRequests, events[1].Status)
		assert.Equal(t, 3*time.Second, events[1].Delay)
		assert.True(t, events[1].ServerDelay)
		require.NotNil(t, events[1].Response)
		assert.Equal(t, "3", events[1].Response.Header.Get("Retry-After"))

		for _, v := range []string{"", "0", "-1", "x"} {
			req := retryRequest(t, t.Context())
			if v != "" {
				req.Header.Set("X-Stainless-Retry-Count", v)
			}
			sdk = nil
			resp, err := llmhttp.Retry(p)(llmhttp.RoundTripFunc(trOK)).RoundTrip(req)
			require.NoError(t, err)
			retryRead(t, resp)
			assert.Empty(t, sdk, "X-Stainless-Retry-Count %q", v)
		}
	})
}

func TestRetryHooksRunOutsideLocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The hook sends a request through the same transport, whose failure
		// takes the budget's lock: were the hook called under it, this would
		// deadlock.
		u := &retryUpstream{answer: retryAlways(http.StatusInternalServerError, retryServerError)}
		var rt http.RoundTripper
		var nested atomic.Int32
		p := llmhttp.RetryPolicy{MaxAttempts: 2, OnRetry: func(e llmhttp.RetryEvent) {
			if nested.Add(1) > 1 {
				return
			}
			resp, err := rt.RoundTrip(retryRequest(t, t.Context()))
			if assert.NoError(t, err) {
				resp.Body.Close()
			}
		}}
		rt = llmhttp.Retry(p)(u)
		resp, err := rt.RoundTrip(retryRequest(t, t.Context()))
		require.NoError(t, err)
		retryRead(t, resp)
		assert.Equal(t, 4, u.count())
	})
}

func TestRetryNilResponseAndNilError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := llmhttp.Retry(llmhttp.RetryPolicy{MaxAttempts: 2})(llmhttp.RoundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, nil
		}))
		resp, err := rt.RoundTrip(retryRequest(t, t.Context()))
		assert.Nil(t, resp)
		var re *llmhttp.RetryError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 2, re.Attempts)
	})
}

// retryStorm sends n concurrent requests (X-Test-Id 0…n-1, with key as
// their API key) through rt and returns their responses' X-Should-Retry
// values.
func retryStorm(t *testing.T, rt http.RoundTripper, n int, key string) []string {
	var wg sync.WaitGroup
	out := make([]string, n)
	for i := range n {
		req := retryRequestID(t, key, key+"/"+strconv.Itoa(i))
		wg.Go(func() {
			resp, err := rt.RoundTrip(req)
			if assert.NoError(t, err) {
				out[i] = resp.Header.Get("X-Should-Retry")
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return out
}

// retryRequestID returns a request with API key key, told apart by its
// X-Test-Id.
func retryRequestID(t *testing.T, key, id string) *http.Request {
	req := retryRequest(t, t.Context())
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("X-Test-Id", id)
	return req
}

// retryPerRequest answers each attempt of a request (told apart by X-Test-Id)
// with fn(attempt), attempt from 1.
func retryPerRequest(fn func(attempt int) *http.Response) func(int, *http.Request) (*http.Response, error) {
	var mu sync.Mutex
	seen := map[string]int{}
	return func(_ int, req *http.Request) (*http.Response, error) {
		mu.Lock()
		id := req.Header.Get("X-Test-Id")
		seen[id]++
		a := seen[id]
		mu.Unlock()
		return fn(a), nil
	}
}

// retryFailOnce answers a request's first attempt with a 503, every later
// one with a 200.
func retryFailOnce() func(int, *http.Request) (*http.Response, error) {
	return retryPerRequest(func(a int) *http.Response {
		if a == 1 {
			return retryReply(http.StatusServiceUnavailable, retryServerError)
		}
		return retryReply(http.StatusOK, retryOKBody)
	})
}

// retryAttempts sends one request and returns how many attempts it took and
// its final status.
func retryAttempts(t *testing.T, rt http.RoundTripper, u *retryUpstream, req *http.Request) (int, int) {
	t.Helper()
	n := u.count()
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	retryRead(t, resp)
	return u.count() - n, resp.StatusCode
}

func TestRetryBudgetStopsStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(http.StatusServiceUnavailable, retryServerError)}
		rt := llmhttp.Retry(llmhttp.RetryPolicy{})(u)
		start := time.Now()
		should := retryStorm(t, rt, 100, "sk-ant-a")
		elapsed := time.Since(start)
		retries := u.count() - 100
		// The default budget holds 20 tokens, each failure takes one and
		// retries need more than 10: at most 9 retries, plus what the time
		// refill (20 per minute) gives back while they wait.
		bound := 9 + int(elapsed.Seconds()*20/60)
		t.Logf("100 concurrent requests against a 503 storm: %d retries in %v (bound %d)", retries, elapsed, bound)
		assert.Positive(t, retries)
		assert.LessOrEqual(t, retries, bound)
		for _, v := range should {
			assert.Equal(t, "false", v)
		}

		u.answer = retryFailOnce()
		attempts, status := retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-a", "after"))
		assert.Equal(t, 1, attempts, "the stormed partition's budget is spent")
		assert.Equal(t, http.StatusServiceUnavailable, status)
		attempts, status = retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-b", "other"))
		assert.Equal(t, 2, attempts, "another credential's partition still retries")
		assert.Equal(t, http.StatusOK, status)
	})
}

func TestRetryBudgetDisabledLetsStormThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(http.StatusServiceUnavailable, retryServerError)}
		rt := llmhttp.Retry(llmhttp.RetryPolicy{Budget: llmhttp.RetryBudget{Capacity: -1}})(u)
		retryStorm(t, rt, 100, "sk-ant-a")
		assert.Equal(t, 400, u.count(), "without a budget every request makes all its attempts")
	})
}

func TestRetryBudgetIgnoresServerDictatedThrottles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(http.StatusServiceUnavailable, retryServerError)}
		rt := llmhttp.Retry(llmhttp.RetryPolicy{})(u)
		retryStorm(t, rt, 30, "sk-ant-a") // spends the budget

		u.answer = retryPerRequest(func(a int) *http.Response {
			if a == 1 {
				return retryReply(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "2")
			}
			return retryReply(http.StatusOK, retryOKBody)
		})
		before := u.count()
		should := retryStorm(t, rt, 100, "sk-ant-a")
		assert.Equal(t, 200, u.count()-before, "every throttled request waited as told and retried")
		for _, v := range should {
			assert.Empty(t, v, "and succeeded")
		}

	})
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryAlways(http.StatusTooManyRequests, retryRateLimited, "Retry-After", "1")}
		rt := llmhttp.Retry(llmhttp.RetryPolicy{})(u)
		retryStorm(t, rt, 100, "sk-ant-a")
		assert.Equal(t, 400, u.count(), "throttled with a hint: every attempt made")

		u.answer = retryFailOnce()
		attempts, _ := retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-a", "after"))
		assert.Equal(t, 2, attempts, "and the 429s did not spend the budget")
	})
}

func TestRetryBudgetRecovers(t *testing.T) {
	t.Run("with time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: retryAlways(http.StatusServiceUnavailable, retryServerError)}
			rt := llmhttp.Retry(llmhttp.RetryPolicy{})(u)
			retryStorm(t, rt, 50, "sk-ant-a")

			u.answer = retryFailOnce()
			attempts, _ := retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-a", "1"))
			assert.Equal(t, 1, attempts, "spent")
			time.Sleep(time.Minute) // an empty budget refills in a minute by default
			attempts, status := retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-a", "2"))
			assert.Equal(t, 2, attempts, "refilled")
			assert.Equal(t, http.StatusOK, status)
		})
	})
	t.Run("with successes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			u := &retryUpstream{answer: retryAlways(http.StatusServiceUnavailable, retryServerError)}
			p := llmhttp.RetryPolicy{Budget: llmhttp.RetryBudget{Capacity: 10, Ratio: 1, RefillPeriod: -1}}
			rt := llmhttp.Retry(p)(u)
			retryStorm(t, rt, 20, "sk-ant-a") // empty: 0 of 10
			time.Sleep(time.Hour)             // no refill with time

			u.answer = retryFailOnce()
			attempts, _ := retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-a", "p1"))
			assert.Equal(t, 1, attempts, "spent, and time did not refill it")
			// Each success gives a token back; at 10 of 10 the partition is
			// forgotten, the same as full.
			u.answer = retryThen()
			for range 12 {
				retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-a", "s"))
			}
			u.answer = retryFailOnce()
			attempts, status := retryAttempts(t, rt, u, retryRequestID(t, "sk-ant-a", "p2"))
			assert.Equal(t, 2, attempts, "successes refilled the budget")
			assert.Equal(t, http.StatusOK, status)
		})
	})
}

func TestRetryReplaysEveryAttemptBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		payload := bytes.Repeat([]byte("a"), 100<<10)
		u := &retryUpstream{answer: retryThen(
			func() *http.Response { return retryReply(http.StatusBadGateway, "") },
			func() *http.Response { return retryReply(http.StatusBadGateway, "") },
		)}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.openai.com/v1/chat/completions", bytes.NewReader(payload))
		require.NoError(t, err)
		resp, err := retryDo(t, llmhttp.RetryPolicy{}, u, req)
		require.NoError(t, err)
		retryRead(t, resp)
		require.Equal(t, 3, u.count())
		for _, s := range u.sent {
			assert.Equal(t, len(payload), len(s))
		}
	})
}

func TestRetryOverBreakerWaitsForHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &retryUpstream{answer: retryThen(
			func() *http.Response { return retryReply(http.StatusServiceUnavailable, retryServerError) },
			func() *http.Response { return retryReply(http.StatusServiceUnavailable, retryServerError) },
		)}
		br := llmhttp.NewBreaker(llmhttp.BreakerSettings{ConsecutiveFailures: 2, OpenDuration: 10 * time.Second})
		var events []llmhttp.RetryEvent
		rt := llmhttp.Chain(u, llmhttp.Retry(llmhttp.RetryPolicy{
			Jitter:  retryExact,
			OnRetry: func(e llmhttp.RetryEvent) { events = append(events, e) },
		}), br.Wrap)
		start := time.Now()
		resp, err := rt.RoundTrip(retryRequest(t, t.Context()))
		require.NoError(t, err)
		assert.Equal(t, retryOKBody, retryRead(t, resp))
		// 503 at 0 s, backoff 1 s, 503 at 1 s opens the circuit until 11 s;
		// backoff 2 s, refused at 3 s with 8 s to half-open; the probe at
		// 11 s succeeds: the fourth and last attempt.
		assert.Equal(t, 11*time.Second, time.Since(start))
		assert.Equal(t, 3, u.count(), "the refused attempt never reached the upstream")
		require.Len(t, events, 3)
		assert.Equal(t, llmhttp.ClassLocal, events[2].Class)
		assert.Equal(t, 8*time.Second, events[2].Delay)
		assert.True(t, events[2].ServerDelay)
	})
}
