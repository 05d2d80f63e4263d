package redis_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// events records FallbackEvents.
type events struct {
	mu sync.Mutex
	ev []llmredis.FallbackEvent
}

func (e *events) add(ev llmredis.FallbackEvent) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) modes() []llmredis.Mode {
	e.mu.Lock()
	defer e.mu.Unlock()
	var m []llmredis.Mode
	for _, ev := range e.ev {
		m = append(m, ev.Mode)
	}
	return m
}

// When Redis fails, the store says so once (hook and log), answers at once
// from then on without calling Redis, probes it again after MinBackoff —
// one call at a time, the interval doubling while it stays down — and
// switches back when it answers.
func TestFallbackAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFlaky(t)
		var ev events
		var logs bytes.Buffer
		st := llmredis.NewStore(f.client(t), llmredis.Settings{
			OnFallback: ev.add,
			Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
			MinBackoff: time.Second, MaxBackoff: 4 * time.Second,
		})
		s := st.Pacer()
		call := func() error {
			_, err := s.Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(1, 1), Limits: limits()})
			return err
		}
		require.NoError(t, call())

		f.kill()
		start := time.Now()
		require.Error(t, call())
		assert.Equal(t, []llmredis.Mode{llmredis.ModeLocal}, ev.modes())
		stats := st.Stats()
		assert.Equal(t, llmredis.ModeLocal, stats.Mode)
		assert.Equal(t, start, stats.Since)
		assert.EqualValues(t, 1, stats.Fallbacks)
		assert.Error(t, stats.LastError)
		assert.Contains(t, logs.String(), "level=WARN")
		assert.Contains(t, logs.String(), "error=")

		for range 10 {
			require.Error(t, call())
		}
		assert.EqualValues(t, 10, st.Stats().Local, "not called while down")
		assert.Zero(t, time.Since(start), "failing fast")

		time.Sleep(time.Second)
		require.Error(t, call()) // the probe, still down
		assert.EqualValues(t, 2, st.Stats().Failures)
		time.Sleep(time.Second)
		require.Error(t, call())
		assert.EqualValues(t, 2, st.Stats().Failures, "the next probe is 2 s after the last")

		f.restart()
		time.Sleep(time.Second)
		require.NoError(t, call(), "the probe finds Redis back")
		assert.Equal(t, []llmredis.Mode{llmredis.ModeLocal, llmredis.ModeShared}, ev.modes())
		ev.mu.Lock()
		assert.GreaterOrEqual(t, ev.ev[1].Down, 3*time.Second)
		assert.Less(t, ev.ev[1].Down, 3*time.Second+200*time.Millisecond, "and go-redis's dial backoff")
		ev.mu.Unlock()
		assert.EqualValues(t, 1, st.Stats().Recoveries)
		assert.Equal(t, llmredis.ModeShared, st.Stats().Mode)
		assert.NoError(t, st.Stats().LastError)
		assert.Contains(t, logs.String(), "level=INFO")
		require.NoError(t, call())
	})
}

