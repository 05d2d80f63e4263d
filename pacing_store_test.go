package llmhttp_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// fakeStore is an in-memory llmhttp.PacerStore, as a Redis one would keep
// it: per partition a continuously refilling bucket per dimension
// (reserve-and-wait, refunds clamped to the capacity, force-debits) and a
// "closed until" gate. Pacers given the same fakeStore behave as pacers in
// separate processes sharing Redis.
type fakeStore struct {
	mu     sync.Mutex
	parts  map[llmhttp.Partition]*fakePart
	calls  int
	onCall func() // called outside the store's lock, at each call
	fail   error  // returned by every call when set
	block  bool   // every call waits for its context to end
	// horizon, when positive, is how far ahead a reservation may wait:
	// one that would wait longer is declined (nothing debited) and told
	// to come back when its wait is down to the horizon.
	horizon time.Duration
	maxBack time.Duration // when positive, a declined one comes back sooner
	ids     []uint64      // the Reservation.IDs, in the order of the calls
}

type fakePart struct {
	buckets [llmhttp.NumDimensions]fakeBucket
	gate    time.Time
}

type fakeBucket struct {
	lim   llmhttp.BucketLimit
	level float64
	last  time.Time
}

func (b *fakeBucket) advance(now time.Time, lim llmhttp.BucketLimit) {
	if lim.Capacity > 0 {
		if b.lim.Capacity == 0 {
			b.level, b.last = lim.Capacity, now // a new bucket starts full
		}
		b.lim = lim
	}
	if b.lim.Capacity == 0 {
		return
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.level = min(b.lim.Capacity, b.level+dt*b.lim.PerSecond)
		b.last = now
	}
}

func (s *fakeStore) enter(ctx context.Context) error {
	if s.onCall != nil {
		s.onCall()
	}
	s.mu.Lock()
	s.calls++
	fail, block := s.fail, s.block
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return fail
}

func (s *fakeStore) part(key llmhttp.Partition) *fakePart {
	if s.parts == nil {
		s.parts = map[llmhttp.Partition]*fakePart{}
	}
	p := s.parts[key]
	if p == nil {
		p = &fakePart{}
		s.parts[key] = p
	}
	return p
}

func (s *fakeStore) Reserve(ctx context.Context, key llmhttp.Partition, r llmhttp.Reservation) (llmhttp.Grant, error) {
	if err := s.enter(ctx); err != nil {
		return llmhttp.Grant{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, r.ID)
	p := s.part(key)
	var g llmhttp.Grant
	for d := range p.buckets {
		b := &p.buckets[d]
		b.advance(r.Now, r.Limits[d])
		if b.lim.Capacity == 0 {
			continue
		}
		b.level -= min(r.Cost[d], b.lim.Capacity)
		if b.level < 0 {
			g.Wait = max(g.Wait, time.Duration(math.Ceil(-b.level/b.lim.PerSecond*float64(time.Second))))
		}
		g.Levels[d], g.Known[d] = b.level, true
	}
	if s.horizon > 0 && g.Wait > s.horizon {
		for d := range p.buckets {
			if b := &p.buckets[d]; b.lim.Capacity > 0 {
				b.level += min(r.Cost[d], b.lim.Capacity)
				g.Levels[d] = b.level
			}
		}
		g.Wait -= s.horizon
		if s.maxBack > 0 {
			g.Wait = min(g.Wait, s.maxBack)
		}
		g.Declined = true
	}
	g.GateUntil = p.gate
	return g, nil
}

func (s *fakeStore) Settle(ctx context.Context, key llmhttp.Partition, st llmhttp.Settlement) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.part(key)
	for d := range p.buckets {
		b := &p.buckets[d]
		b.advance(st.Now, st.Limits[d])
		if b.lim.Capacity == 0 {
			continue
		}
		b.level = min(b.lim.Capacity, b.level+st.Refund[d]) - st.Debit[d]
		if st.ReportedKnown[d] {
			b.level = min(b.level, st.Reported[d])
		}
	}
	if st.GateUntil.After(p.gate) {
		p.gate = st.GateUntil
	}
	return nil
}

