package llmhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// The level follows every report: the first is believed by a quarter (the
// other clients of a key read it too), a lower one at once, a higher one
// by half; the requests in flight are subtracted.
func TestPacerResyncLowerWinsHigherGradually(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		remaining := []int{52, 5, 40}
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusOK, `{}`, pcOpenAIHeaders(60, remaining[n-1])...)
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{})
		rt := p.Wrap(u)

		pcDo(t, rt, pcReq(t.Context(), "m", "1"))
		st := pcStats(t, p)
		require.EqualValues(t, 60, st.Requests.Limit)
		assert.InDelta(t, 13, st.Requests.Level, 1e-6, "the first report is believed by a quarter")

		pcDo(t, rt, pcReq(t.Context(), "m", "2"))
		assert.InDelta(t, 5, pcStats(t, p).Requests.Level, 1e-6, "a lower report wins at once")

		pcDo(t, rt, pcReq(t.Context(), "m", "3"))
		// The drop from 52 to 5, with one request of its own, is a loss
		// no measurement explains yet: the bucket is wary, and the third
		// request waits until it holds its cost plus the contention margin
		// (15 % of 60: 9), 5 s at 1/s. Then 10, minus the request just
		// sent, then halfway to 40.
		log := u.log()
		require.Len(t, log, 3)
		assert.Equal(t, 5*time.Second, log[2].at.Sub(log[1].at), "wary: a margin for other clients")
		assert.InDelta(t, 9+0.5*(40-9), pcStats(t, p).Requests.Level, 1e-6, "a higher report is believed by half")

		// Refill at 1/s.
		time.Sleep(2 * time.Second)
		assert.InDelta(t, 24.5+2, pcStats(t, p).Requests.Level, 1e-6)
	})
}

// An exhausted bucket holds the next request until it has refilled enough.
func TestPacerWaitsForBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusOK, `{}`, pcOpenAIHeaders(60, 0)...)
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{})
		rt := p.Wrap(u)
		start := time.Now()
		pcDo(t, rt, pcReq(t.Context(), "m", "1"))
		pcDo(t, rt, pcReq(t.Context(), "m", "2"))
		log := u.log()
		require.Len(t, log, 2)
		assert.Equal(t, time.Duration(0), log[0].at.Sub(start))
		assert.Equal(t, time.Second, log[1].at.Sub(start), "60 RPM, empty: the next request goes a second later")
	})
}

// A 429 closes the gate for every caller of the partition until the server's
// time; the waiters are then released one by one, spaced, not as a herd.
func TestPacerGateHoldsEveryCallerAndStaggersRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 1 {
				return pcResp(http.StatusTooManyRequests, `{"error":{"type":"requests","code":"rate_limit_exceeded","message":"slow"}}`, "Retry-After", "10")
			}
			return nil
		}}
		var gates []llmhttp.GateEvent
		var gmu sync.Mutex
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			GateSpacing: 100 * time.Millisecond, Jitter: pcExact,
			OnGate: func(e llmhttp.GateEvent) { gmu.Lock(); gates = append(gates, e); gmu.Unlock() },
		})
		rt := p.Wrap(u)
		start := time.Now()
		status, _, err := pcDo(t, rt, pcReq(t.Context(), "m", "first"))
		require.NoError(t, err)
		require.Equal(t, http.StatusTooManyRequests, status, "the 429 itself goes back as it came")
		assert.Equal(t, start.Add(10*time.Second), pcStats(t, p).GateUntil)

		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				status, _, err := pcDo(t, rt, pcReq(t.Context(), "m", string(rune('a'+i))))
				assert.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)
			})
		}
		synctest.Wait()
		assert.Equal(t, 1, u.count(), "every caller waits behind the gate")
		assert.Equal(t, 5, pcStats(t, p).Queued)
		wg.Wait()

		log := u.log()[1:]
		require.Len(t, log, 5)
		for i, s := range log {
			assert.Equal(t, 10*time.Second+time.Duration(i)*100*time.Millisecond, s.at.Sub(start), "release %d", i)
		}
		gmu.Lock()
		defer gmu.Unlock()
		require.Len(t, gates, 2)
		assert.True(t, gates[0].Closed)
		assert.Equal(t, http.StatusTooManyRequests, gates[0].Status)
		assert.False(t, gates[1].Closed, "the first release reports the opening")
	})
}

