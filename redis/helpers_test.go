package redis_test

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// newMini returns a miniredis served in memory (no socket, so it works in
// a testing/synctest bubble, on the bubble's clock) and a client of it.
func newMini(t testing.TB) (*miniredis.Miniredis, *goredis.Client) {
	t.Helper()
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	t.Cleanup(m.Close)
	return m, miniClient(t, m)
}

// miniClient returns a new client (its own connections) of m.
func miniClient(t testing.TB, m *miniredis.Miniredis) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{
		// An IP address: go-redis would resolve a host name (to tell its
		// network), which a synctest bubble forbids.
		Addr:                     "127.0.0.1:6379",
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Dialer:                   func(context.Context, string, string) (net.Conn, error) { return m.Dial() },
		ContextTimeoutEnabled:    true,
		DisableIdentity:          true,
		Protocol:                 2,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// realAddr returns the address of the real redis-server the integration
// tests use, LLMHTTP_REDIS_ADDR (start one with testdata/start-redis.sh).
// Without it the test is skipped, except in CI (CI=true), where it fails.
func realAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("LLMHTTP_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("LLMHTTP_REDIS_ADDR is not set: CI must start a redis-server (redis/testdata/start-redis.sh)")
		}
		t.Skip("no real Redis: set LLMHTTP_REDIS_ADDR=host:port (start one with redis/testdata/start-redis.sh)")
	}
	return addr
}

// realClient returns a client of the real Redis at realAddr, on database
// db, flushed before and after the test.
func realClient(t testing.TB) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{
		Addr:                     realAddr(t),
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// flaky is a Redis that can be killed, restarted (empty, as a redis-server
// without persistence) and made to hang, in memory.
type flaky struct {
	mu    sync.Mutex
	m     *miniredis.Miniredis
	down  bool
	hang  bool
	holes []net.Conn
}

func newFlaky(t testing.TB) *flaky {
	f := &flaky{m: miniredis.NewMiniRedis()}
	f.m.ClockTTL(true)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.m.Close()
		for _, c := range f.holes {
			c.Close()
		}
	})
	return f
}

// dial connects to the server: an error while it is down, a connection
// that never answers while it hangs.
func (f *flaky) dial(context.Context, string, string) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.down:
		return nil, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	case f.hang:
		c, hole := net.Pipe()
		f.holes = append(f.holes, hole)
		return c, nil
	}
	return f.m.Dial()
}

// kill stops the server, dropping its connections.
func (f *flaky) kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = true
	f.m.Close()
}

// restart starts an empty server.
func (f *flaky) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m = miniredis.NewMiniRedis()
	f.m.ClockTTL(true)
	f.down, f.hang = false, false
}

// client returns a new client of f.
func (f *flaky) client(t testing.TB) *goredis.Client {
	rdb := goredis.NewClient(&goredis.Options{
		Addr:                     "127.0.0.1:6379",
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Dialer:                   f.dial,
		ContextTimeoutEnabled:    true,
		DisableIdentity:          true,
		MaxRetries:               -1,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestMain silences go-redis's own log (its pool reports every failed dial
// of the outage tests on stderr).
func TestMain(m *testing.M) {
	goredis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