func (s *fakeStore) level(key llmhttp.Partition, d llmhttp.Dimension, now time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &s.part(key).buckets[d]
	b.advance(now, llmhttp.BucketLimit{})
	return b.level
}

// Two processes (two Pacers) on one key, each with the limits up front,
// send their bursts at once. Through a shared store they share the bucket:
// 60 requests go at once, then one a second, and the server answers no
// 429; without it each believes the whole bucket is its own, and the
// server refuses half the burst.
func TestPacerStoreSharesBucketsBetweenProcesses(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := "without store"
		if shared {
			name = "with store"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := llmhttptest.NewHandler(llmhttptest.Config{
					OpenAI:  llmhttptest.Limits{RPM: 60, TPM: llmhttptest.Unlimited},
					Latency: 500 * time.Millisecond,
				})
				store := &fakeStore{}
				var procs []*llmhttp.Pacer
				for range 2 {
					s := llmhttp.PacerSettings{
						MaxWait: -1,
						Limits:  map[string]llmhttp.Limits{"": {Requests: llmhttp.Limit{Limit: 60}}},
					}
					if shared {
						s.Store = store
						// Each process asks the store outside its locks: a
						// call made while holding one would deadlock here,
						// and the bubble would report it.
						store.onCall = func() {
							for _, p := range procs {
								p.Stats()
							}
						}
					}
					procs = append(procs, llmhttp.NewPacer(s))
				}
				var mu sync.Mutex
				var sent []time.Duration
				start := time.Now()
				base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
					mu.Lock()
					sent = append(sent, time.Since(start))
					mu.Unlock()
					return h.Transport().RoundTrip(req)
				})
				var wg sync.WaitGroup
				for _, p := range procs {
					rt := p.Wrap(base)
					for range 40 {
						wg.Go(func() {
							req := llmhttptest.NewRequest(context.Background(), llmhttptest.OpenAI, "", "sk-workload", llmhttptest.Body(llmhttptest.OpenAI, "model", 10, 5))
							resp, err := rt.RoundTrip(req)
							require.NoError(t, err)
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						})
					}
				}
				wg.Wait()
				throttled := h.Stats().ByStatus[http.StatusTooManyRequests]
				if !shared {
					assert.Positive(t, throttled, "each process believes the 60 its own")
					return
				}
				assert.Zero(t, throttled)
				require.Len(t, sent, 80)
				at := 0
				for _, d := range sent {
					if d == 0 {
						at++
					}
				}
				assert.Equal(t, 60, at, "60 at once between them")
				assert.InDelta(t, 20*time.Second, sent[79], float64(time.Second), "then one a second")
				for _, p := range procs {
					assert.Zero(t, pcStats(t, p).StoreErrors)
				}
			})
		})
	}
}

// A 429 in one process closes the shared gate: the other process's next
// request waits behind it instead of finding its own 429.
func TestPacerStoreSharesGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		var mu sync.Mutex
		first := true
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			mu.Lock()
			defer mu.Unlock()
			if first {
				first = false
				return pcResp(http.StatusTooManyRequests, `{"error":{"type":"requests","code":"rate_limit_exceeded","message":"slow"}}`, "Retry-After", "10")
			}
			return nil
		}}
		a := llmhttp.NewPacer(llmhttp.PacerSettings{Store: store}).Wrap(u)
		b := llmhttp.NewPacer(llmhttp.PacerSettings{Store: store})
		start := time.Now()
		status, _, err := pcDo(t, a, pcReq(t.Context(), "m", "a"))
		require.NoError(t, err)
		require.Equal(t, http.StatusTooManyRequests, status)

		// Process b has not heard the 429: its first request reserves in
		// the store, learns of the gate, and waits for it.
		status, _, err = pcDo(t, b.Wrap(u), pcReq(t.Context(), "m", "b"))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		log := u.log()
		require.Len(t, log, 2)
		assert.Equal(t, 10*time.Second, log[1].at.Sub(start), "b waited behind a's gate")
		assert.Equal(t, start.Add(10*time.Second), pcStats(t, b).GateUntil)
	})
}