// The request whose own 429 closed the gate, retried by the retry layer
// after the server's wait, goes first when the gate opens: it does not wait
// a second time behind the staggered release of the others.
func TestPacerRetriedRequestDoesNotWaitTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var firstDone bool
		var mu sync.Mutex
		u := &pcUpstream{reply: func(n int, req *http.Request) *http.Response {
			mu.Lock()
			defer mu.Unlock()
			if req.Header.Get("X-Test-Id") == "A" && !firstDone {
				firstDone = true
				return pcResp(http.StatusTooManyRequests, `{"error":{"code":"rate_limit_exceeded","message":"x"}}`, "Retry-After", "10")
			}
			return nil
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{GateSpacing: time.Second, Jitter: pcExact})
		tr := llmhttp.New(u, llmhttp.WithoutBreaker(), llmhttp.WithPacer(p),
			llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{Jitter: func(d time.Duration) time.Duration { return d }}))
		start := time.Now()
		var wg sync.WaitGroup
		wg.Go(func() {
			status, _, err := pcDo(t, tr, pcReq(t.Context(), "m", "A"))
			assert.NoError(t, err)
			assert.Equal(t, http.StatusOK, status)
		})
		synctest.Wait()
		time.Sleep(time.Second)
		for _, id := range []string{"B", "C", "D"} {
			wg.Go(func() {
				status, _, err := pcDo(t, tr, pcReq(t.Context(), "m", id))
				assert.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)
			})
			synctest.Wait()
		}
		wg.Wait()
		at := map[string][]time.Duration{}
		for _, s := range u.log() {
			at[s.id] = append(at[s.id], s.at.Sub(start))
		}
		assert.Equal(t, []time.Duration{0, 10 * time.Second}, at["A"], "A is retried as soon as the gate opens")
		others := []time.Duration{at["B"][0], at["C"][0], at["D"][0]}
		slices.Sort(others)
		// B, C and D are spaced by a second after the gate; A, retried at the
		// opening instant, takes at most one of their slots.
		assert.GreaterOrEqual(t, others[0], 10*time.Second)
		assert.Equal(t, time.Second, others[1]-others[0])
		assert.Equal(t, time.Second, others[2]-others[1])
		assert.LessOrEqual(t, others[2], 13*time.Second)
	})
}

// A cost larger than a bucket's capacity is clamped to it: the request waits
// for a full bucket, never for ever.
func TestPacerClampsCostToCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			Limits: map[string]llmhttp.Limits{"m": {Tokens: llmhttp.Limit{Limit: 1000}}},
		})
		rt := p.Wrap(u)
		big := func(id string) *http.Request {
			body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 40000) + `"}]}`
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.example.test/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer k")
			req.Header.Set("X-Test-Id", id)
			return req
		}
		start := time.Now()
		pcDo(t, rt, big("1"))
		pcDo(t, rt, big("2"))
		log := u.log()
		require.Len(t, log, 2)
		assert.Equal(t, time.Duration(0), log[0].at.Sub(start), "a full bucket lets the clamped cost through")
		assert.Equal(t, time.Minute, log[1].at.Sub(start), "then the bucket must refill completely, once")
	})
}

