package redis

import (
	"context"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmhttp/llmhttp"
)

// Settings configures a [Store]. The zero value is ready to use: every
// field's zero value means the documented default. NewStore copies the
// settings.
type Settings struct {
	// Prefix starts every key the store writes. "" means "llmhttp:". Give
	// each environment sharing one Redis (staging, production) its own. It
	// must not hold braces: a partition's keys share a Redis Cluster hash
	// slot through a {…} tag.
	Prefix string

	// Timeout bounds every call to Redis. A call that takes longer counts
	// as failed: the request goes on with the local fallback. 0 means
	// 50 ms (PacerSettings.StoreTimeout's default). It is enforced through the call's context, which go-redis
	// honours only with [goredis.Options.ContextTimeoutEnabled] (NewStore
	// warns through Logger when a client has it off); otherwise the
	// client's ReadTimeout and WriteTimeout bound the call.
	Timeout time.Duration

	// MinBackoff is how long after Redis failed the first probe tries it
	// again; each failed probe doubles the interval up to MaxBackoff.
	// Between probes the store does not call Redis at all. 0 means 250 ms
	// and 10 s.
	MinBackoff, MaxBackoff time.Duration

	// Horizon bounds how far ahead a request may reserve in the shared
	// buckets: one that would wait longer is declined (nothing is debited)
	// and asks again when its wait fits. A wait reserved far ahead counts
	// every reservation before it at its full cost (max_tokens included),
	// most of which comes back when those requests end: long waits would
	// waste what the refunds give back. A declined request takes a ticket
	// in the partition's queue: the requests after it leave it room, so
	// they are served in order, a large one is not starved by small ones,
	// and each asks again when its turn should have come, or after 5
	// horizons at most (the costs before it are estimates, which it checks
	// again). 0 means 1 s; each bucket's horizon is at most a 50th of its
	// window; a negative value means none: every reservation stands,
	// however long its wait.
	Horizon time.Duration

	// CountLag is how long the server may take to count a reservation:
	// the time constant over which reservations are held to be on their
	// way (waiting for their turn, in transit, or generating output that
	// is counted at its end). A server report above the shared level is
	// believed, in part, only beyond them; see [Store.Pacer]. 0 means 2 s;
	// each bucket's is at most a 30th of its window.
	CountLag time.Duration

	// OnFallback, if set, is called when the store switches to its local
	// fallback (Redis failed) and back (Redis answered again), outside any
	// lock, from the goroutine of the request that saw it. It must be fast.
	OnFallback func(FallbackEvent)

	// Observer, if set, has its OnStore called at each switch, with Store
	// "redis", right after OnFallback (outside any lock, from the
	// goroutine of the request that saw it): give it the Observer of the
	// otel or prom adapters to export the switches as metrics. Transports
	// do not pass their observers to the store: set it here. An Observer
	// from llmhttp.LogObserver logs the switches as Logger does; set one
	// of the two. nil reports to no Observer.
	Observer *llmhttp.Observer

	// Logger, if set, logs each switch: Warn for the fallback, Info for
	// the recovery. nil logs nothing.
	Logger *slog.Logger
}

// Defaults of Settings.
const (
	defaultPrefix     = "llmhttp:"
	defaultTimeout    = 50 * time.Millisecond
	defaultMinBackoff = 250 * time.Millisecond
	defaultHorizon    = time.Second
	defaultCountLag   = 2 * time.Second
	defaultMaxBackoff = 10 * time.Second
)

func (s Settings) withDefaults() Settings {
	if s.Prefix == "" {
		s.Prefix = defaultPrefix
	}
	if s.Timeout <= 0 {
		s.Timeout = defaultTimeout
	}
	if s.Horizon == 0 {
		s.Horizon = defaultHorizon
	}
	if s.CountLag <= 0 {
		s.CountLag = defaultCountLag
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = defaultMinBackoff
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = defaultMaxBackoff
	}
	s.MaxBackoff = max(s.MaxBackoff, s.MinBackoff)
	return s
}

// Store keeps llmhttp's shared state in Redis: the pacer's buckets and
// gates ([Store.Pacer]) and the budgets' counts ([Store.Budgets]), so that
// every process on one API key paces and spends as one. Keys name a
// partition by its host, credential fingerprint and model — never the
// credential — and expire on their own once unused.
//
// When Redis fails or is slower than Timeout, each store answers from a
// local fallback (the process's own pacing, a budget of its own) and tries
// Redis again with backoff, one probe at a time; no request fails because
// Redis is down. Store starts no goroutine. It is safe for concurrent use
// by multiple goroutines.
type Store struct {
	rdb     goredis.UniversalClient
	s       Settings
	h       health
	pacer   pacerStore
	budgets budgetStore
}

// NewStore returns a Store on rdb: a *goredis.Client, *goredis.ClusterClient
// or *goredis.Ring (each of its calls touches one key). For bounded calls
// configure it with ContextTimeoutEnabled (see Settings.Timeout).
func NewStore(rdb goredis.UniversalClient, s Settings) *Store {
	st := &Store{rdb: rdb, s: s.withDefaults()}
	st.h.s = &st.s
	st.pacer.st, st.pacer.keys.prefix = st, st.s.Prefix
	st.budgets.st = st
	if st.s.Logger != nil && !contextTimeouts(rdb) {
		st.s.Logger.LogAttrs(context.Background(), slog.LevelWarn,
			"llmhttp/redis: the Redis client ignores context deadlines (ContextTimeoutEnabled is off): a slow Redis delays requests up to its ReadTimeout, not Settings.Timeout")
	}
	return st
}

// contextTimeouts reports whether rdb honours context deadlines, when it
// can tell.
func contextTimeouts(rdb goredis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *goredis.Client:
		return c.Options().ContextTimeoutEnabled
	case *goredis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// StoreStats are a Store's counters.
type StoreStats struct {
	// Mode is where the state lives now, and Since when.
	Mode  Mode
	Since time.Time
	// Calls counts the calls made to Redis; Failures those that failed or
	// timed out; Local the operations answered by the fallback without
	// calling Redis.
	Calls, Failures, Local int64
	// Fallbacks and Recoveries count the switches to ModeLocal and back.
	Fallbacks, Recoveries int64
	// LastError is the failure that made the store fall back, while it is
	// in ModeLocal; nil otherwise.
	LastError error
}

// Stats returns the store's counters.
func (st *Store) Stats() StoreStats {
	h := &st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	s := StoreStats{Mode: ModeShared, Since: h.since, Calls: h.calls, Failures: h.failures, Local: h.local,
		Fallbacks: h.fallback, Recoveries: h.recover}
	if h.down {
		s.Mode, s.LastError = ModeLocal, h.lastErr
	}
	return s
}

// call runs f against Redis under the store's timeout, unless Redis is out
// of use; it returns errUnavailable then, and f's error otherwise, having
// recorded the outcome.
func (st *Store) call(ctx context.Context, f func(ctx context.Context) error) error {
	now := time.Now()
	if !st.h.begin(now) {
		return errUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, st.s.Timeout)
	err := f(cctx)
	cancel()
	st.h.end(ctx, time.Now(), err)
	return err
}