// Settings.Observer's OnStore hears each switch as an llmhttp.StoreEvent
// of store "redis", right after OnFallback: the fallback with its error
// and when the shared mode began, the recovery with how long Redis was
// down. An Observer without OnStore is ignored.
func TestFallbackReportedToObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFlaky(t)
		var (
			mu    sync.Mutex
			order []string
			got   []llmhttp.StoreEvent
		)
		st := llmredis.NewStore(f.client(t), llmredis.Settings{
			MinBackoff: time.Second,
			OnFallback: func(ev llmredis.FallbackEvent) {
				mu.Lock()
				order = append(order, "fallback "+ev.Mode.String())
				mu.Unlock()
			},
			Observer: &llmhttp.Observer{OnStore: func(ev llmhttp.StoreEvent) {
				mu.Lock()
				order = append(order, fmt.Sprintf("store %s shared=%v", ev.Store, ev.Shared))
				got = append(got, ev)
				mu.Unlock()
			}},
		})
		call := func() error {
			_, err := st.Pacer().Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(1, 1), Limits: limits()})
			return err
		}
		require.NoError(t, call())
		shared := st.Stats().Since

		f.kill()
		down := time.Now()
		require.Error(t, call())
		require.Error(t, call(), "answered locally: no second switch")
		mu.Lock()
		require.Len(t, got, 1)
		assert.Equal(t, "redis", got[0].Store)
		assert.False(t, got[0].Shared)
		assert.Equal(t, st.Stats().LastError, got[0].Err)
		assert.Equal(t, shared, got[0].Since)
		assert.Zero(t, got[0].Down)
		mu.Unlock()

		f.restart()
		time.Sleep(2 * time.Second)
		require.NoError(t, call(), "the probe finds Redis back")
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []string{"fallback local", "store redis shared=false", "fallback shared", "store redis shared=true"}, order)
		require.Len(t, got, 2)
		assert.Equal(t, llmhttp.StoreEvent{Store: "redis", Shared: true, Since: down, Down: time.Since(down)}, got[1])

		// An Observer without OnStore costs nothing and breaks nothing.
		st2 := llmredis.NewStore(f.client(t), llmredis.Settings{Observer: &llmhttp.Observer{}})
		f.kill()
		_, err := st2.Pacer().Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now(), Cost: cost(1, 1), Limits: limits()})
		require.Error(t, err)
		assert.Equal(t, llmredis.ModeLocal, st2.Stats().Mode)
		f.restart()
		time.Sleep(time.Second) // go-redis's dial retries end
	})
}

// A Redis that does not answer costs a call Timeout, once: the store falls
// back and the next calls do not wait.
func TestSlowRedisBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFlaky(t)
		f.hang = true
		st := llmredis.NewStore(f.client(t), llmredis.Settings{Timeout: 30 * time.Millisecond})
		start := time.Now()
		_, err := st.Pacer().Reserve(t.Context(), testKey, llmhttp.Reservation{Now: start, Cost: cost(1, 1)})
		require.Error(t, err)
		assert.Equal(t, 30*time.Millisecond, time.Since(start))
		require.Error(t, st.Pacer().Settle(t.Context(), testKey, llmhttp.Settlement{Now: time.Now(), Refund: cost(1, 1)}))
		assert.Equal(t, 30*time.Millisecond, time.Since(start), "the second call did not wait")
		assert.Equal(t, llmredis.ModeLocal, st.Stats().Mode)
	})
}

// While a probe is under way, the other calls do not wait for it.
func TestOneProbeAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFlaky(t)
		f.kill()
		st := llmredis.NewStore(f.client(t), llmredis.Settings{Timeout: 50 * time.Millisecond, MinBackoff: time.Second})
		_, err := st.Pacer().Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now()})
		require.Error(t, err)
		f.mu.Lock()
		f.down, f.hang = false, true
		f.mu.Unlock()
		time.Sleep(time.Second)

		var wg sync.WaitGroup
		start := time.Now()
		var elapsed [5]time.Duration
		for i := range elapsed {
			wg.Go(func() {
				st.Pacer().Reserve(t.Context(), testKey, llmhttp.Reservation{Now: time.Now()})
				elapsed[i] = time.Since(start)
			})
		}
		wg.Wait()
		var slow int
		for _, e := range elapsed {
			if e > 0 {
				slow++
			}
		}
		assert.Equal(t, 1, slow, "one probe waited its timeout: %v", elapsed)
		assert.EqualValues(t, 2, st.Stats().Calls)
	})
}

// A client that ignores context deadlines cannot keep calls within
// Timeout: NewStore says so.
func TestNewStoreWarnsWithoutContextTimeouts(t *testing.T) {
	var logs bytes.Buffer
	l := slog.New(slog.NewTextHandler(&logs, nil))
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	llmredis.NewStore(rdb, llmredis.Settings{Logger: l})
	assert.Contains(t, logs.String(), "ContextTimeoutEnabled is off")

	logs.Reset()
	rdb2 := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer rdb2.Close()
	llmredis.NewStore(rdb2, llmredis.Settings{Logger: l})
	assert.Empty(t, logs.String())
}