// A request whose predicted wait does not fit its deadline, or MaxWait, is
// answered at once with a local 429, and its body is closed.
func TestPacerRefusesWhenTheWaitDoesNotFit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 1 {
				return pcResp(http.StatusTooManyRequests, `{"error":{"code":"rate_limit_exceeded","message":"x"}}`, "Retry-After", "30")
			}
			return nil
		}}
		var events []llmhttp.WaitEvent
		var emu sync.Mutex
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			MaxWait: 40 * time.Second,
			OnWait:  func(e llmhttp.WaitEvent) { emu.Lock(); events = append(events, e); emu.Unlock() },
		})
		rt := p.Wrap(u)
		pcDo(t, rt, pcReq(t.Context(), "m", "1"))

		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req := pcReq(ctx, "m", "2")
		body := &pcTrackedBody{Reader: strings.NewReader("{}")}
		req.Body = body
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		assert.Equal(t, time.Duration(0), time.Since(start), "refused at once, not after sleeping")
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
		assert.Equal(t, "30", resp.Header.Get("Retry-After"))
		r, ok := llmhttp.RefusalOf(resp)
		require.True(t, ok)
		assert.Equal(t, llmhttp.ReasonWaitTooLong, r.Reason)
		assert.Equal(t, 30*time.Second, r.RetryAfter)
		assert.Equal(t, 1, body.closes(), "the request body is closed exactly once")
		assert.Equal(t, 1, u.count(), "nothing was sent")

		// MaxWait (40 s) bounds a request without deadline: gate at 30 s fits.
		status, _, err := pcDo(t, rt, pcReq(t.Context(), "m", "3"))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, 30*time.Second, time.Since(start))

		// …and refuses one that would wait longer.
		u.reply = func(int, *http.Request) *http.Response {
			return pcResp(http.StatusTooManyRequests, `{"error":{"code":"rate_limit_exceeded","message":"x"}}`, "Retry-After", "50")
		}
		pcDo(t, rt, pcReq(t.Context(), "m", "4"))
		resp, err = rt.RoundTrip(pcReq(t.Context(), "m", "5"))
		require.NoError(t, err)
		r, ok = llmhttp.RefusalOf(resp)
		require.True(t, ok)
		assert.Equal(t, llmhttp.ReasonWaitTooLong, r.Reason)
		emu.Lock()
		defer emu.Unlock()
		var refused int
		for _, e := range events {
			if e.Refusal != nil {
				refused++
				assert.Equal(t, "gate", e.Cause)
			}
		}
		assert.Equal(t, 2, refused)
	})
}

// A waiting request whose context ends returns at once with the context's
// error; the requests behind it move up.
func TestPacerCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 1 {
				return pcResp(http.StatusTooManyRequests, `{}`, "Retry-After", "10")
			}
			return nil
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{GateSpacing: -1})
		rt := p.Wrap(u)
		pcDo(t, rt, pcReq(t.Context(), "m", "1"))
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, _, err := pcDo(t, rt, pcReq(ctx, "m", "2"))
			errc <- err
		}()
		synctest.Wait()
		done := make(chan struct{})
		go func() {
			defer close(done)
			pcDo(t, rt, pcReq(t.Context(), "m", "3"))
		}()
		synctest.Wait()
		start := time.Now()
		cancel()
		err := <-errc
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, time.Duration(0), time.Since(start))
		<-done
		assert.Equal(t, 2, u.count())
		assert.Equal(t, 0, pcStats(t, p).Queued)
	})
}

// slow_down cuts the sending rate in half; it recovers linearly and the cap
// is lifted after RecoveryTime.
func TestPacerSlowDownAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := false
		var mu sync.Mutex
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			mu.Lock()
			defer mu.Unlock()
			if slow {
				slow = false
				return pcResp(http.StatusTooManyRequests, `{"error":{"type":"rate_limit_error","code":"slow_down","message":"ramp"}}`)
			}
			return nil
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{RecoveryTime: time.Minute, UnhintedDelay: -1})
		rt := p.Wrap(u)
		// Ten requests a second for 20 s.
		for i := range 200 {
			pcDo(t, rt, pcReq(t.Context(), "m", "w"+string(rune(i))))
			time.Sleep(100 * time.Millisecond)
		}
		assert.Zero(t, pcStats(t, p).SendRate, "no cap before a slow_down")
		mu.Lock()
		slow = true
		mu.Unlock()
		status, _, _ := pcDo(t, rt, pcReq(t.Context(), "m", "slow"))
		require.Equal(t, http.StatusTooManyRequests, status)
		cut := pcStats(t, p).SendRate
		assert.InDelta(t, 5, cut, 0.3, "halved from about 10/s")

		// Sent as fast as allowed: about 1/cut apart.
		n0 := u.count()
		start := time.Now()
		for range 5 {
			pcDo(t, rt, pcReq(t.Context(), "m", "fast"))
		}
		log := u.log()[n0:]
		require.Len(t, log, 5)
		gap := log[4].at.Sub(log[1].at) / 3
		assert.InDelta(t, float64(time.Second)/cut, float64(gap), float64(20*time.Millisecond))
		assert.Less(t, time.Since(start), 2*time.Second)

		// Half way through the recovery, half way back.
		time.Sleep(30*time.Second - time.Since(start))
		assert.InDelta(t, cut*1.5, pcStats(t, p).SendRate, 0.4)
		time.Sleep(31 * time.Second)
		assert.Zero(t, pcStats(t, p).SendRate, "the cap is lifted after the recovery time")
	})
}