// The store learns each answer's truth: a reservation's unused part comes
// back (never above the capacity), the server's lower report wins, and a
// request whose shared wait does not fit its deadline is refused at once
// and its reservation given back.
func TestPacerStoreReconciles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusOK, `{"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`,
				"X-Ratelimit-Limit-Tokens", "6000", "X-Ratelimit-Remaining-Tokens", "5000", "X-Ratelimit-Reset-Tokens", "10s")
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			Store:  store,
			Limits: map[string]llmhttp.Limits{"": {Tokens: llmhttp.Limit{Limit: 6000}}},
		})
		rt := p.Wrap(u)
		pcDo(t, rt, pcReq(t.Context(), "m", "1"))
		key := pcStats(t, p).Partition
		// The request reserved its input and max_tokens (10), got back the
		// 7 it did not generate, and the report (5,000 left) won.
		assert.InDelta(t, 5000, store.level(key, llmhttp.DimTokens, time.Now()), 1e-6)

		// A request whose shared wait exceeds its deadline: refused at once,
		// its reservation given back.
		store.mu.Lock()
		store.parts[key].buckets[llmhttp.DimTokens].level = -6000 // a minute of debt
		store.mu.Unlock()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		before := u.count()
		r := pcRefused(t, rt, pcReq(ctx, "m", "2"))
		assert.Equal(t, llmhttp.ReasonWaitTooLong, r.Reason)
		assert.Zero(t, time.Since(start))
		assert.Equal(t, before, u.count(), "not sent")
		assert.InDelta(t, -6000, store.level(key, llmhttp.DimTokens, time.Now()), 1e-6, "the reservation was given back")
		assert.Zero(t, pcStats(t, p).InFlight)
	})
}

// A store that fails, or does not answer within StoreTimeout, is skipped:
// the request goes as the pacer's own buckets decide, and the failure is
// counted.
func TestPacerStoreFailureFallsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &pcUpstream{reply: func(int, *http.Request) *http.Response {
			return pcResp(http.StatusOK, `{}`, pcOpenAIHeaders(60, 59)...)
		}}
		broken := &fakeStore{fail: errors.New("redis: connection refused")}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{Store: broken})
		status, _, err := pcDo(t, p.Wrap(u), pcReq(t.Context(), "m", "1"))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		assert.EqualValues(t, 2, pcStats(t, p).StoreErrors, "the reservation and the settlement")

		slow := &fakeStore{block: true}
		p = llmhttp.NewPacer(llmhttp.PacerSettings{Store: slow, StoreTimeout: 20 * time.Millisecond})
		start := time.Now()
		status, _, err = pcDo(t, p.Wrap(u), pcReq(t.Context(), "m", "2"))
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, 40*time.Millisecond, time.Since(start), "each call bounded by StoreTimeout")
		assert.EqualValues(t, 2, pcStats(t, p).StoreErrors)
	})
}

