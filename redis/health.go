package redis

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/llmhttp/llmhttp"
)

// storeName is the name the store gives itself in llmhttp.StoreEvent.
const storeName = "redis"

// Mode is where a store's state lives at the moment.
type Mode int

const (
	// ModeShared: the state is in Redis, shared with every process that
	// uses it.
	ModeShared Mode = iota
	// ModeLocal: Redis failed or was too slow; the state is the process's
	// own until Redis answers again.
	ModeLocal
)

// String returns "shared" or "local".
func (m Mode) String() string {
	if m == ModeLocal {
		return "local"
	}
	return "shared"
}

// FallbackEvent reports a store switching between Redis and its local
// fallback, for [Settings.OnFallback].
type FallbackEvent struct {
	// Mode is the mode switched to: ModeLocal when Redis failed, ModeShared
	// when it answered again.
	Mode Mode
	// Err is the failure that caused the switch to ModeLocal; nil on
	// recovery.
	Err error
	// Since is when the previous mode began; Down, on recovery, how long
	// Redis was out of use.
	Since time.Time
	Down  time.Duration
}

// health tracks whether Redis is usable: after a failure the store answers
// from its local fallback, and only one call at a time (a probe) tries
// Redis again, first after MinBackoff, then at doubling intervals up to
// MaxBackoff, so that a Redis that is down costs the requests nothing but
// the probes' timeouts. It holds no goroutine: a request that finds the
// next probe due is the probe.
type health struct {
	s *Settings

	mu       sync.Mutex
	down     bool
	since    time.Time // of the current mode
	retryAt  time.Time
	backoff  time.Duration
	probing  bool
	lastErr  error
	calls    int64 // calls made to Redis
	local    int64 // operations answered locally without a call
	failures int64 // calls that failed
	fallback int64 // switches to local
	recover  int64 // switches back
}

// errUnavailable is what a call that does not try Redis (it is down and no
// probe is due) returns.
var errUnavailable = errors.New("llmhttp/redis: Redis unavailable; using the local fallback")

// errReply is the error of a script reply of the wrong shape.
var errReply = errors.New("llmhttp/redis: unexpected reply from Redis")

// begin reports whether a call may try Redis now; when it returns true the
// caller must report the outcome with end.
func (h *health) begin(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		if h.probing || now.Before(h.retryAt) {
			h.local++
			return false
		}
		h.probing = true
	}
	h.calls++
	return true
}

// end records the outcome of a call begin allowed; ctx is the caller's
// context (not the call's, which adds the store's timeout): a call that
// failed because the caller cancelled it is neither a success nor a
// failure.
func (h *health) end(ctx context.Context, now time.Time, err error) {
	var ev *FallbackEvent
	h.mu.Lock()
	wasProbe := h.probing
	h.probing = false
	switch {
	case err == nil:
		if h.down {
			h.recover++
			ev = &FallbackEvent{Mode: ModeShared, Since: h.since, Down: now.Sub(h.since)}
			h.down, h.since, h.backoff, h.lastErr = false, now, 0, nil
		}
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up: says nothing of Redis. (A caller's deadline
		// that passed during the call says Redis was too slow for it.)
	default:
		h.failures++
		h.lastErr = err
		switch {
		case !h.down:
			h.fallback++
			ev = &FallbackEvent{Mode: ModeLocal, Err: err, Since: h.since}
			h.down, h.since, h.backoff = true, now, h.s.MinBackoff
		case wasProbe:
			h.backoff = min(2*h.backoff, h.s.MaxBackoff)
		}
		h.retryAt = now.Add(h.backoff)
	}
	h.mu.Unlock()
	if ev != nil {
		h.report(*ev)
	}
}

// report calls the hooks and logs the switch; never under h.mu.
func (h *health) report(ev FallbackEvent) {
	if f := h.s.OnFallback; f != nil {
		f(ev)
	}
	if o := h.s.Observer; o != nil && o.OnStore != nil {
		o.OnStore(llmhttp.StoreEvent{Store: storeName, Shared: ev.Mode == ModeShared, Err: ev.Err, Since: ev.Since, Down: ev.Down})
	}
	l := h.s.Logger
	if l == nil {
		return
	}
	if ev.Mode == ModeLocal {
		l.LogAttrs(context.Background(), slog.LevelWarn, "llmhttp/redis: Redis failed; pacing and budgets fall back to this process alone",
			slog.String("error", ev.Err.Error()), slog.Duration("retry_in", h.s.MinBackoff))
		return
	}
	l.LogAttrs(context.Background(), slog.LevelInfo, "llmhttp/redis: Redis answers again; pacing and budgets are shared again",
		slog.Duration("down", ev.Down))
}

// mode returns the current mode and since when.
func (h *health) mode() (Mode, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return ModeLocal, h.since
	}
	return ModeShared, h.since
}