// A single overload answer on a quiet partition — a request every few
// seconds — slows nothing down: there is no rate to measure, and cutting
// "the rate" of one request would space every later request seconds apart
// for the whole recovery.
func TestPacerSlowDownIgnoresQuietPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 4 {
				return pcResp(529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
			}
			return nil
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{})
		rt := p.Wrap(u)
		for i := range 4 {
			pcDo(t, rt, pcReq(t.Context(), "m", "quiet"+string(rune('0'+i))))
			time.Sleep(3 * time.Second)
		}
		assert.Zero(t, pcStats(t, p).SendRate, "no cap on a quiet partition")
		start := time.Now()
		for range 5 {
			pcDo(t, rt, pcReq(t.Context(), "m", "next"))
		}
		assert.Zero(t, time.Since(start), "the next requests go at once")
	})
}

// A cut never brings the rate below 1 request a second, nor below a tenth
// of the server's own request limit; the cap then recovers linearly.
func TestPacerSlowDownFloor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		floor   float64
	}{
		{"no limit known", nil, 1},
		{"a tenth of 3000 RPM", pcOpenAIHeaders(3000, 2990), 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				slow := false
				u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
					mu.Lock()
					defer mu.Unlock()
					if slow {
						slow = false
						return pcResp(http.StatusTooManyRequests, `{"error":{"type":"rate_limit_error","code":"slow_down","message":"ramp"}}`)
					}
					return pcResp(http.StatusOK, `{}`, tc.headers...)
				}}
				p := llmhttp.NewPacer(llmhttp.PacerSettings{SlowDownFactor: 0.05, UnhintedDelay: -1, RecoveryTime: time.Minute})
				rt := p.Wrap(u)
				for range 300 { // 10 a second for 30 s
					pcDo(t, rt, pcReq(t.Context(), "m", "w"))
					time.Sleep(100 * time.Millisecond)
				}
				mu.Lock()
				slow = true
				mu.Unlock()
				pcDo(t, rt, pcReq(t.Context(), "m", "slow"))
				assert.InDelta(t, tc.floor, pcStats(t, p).SendRate, 1e-9, "0.05 × 10/s is below the floor")
				time.Sleep(30 * time.Second)
				assert.InDelta(t, (tc.floor+10)/2, pcStats(t, p).SendRate, 0.1, "half way back to 10/s")
			})
		})
	}
}

// A request made with an earlier request's context (resp.Request.Context())
// is its own: its own model and partition, its own estimate, its own place
// in the queue — not the earlier request's, which its context carries —
// through New and through Chain(Retry, Pacer) alike; and the retry layer's
// attempts of it still share one memory.
func TestPacerRequestWithInheritedContext(t *testing.T) {
	for _, mode := range []string{"New", "Chain"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				betas := 0
				u := &pcUpstream{reply: func(n int, req *http.Request) *http.Response {
					mu.Lock()
					defer mu.Unlock()
					if llmhttp.DefaultPartition(req).Model == "beta" {
						if betas++; betas == 1 {
							return pcResp(http.StatusTooManyRequests, `{"error":{"code":"rate_limit_exceeded","message":"x"}}`, "Retry-After", "1")
						}
					}
					return nil
				}}
				estimated := map[string]int{}
				p := llmhttp.NewPacer(llmhttp.PacerSettings{Estimator: func(req *http.Request, def llmhttp.Estimate) llmhttp.Estimate {
					mu.Lock()
					defer mu.Unlock()
					estimated[llmhttp.DefaultPartition(req).Model]++
					return def
				}})
				first := llmhttp.New(u, llmhttp.WithoutBreaker(), llmhttp.WithPacer(p))
				var second http.RoundTripper = first
				if mode == "Chain" {
					second = llmhttp.Chain(u, llmhttp.Retry(llmhttp.RetryPolicy{}), p.Wrap)
				}
				respA, err := first.RoundTrip(pcReq(context.Background(), "alpha", "a"))
				require.NoError(t, err)
				io.Copy(io.Discard, respA.Body)
				respA.Body.Close()

				reqB := pcReq(respA.Request.Context(), "beta", "b")
				assert.Equal(t, "beta", llmhttp.DefaultPartition(reqB).Model, "the request's own model, not its context's")
				status, _, err := pcDo(t, second, reqB)
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)

				var models []string
				for _, st := range p.Stats() {
					models = append(models, st.Partition.Model)
				}
				assert.Equal(t, []string{"alpha", "beta"}, models, "one partition each")
				mu.Lock()
				defer mu.Unlock()
				assert.Equal(t, 2, betas, "beta retried once")
				assert.Equal(t, map[string]int{"alpha": 1, "beta": 1}, estimated, "each estimated once, beta across its two attempts")
			})
		})
	}
}