// A store may decline a reservation that would wait beyond its horizon:
// the pacer waits as told and asks again with the same ID, and sends once
// the store reserves. Nothing stands in the store for the declined asks:
// a request that then gives up (its deadline, its context) gives nothing
// back.
func TestPacerStoreDeclined(t *testing.T) {
	// declined returns a pacer on a store whose request bucket, after one
	// request taught the pacer its partition, is 5 in debt: the store
	// declines the next request for 5 s.
	declined := func(t *testing.T) (*fakeStore, *pcUpstream, *llmhttp.Pacer, http.RoundTripper, llmhttp.Partition) {
		store := &fakeStore{horizon: time.Second}
		u := &pcUpstream{}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			Store:   store,
			MaxWait: -1,
			Limits:  map[string]llmhttp.Limits{"": {Requests: llmhttp.Limit{Limit: 60}}},
		})
		rt := p.Wrap(u)
		pcDo(t, rt, pcReq(t.Context(), "m", "1"))
		key := pcStats(t, p).Partition
		store.mu.Lock()
		store.parts[key].buckets[llmhttp.DimRequests].level = -5 // 6 s until a request fits
		store.mu.Unlock()
		return store, u, p, rt, key
	}
	t.Run("asks again", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store, u, p, rt, _ := declined(t)
			start := time.Now()
			status, _, err := pcDo(t, rt, pcReq(t.Context(), "m", "2"))
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, status)
			log := u.log()
			require.Len(t, log, 2)
			assert.Equal(t, 6*time.Second, log[1].at.Sub(start), "declined, back at 5 s, reserved 1 s ahead")
			st := pcStats(t, p)
			assert.EqualValues(t, 1, st.StoreDeclines)
			store.mu.Lock()
			ids := store.ids
			store.mu.Unlock()
			require.Len(t, ids, 3)
			assert.NotZero(t, ids[1])
			assert.Equal(t, ids[1], ids[2], "the same request asks again with its ID")
			assert.NotEqual(t, ids[0], ids[1])
		})
	})
	t.Run("deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store, u, p, rt, key := declined(t)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			start := time.Now()
			r := pcRefused(t, rt, pcReq(ctx, "m", "2")) // declined for 5 s: does not fit 3 s
			assert.Equal(t, llmhttp.ReasonWaitTooLong, r.Reason)
			assert.Zero(t, time.Since(start))
			assert.Equal(t, 1, u.count(), "not sent")
			assert.InDelta(t, -5, store.level(key, llmhttp.DimRequests, time.Now()), 1e-9, "nothing given back for a decline")
			assert.Zero(t, pcStats(t, p).InFlight)
		})
	})
	t.Run("cancelled while declined", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store, u, p, rt, key := declined(t)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := rt.RoundTrip(pcReq(ctx, "m", "2"))
				done <- err
			}()
			time.Sleep(2 * time.Second)
			cancel()
			err := <-done
			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, 2*time.Second, time.Since(start), "returned at once")
			assert.Equal(t, 1, u.count(), "not sent")
			assert.InDelta(t, -5+2, store.level(key, llmhttp.DimRequests, time.Now()), 1e-9, "nothing given back for a decline")
			assert.Zero(t, pcStats(t, p).InFlight)
		})
	})
}

// lineProcess returns a pacer on store that knows no limits of its own (it
// admits everything at once, as a replica does that has not seen the
// others' traffic) and its transport on u, after one request taught it
// its partition; the store's request bucket is then 60 a minute at level.
// maxWait is the pacer's MaxWait.
func lineProcess(t *testing.T, store *fakeStore, u http.RoundTripper, level float64, maxWait time.Duration) (*llmhttp.Pacer, http.RoundTripper, llmhttp.Partition) {
	t.Helper()
	p := llmhttp.NewPacer(llmhttp.PacerSettings{Store: store, MaxWait: maxWait})
	rt := p.Wrap(u)
	pcDo(t, rt, pcReq(t.Context(), "m", "first"))
	key := pcStats(t, p).Partition
	store.mu.Lock()
	store.part(key).buckets[llmhttp.DimRequests] = fakeBucket{
		lim: llmhttp.BucketLimit{Capacity: 60, PerSecond: 1}, level: level, last: time.Now(),
	}
	store.calls = 0
	store.mu.Unlock()
	return p, rt, key
}