// Waiting requests go by priority, then arrival.
func TestPacerPriorityOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 1 {
				<-release
			}
			return nil
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{MaxConcurrent: 1})
		rt := p.Wrap(u)
		var wg sync.WaitGroup
		send := func(id string, prio llmhttp.Priority) {
			wg.Go(func() {
				_, _, err := pcDo(t, rt, pcReq(llmhttp.WithPriority(t.Context(), prio), "m", id))
				assert.NoError(t, err)
			})
			synctest.Wait()
		}
		send("holder", llmhttp.PriorityLow)
		send("low", llmhttp.PriorityLow)
		send("normal1", llmhttp.PriorityNormal)
		send("high", llmhttp.PriorityHigh)
		send("critical", llmhttp.PriorityCritical)
		send("normal2", llmhttp.PriorityNormal)
		st := pcStats(t, p)
		assert.Equal(t, 1, st.InFlight)
		assert.Equal(t, 5, st.Queued)
		close(release)
		wg.Wait()
		var order []string
		for _, s := range u.log() {
			order = append(order, s.id)
		}
		assert.Equal(t, []string{"holder", "critical", "high", "normal1", "normal2", "low"}, order)
	})
}

func TestPriorityContext(t *testing.T) {
	assert.Equal(t, llmhttp.PriorityNormal, llmhttp.PriorityOf(context.Background()))
	ctx := llmhttp.WithPriority(context.Background(), llmhttp.PriorityHigh)
	assert.Equal(t, llmhttp.PriorityHigh, llmhttp.PriorityOf(ctx))
	assert.Equal(t, "critical", llmhttp.PriorityCritical.String())
	assert.Equal(t, "priority(7)", llmhttp.Priority(7).String())
}

// A streamed response holds its concurrency slot until its body ends.
func TestPacerConcurrencyCapHoldsStreamsUntilBodyEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusOK, "data: {}\n\n", "Content-Type", "text/event-stream")
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{MaxConcurrent: 1})
		rt := p.Wrap(u)
		stream := func(id string) *http.Request {
			body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.example.test/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer k")
			req.Header.Set("X-Test-Id", id)
			return req
		}
		resp, err := rt.RoundTrip(stream("1"))
		require.NoError(t, err)
		done := make(chan struct{})
		go func() {
			defer close(done)
			pcDo(t, rt, stream("2"))
		}()
		synctest.Wait()
		assert.Equal(t, 1, u.count(), "the second stream waits for the first to end")
		io.Copy(io.Discard, resp.Body)
		synctest.Wait()
		assert.Equal(t, 2, u.count(), "reading the first to EOF frees the slot")
		resp.Body.Close()
		<-done
		assert.Equal(t, 0, pcStats(t, p).InFlight)
	})
}

// A quota answer latches the partition: later requests are refused locally
// until the latch ends.
func TestPacerQuotaLatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 1 {
				return pcResp(http.StatusTooManyRequests, `{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota"}}`)
			}
			return nil
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{QuotaLatch: 5 * time.Minute})
		rt := p.Wrap(u)
		status, _, _ := pcDo(t, rt, pcReq(t.Context(), "m", "1"))
		require.Equal(t, http.StatusTooManyRequests, status)
		resp, err := rt.RoundTrip(pcReq(t.Context(), "m", "2"))
		require.NoError(t, err)
		r, ok := llmhttp.RefusalOf(resp)
		require.True(t, ok)
		assert.Equal(t, llmhttp.ReasonQuota, r.Reason)
		assert.Equal(t, 5*time.Minute, r.RetryAfter)
		assert.True(t, errors.Is(r, llmhttp.ErrQuotaExhausted))
		assert.Equal(t, 1, u.count())
		// Another model is not latched.
		status, _, _ = pcDo(t, rt, pcReq(t.Context(), "other", "3"))
		assert.Equal(t, http.StatusOK, status)
		time.Sleep(5 * time.Minute)
		status, _, _ = pcDo(t, rt, pcReq(t.Context(), "m", "4"))
		assert.Equal(t, http.StatusOK, status)
	})
}

// Anthropic's monthly spend cap latches until the first of next month
// (llm-wire §5.2 row 4); MaxQuotaLatch bounds it.
func TestPacerSpendCapLatchesUntilNextMonth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusTooManyRequests,
				`{"type":"error","error":{"type":"rate_limit_error","message":"spend","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_1"}`,
				"Request-Id", "req_1")
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{})
		rt := p.Wrap(u)
		req := func() *http.Request {
			r, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.anthropic.test/v1/messages",
				strings.NewReader(`{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`))
			r.Header.Set("X-Api-Key", "k")
			r.Header.Set("Anthropic-Version", "2023-06-01")
			return r
		}
		pcDo(t, rt, req())
		now := time.Now().UTC()
		want := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		assert.Equal(t, want, pcStats(t, p).QuotaUntil)

		p2 := llmhttp.NewPacer(llmhttp.PacerSettings{MaxQuotaLatch: time.Hour})
		pcDo(t, p2.Wrap(u), req())
		assert.Equal(t, time.Now().Add(time.Hour), pcStats(t, p2).QuotaUntil)
	})
}

// Limits given up front pace the very first burst.
func TestPacerUpfrontLimitsPaceFirstBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			MaxWait: -1,
			Limits:  map[string]llmhttp.Limits{"": {Requests: llmhttp.Limit{Limit: 60}}},
		})
		rt := p.Wrap(u)
		start := time.Now()
		var wg sync.WaitGroup
		for range 70 {
			wg.Go(func() { pcDo(t, rt, pcReq(t.Context(), "m", "x")) })
		}
		wg.Wait()
		log := u.log()
		require.Len(t, log, 70)
		for i, s := range log {
			want := time.Duration(0)
			if i >= 60 {
				want = time.Duration(i-59) * time.Second
			}
			assert.Equal(t, want, s.at.Sub(start), "request %d", i)
		}
	})
}

// The pacer learns the average output and the input ratio from the usage
// in the bodies the caller reads.
func TestPacerLearnsUsage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusOK, `{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":30,"completion_tokens":200,"total_tokens":230}}`)
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{})
		rt := p.Wrap(u)
		for range 50 {
			pcDo(t, rt, pcReq(t.Context(), "m", "x"))
		}
		st := pcStats(t, p)
		assert.InDelta(t, 200, st.AvgOutputTokens, 1)
		// The body's text is "m", "user", "hello there": about 4 tokens.
		assert.Greater(t, st.InputRatio, 3.0)
	})
}

// The estimate reads the body through GetBody, leaves the caller's body
// alone, and a custom Estimator is called once per request, retries
// included.
func TestPacerEstimatorOncePerRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 1 {
				return pcResp(http.StatusTooManyRequests, `{}`, "Retry-After", "1")
			}
			return nil
		}}
		var calls int
		var seen llmhttp.Estimate
		p := llmhttp.NewPacer(llmhttp.PacerSettings{Estimator: func(req *http.Request, def llmhttp.Estimate) llmhttp.Estimate {
			calls++
			seen = def
			def.InputTokens = 7
			return def
		}})
		tr := llmhttp.New(u, llmhttp.WithoutBreaker(), llmhttp.WithPacer(p))
		req := pcReq(t.Context(), "m", "1")
		status, _, err := pcDo(t, tr, req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, 2, u.count())
		assert.Equal(t, 1, calls)
		assert.EqualValues(t, 10, seen.MaxOutputTokens)
		assert.Positive(t, seen.InputTokens)
	})
}