// Under overload, one request of a process asks the store again at a time:
// the others the store declined wait behind it, in the order they came,
// without asking (one round trip per admission, not one per request each
// time the store says to come back).
func TestPacerStoreDeclinedLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{horizon: time.Second, maxBack: 2 * time.Second}
		u := &pcUpstream{}
		p, rt, _ := lineProcess(t, store, u, -5, -1)

		start := time.Now()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				status, _, err := pcDo(t, rt, pcReq(t.Context(), "m", strconv.Itoa(i)))
				assert.NoError(t, err)
				assert.Equal(t, http.StatusOK, status)
			})
			synctest.Wait() // in this order
		}
		wg.Wait()
		log := u.log()
		require.Len(t, log, 11)
		for i, s := range log[1:] {
			assert.Equal(t, strconv.Itoa(i), s.id, "in the order they came")
			assert.Equal(t, time.Duration(6+i)*time.Second, s.at.Sub(start), "at the store's pace")
		}
		store.mu.Lock()
		calls := store.calls
		store.mu.Unlock()
		// Each asks when its turn comes, and once more if that is beyond the
		// horizon; the first asks at once. Without the line, each would ask
		// every 2 s of its wait: about 60 calls.
		assert.LessOrEqual(t, calls, 2*10+10, "reservations and settlements")
		t.Logf("%d store calls for 10 requests", calls)
		assert.Zero(t, pcStats(t, p).InFlight)
	})
}

// A request behind the line's head is refused at once when the head's
// next ask is already beyond its deadline, and returns at once when its
// context ends; the line goes on without it.
func TestPacerStoreDeclinedLineGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{horizon: time.Second}
		u := &pcUpstream{}
		p, rt, _ := lineProcess(t, store, u, -5, -1)
		start := time.Now()

		var wg sync.WaitGroup
		wg.Go(func() { pcDo(t, rt, pcReq(t.Context(), "m", "head")) }) // declined: asks again at 5 s
		synctest.Wait()

		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		r := pcRefused(t, rt, pcReq(ctx, "m", "hurried"))
		assert.Equal(t, llmhttp.ReasonWaitTooLong, r.Reason)
		assert.Zero(t, time.Since(start), "refused at once")

		cctx, ccancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := rt.RoundTrip(pcReq(cctx, "m", "cancelled"))
			errc <- err
		}()
		wg.Go(func() { pcDo(t, rt, pcReq(t.Context(), "m", "last")) })
		synctest.Wait()
		time.Sleep(time.Second)
		ccancel()
		assert.ErrorIs(t, <-errc, context.Canceled)
		assert.Equal(t, time.Second, time.Since(start), "returned at once")

		wg.Wait()
		log := u.log()
		require.Len(t, log, 3)
		assert.Equal(t, "head", log[1].id)
		assert.Equal(t, 6*time.Second, log[1].at.Sub(start))
		assert.Equal(t, "last", log[2].id)
		assert.Equal(t, 7*time.Second, log[2].at.Sub(start))
		st := pcStats(t, p)
		assert.Zero(t, st.InFlight)
		assert.EqualValues(t, 1, st.Refused)
	})
}