// The output charging rule is inferred from the headers under both of
// llmhttptest's rules, for both dialects, starting from each provider's
// documented one.
func TestPacerInfersChargingRule(t *testing.T) {
	for _, c := range []struct {
		prov   llmhttptest.Provider
		charge llmhttptest.Charge
		want   llmhttp.OutputCharging
	}{
		{llmhttptest.Anthropic, llmhttptest.ChargeGenerated, llmhttp.OutputGenerated},
		{llmhttptest.Anthropic, llmhttptest.ChargeReserved, llmhttp.OutputReserved},
		{llmhttptest.OpenAI, llmhttptest.ChargeReserved, llmhttp.OutputReserved},
		{llmhttptest.OpenAI, llmhttptest.ChargeGenerated, llmhttp.OutputGenerated},
	} {
		t.Run(c.prov.String()+"-"+c.charge.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := llmhttptest.NewHandler(llmhttptest.Config{
					AnthropicCharge: c.charge, OpenAICharge: c.charge,
					Latency: 500 * time.Millisecond, TokenLatency: 10 * time.Millisecond,
				})
				tr := llmhttp.New(h.Transport(), llmhttp.WithPacerSettings(llmhttp.PacerSettings{MaxWait: -1}))
				var wg sync.WaitGroup
				for i := range 120 {
					wg.Go(func() {
						req := llmhttptest.NewRequest(t.Context(), c.prov, "", "sk-workload", llmhttptest.Body(c.prov, "model", pcMix[i%len(pcMix)].input, pcMix[i%len(pcMix)].maxTokens))
						status, _, err := pcDo(t, tr, req)
						assert.NoError(t, err)
						assert.Equal(t, http.StatusOK, status)
					})
				}
				wg.Wait()
				st := tr.Pacer().Stats()
				require.Len(t, st, 1)
				assert.Equal(t, c.want, st[0].OutputCharging)
				assert.InDelta(t, 100, st[0].AvgOutputTokens, 40, "the average output is learned from the usage")
			})
		})
	}
}

// An overload answer with Retry-After closes the gate and cuts the sending
// rate; the partition function and up-front limits by function are used.
func TestPacerOverloadGateAndPartitionFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n == 21 {
				return pcResp(529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, "Retry-After", "5", "Request-Id", "req_1")
			}
			return nil
		}}
		var asked []llmhttp.Partition
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			GateSpacing: -1,
			Partition:   func(r *http.Request) llmhttp.Partition { return llmhttp.Partition{Host: "all", Model: "one"} },
			LimitsFunc: func(k llmhttp.Partition) llmhttp.Limits {
				asked = append(asked, k)
				return llmhttp.Limits{Requests: llmhttp.Limit{Limit: 600}}
			},
		})
		rt := p.Wrap(u)
		for i := range 21 {
			pcDo(t, rt, pcReq(t.Context(), "m"+string(rune('a'+i%2)), "x"))
		}
		st := pcStats(t, p)
		assert.Equal(t, llmhttp.Partition{Host: "all", Model: "one"}, st.Partition, "every request in the one partition")
		assert.Equal(t, []llmhttp.Partition{{Host: "all", Model: "one"}}, asked, "up-front limits asked once")
		assert.EqualValues(t, 600, st.Requests.Limit)
		assert.Equal(t, time.Now().Add(5*time.Second), st.GateUntil)
		assert.InDelta(t, 0.7*21/5, st.SendRate, 0.01, "the overload cut the sending rate: 21 requests in the last 5 s")
		start := time.Now()
		pcDo(t, rt, pcReq(t.Context(), "mc", "x"))
		assert.Equal(t, 5*time.Second, time.Since(start))
	})
}

// Wrap forwards CloseIdleConnections.
func TestPacerForwardsCloseIdleConnections(t *testing.T) {
	var closed bool
	base := &pcCloser{RoundTripper: &pcUpstream{}, closed: &closed}
	rt := llmhttp.NewPacer(llmhttp.PacerSettings{}).Wrap(base)
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	assert.True(t, closed)
}

type pcCloser struct {
	http.RoundTripper
	closed *bool
}

func (c *pcCloser) CloseIdleConnections() { *c.closed = true }

// Until the pacer knows how the server charges output, a request needs
// room for its max_tokens in this client's share of the bucket on top of
// the max_tokens of the requests in flight that the last report cannot
// show: a server that reserves max_tokens holds theirs too. Otherwise each
// of the clients of a shared key that read the same full bucket would send
// max_tokens worth a whole bucket, one request at a time.
func TestPacerKeepsRoomForMaxTokensInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			if n > 1 {
				<-release // the requests stay in flight
			}
			return pcResp(http.StatusOK, `{"type":"message","usage":{"input_tokens":10,"output_tokens":100}}`,
				"Anthropic-Ratelimit-Output-Tokens-Limit", "8000",
				"Anthropic-Ratelimit-Output-Tokens-Remaining", "8000",
				"Anthropic-Ratelimit-Output-Tokens-Reset", time.Now().UTC().Format(time.RFC3339))
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{MaxWait: -1})
		rt := p.Wrap(u)
		req := func(maxTokens int) *http.Request {
			r, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.anthropic.test/v1/messages",
				strings.NewReader(`{"model":"claude","max_tokens":`+strconv.Itoa(maxTokens)+`,"messages":[{"role":"user","content":"x"}]}`))
			r.Header.Set("X-Api-Key", "k")
			r.Header.Set("Anthropic-Version", "2023-06-01")
			return r
		}
		// The first report: a full bucket of 8,000, a quarter of it believed
		// (other clients may read it too); 100 tokens generated.
		pcDo(t, rt, req(1500))
		st := pcStats(t, p)
		require.Equal(t, llmhttp.OutputGenerated, st.OutputCharging)
		require.InDelta(t, 2000, st.OutputTokens.Level, 1)

		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { pcDo(t, rt, req(1500)) })
		}
		synctest.Wait()
		// The first goes (charged its expected 100, with room for 1,500);
		// the second would fit 1,500 in the 1,900 left, but not on top of
		// the 1,400 more the first may hold.
		assert.Equal(t, 2, u.count(), "the second request waits")
		time.Sleep(time.Second)
		close(release)
		wg.Wait()
		log := u.log()
		require.Len(t, log, 3)
		assert.Equal(t, start, log[1].at)
		assert.Equal(t, start.Add(time.Second), log[2].at, "sent when the first answer came")
	})
}

// A bucket that is only charged and refilled is full again no sooner than
// it last said: resets moving earlier show output given back, so the pacer
// learns that the server reserves max_tokens from the headers alone,
// without the 429 that the room it keeps for max_tokens (while the rule is
// unknown) prevents.
func TestPacerLearnsReservationFromRefunds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		var fullAt []time.Duration // when each report says the bucket is full
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusOK, `{"type":"message","usage":{"input_tokens":10,"output_tokens":100}}`,
				"Anthropic-Ratelimit-Output-Tokens-Limit", "8000",
				"Anthropic-Ratelimit-Output-Tokens-Remaining", "4000",
				"Anthropic-Ratelimit-Output-Tokens-Reset", t0.Add(fullAt[n-1]).UTC().Format(time.RFC3339))
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{MaxWait: -1})
		rt := p.Wrap(u)
		send := func(full time.Duration) llmhttp.OutputCharging {
			fullAt = append(fullAt, full)
			r, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://api.anthropic.test/v1/messages",
				strings.NewReader(`{"model":"claude","max_tokens":1000,"messages":[{"role":"user","content":"x"}]}`))
			r.Header.Set("X-Api-Key", "k")
			r.Header.Set("Anthropic-Version", "2023-06-01")
			pcDo(t, rt, r)
			return pcStats(t, p).OutputCharging
		}
		// Charges only: the instant moves later or stays.
		for _, full := range []time.Duration{30, 30, 45, 60, 60} {
			assert.Equal(t, llmhttp.OutputGenerated, send(full*time.Second))
		}
		// Given back: earlier by 15 s, then by 1 s, within a reset's
		// resolution, then by 15 s again.
		assert.Equal(t, llmhttp.OutputGenerated, send(45*time.Second), "one refund")
		assert.Equal(t, llmhttp.OutputGenerated, send(44*time.Second), "within the resolution")
		assert.Equal(t, llmhttp.OutputReserved, send(29*time.Second), "a second refund")
	})
}