// A request waiting in the line behind its head is refused when its
// allowance (its deadline, or the pacer's MaxWait) runs out there: the
// head's next ask fitted it when it joined, but the store kept declining
// the head. The line goes on without it.
func TestPacerStoreDeclinedLineExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The store says to come back in 2 s at most: the head asks at 0,
		// 2 and 4 s, and is let through at 5 s to send at 6 s.
		store := &fakeStore{horizon: time.Second, maxBack: 2 * time.Second}
		u := &pcUpstream{}
		p, rt, _ := lineProcess(t, store, u, -5, -1)
		start := time.Now()

		var wg sync.WaitGroup
		wg.Go(func() { pcDo(t, rt, pcReq(t.Context(), "m", "head")) })
		synctest.Wait()

		// Joins (the head asks again at 2 s, within 3 s), then waits in
		// line until its deadline.
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		r := pcRefused(t, rt, pcReq(ctx, "m", "hurried"))
		assert.Equal(t, llmhttp.ReasonWaitTooLong, r.Reason)
		assert.Equal(t, 3*time.Second, time.Since(start), "refused when its deadline would be missed, not later")
		assert.Equal(t, time.Second, r.RetryAfter, "until the head asks again, at 4 s")
		assert.EqualValues(t, 1, pcStats(t, p).Refused)

		wg.Go(func() { pcDo(t, rt, pcReq(t.Context(), "m", "last")) })
		wg.Wait()
		log := u.log()
		require.Len(t, log, 3)
		assert.Equal(t, "head", log[1].id)
		assert.Equal(t, 6*time.Second, log[1].at.Sub(start))
		assert.Equal(t, "last", log[2].id, "the line went on without the one that left")
		assert.Equal(t, 7*time.Second, log[2].at.Sub(start))
		assert.Zero(t, pcStats(t, p).InFlight)
	})
}

// A served answer that is not a stream settles in the store once, at its
// body's end: the store keeps charged the output the body reports, not
// the estimate (max_tokens, before any output was learned).
func TestPacerStoreSettlesActualOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		u := &pcUpstream{reply: func(n int, _ *http.Request) *http.Response {
			return pcResp(http.StatusOK, `{"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`)
		}}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{
			Store:          store,
			OutputCharging: llmhttp.OutputGenerated,
			Limits:         map[string]llmhttp.Limits{"": {Tokens: llmhttp.Limit{Limit: 6000}}},
		})
		resp, err := p.Wrap(u).RoundTrip(pcReq(t.Context(), "m", "1"))
		require.NoError(t, err)
		key := pcStats(t, p).Partition
		charged := 6000 - store.level(key, llmhttp.DimTokens, time.Now())
		store.mu.Lock()
		calls := store.calls
		store.mu.Unlock()
		assert.Equal(t, 1, calls, "reserved; settled only at the body's end")

		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		after := 6000 - store.level(key, llmhttp.DimTokens, time.Now())
		assert.InDelta(t, charged-10+3, after, 1e-9, "max_tokens (10) charged, 3 generated")
		store.mu.Lock()
		calls = store.calls
		store.mu.Unlock()
		assert.Equal(t, 2, calls, "one settlement")
	})
}

// A report to the store leaves out the requests the store has not
// reserved (declined, waiting their turn): its levels do not include them
// either, and the server's word would otherwise count them twice.
func TestPacerStoreReportLeavesOutDeclined(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{horizon: time.Second}
		release := make(chan struct{})
		u := &pcUpstream{reply: func(n int, req *http.Request) *http.Response {
			if req.Header.Get("X-Test-Id") == "slow" {
				<-release
				return pcResp(http.StatusOK, `{}`, pcOpenAIHeaders(60, 0)...)
			}
			return nil
		}}
		p, rt, key := lineProcess(t, store, u, 1, -1)

		var wg sync.WaitGroup
		wg.Go(func() { pcDo(t, rt, pcReq(t.Context(), "m", "slow")) }) // takes the last one
		synctest.Wait()
		for i := range 5 {
			wg.Go(func() { pcDo(t, rt, pcReq(t.Context(), "m", strconv.Itoa(i))) })
		}
		synctest.Wait()
		assert.Positive(t, pcStats(t, p).StoreDeclines, "waiting, declined")
		assert.EqualValues(t, 6, pcStats(t, p).InFlight)
		// Nothing remains, says the server; the store is already 1 short.
		before := store.level(key, llmhttp.DimRequests, time.Now())
		close(release)
		synctest.Wait()
		assert.InDelta(t, min(before, 0), store.level(key, llmhttp.DimRequests, time.Now()), 1e-9,
			"the 5 waiting are not taken off the report")
		wg.Wait()
	})
}
