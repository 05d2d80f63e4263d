package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// faultRun is a fleet whose Redis is killed a third of the way through and
// restarted (empty) at two thirds.
type faultRun struct {
	stores []*llmredis.Store
	events []*events
	res    fleetResult
}

// check asserts what a Redis outage must not and must do: no request lost
// (every one answered by the server or still waiting at the end), and each
// store visibly fell back and recovered.
func (f *faultRun) check(t *testing.T) {
	t.Helper()
	r := f.res
	assert.Zero(t, r.failed, "no request failed")
	assert.Zero(t, r.local, "no request refused")
	assert.Equal(t, r.total, r.ok+r.unfinished, "every request answered or waiting")
	assert.Positive(t, r.storeErrors(), "the pacers counted the failed calls")
	for i, st := range f.stores {
		s := st.Stats()
		assert.Equal(t, llmredis.ModeShared, s.Mode, "replica %d recovered", i)
		assert.Positive(t, s.Fallbacks, "replica %d fell back", i)
		assert.Positive(t, s.Recoveries, "replica %d recovered", i)
		assert.Positive(t, s.Local, "replica %d answered locally while Redis was down", i)
		modes := f.events[i].modes()
		require.GreaterOrEqual(t, len(modes), 2)
		assert.Equal(t, llmredis.ModeLocal, modes[0])
		assert.Equal(t, llmredis.ModeShared, modes[len(modes)-1])
	}
	t.Log(r)
	for i, st := range f.stores {
		t.Logf("replica %d: %+v", i, st.Stats())
	}
}

// Redis dies mid-run and comes back empty: the replicas pace on their own
// while it is gone, lose no request, and share again when it is back.
func TestFaultRedisKilledAndRestarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFlaky(t)
		h := llmhttptest.NewHandler(serverConfig(llmhttptest.ChargeReserved, time.Minute))
		var run faultRun
		c := fleetConfig{provider: llmhttptest.OpenAI, replicas: 4, handler: h, window: time.Minute, load: 1, windows: 9,
			base: func(int) http.RoundTripper { return h.Transport() },
			store: func(int) llmhttp.PacerStore {
				ev := &events{}
				st := llmredis.NewStore(f.client(t), llmredis.Settings{OnFallback: ev.add})
				run.stores, run.events = append(run.stores, st), append(run.events, ev)
				return st.Pacer()
			},
			during: func(ctx context.Context) {
				time.Sleep(3 * time.Minute)
				f.kill()
				time.Sleep(3 * time.Minute)
				f.restart()
			},
		}
		run.res = runFleet(c)
		run.check(t)
		assert.NotEmpty(t, f.m.Keys(), "the restarted Redis holds the shared state again")
		assert.LessOrEqual(t, run.res.throttleRate(), 0.05)
	})
}

// redisServer is a redis-server process of the test's own, on loopback,
// that the test can kill and start again.
type redisServer struct {
	t    *testing.T
	bin  string
	port int
	cmd  *exec.Cmd
}

// startRedisServer starts a redis-server for the test. Without one on the
// PATH the test is skipped, except in CI (CI=true), where it fails.
func startRedisServer(t *testing.T) *redisServer {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed: CI must install it (redis/testdata/start-redis.sh)")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server, or redis/testdata/start-redis.sh)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &redisServer{t: t, bin: bin, port: port}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// readyWriter takes redis-server's log and closes ready at the line that
// says it accepts connections.
type readyWriter struct {
	tail  []byte // the end of the log, where the line may begin
	ready chan struct{}
	done  bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	if !w.done {
		w.tail = append(w.tail, p...)
		if bytes.Contains(w.tail, []byte("Ready to accept connections")) {
			w.done = true
			close(w.ready)
		}
		w.tail = w.tail[max(len(w.tail)-64, 0):]
	}
	return len(p), nil
}

// after waits d, or until ctx ends; it reports whether d passed.
func after(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// start starts the server and returns once it says it accepts
// connections (its log line), within 10 s.
func (s *redisServer) start() {
	s.cmd = exec.Command(s.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", s.t.TempDir())
	w := &readyWriter{ready: make(chan struct{})}
	s.cmd.Stdout = w
	require.NoError(s.t, s.cmd.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-w.ready:
	case <-ctx.Done():
		s.t.Fatalf("redis-server did not start on %s", s.addr())
	}
}

func (s *redisServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// The same against a real redis-server, killed (SIGKILL) and started again,
// in real time: a fleet on a 2-second "minute".
func TestFaultRealRedisKilledAndRestarted(t *testing.T) {
	srv := startRedisServer(t)
	const window = 2 * time.Second
	h := llmhttptest.NewServer(serverConfig(llmhttptest.ChargeReserved, window))
	defer h.Close()
	var run faultRun
	c := fleetConfig{provider: llmhttptest.OpenAI, replicas: 4, handler: h.Handler, window: window, load: 1, windows: 6,
		base: func(int) http.RoundTripper { return toServer(h.URL) },
		store: func(int) llmhttp.PacerStore {
			ev := &events{}
			st := llmredis.NewStore(realFleetClient(t, srv.addr(), nil), llmredis.Settings{OnFallback: ev.add, MaxBackoff: time.Second})
			run.stores, run.events = append(run.stores, st), append(run.events, ev)
			return st.Pacer()
		},
		during: func(ctx context.Context) {
			// A real process: real time, cut short if the run ends first.
			if !after(ctx, 2*window) {
				return
			}
			srv.kill()
			after(ctx, 2*window)
			srv.start()
		},
	}
	run.res = runFleet(c)
	run.check(t)
	n, err := realFleetClient(t, srv.addr(), nil).DBSize(context.Background()).Result()
	require.NoError(t, err)
	assert.Positive(t, n, fmt.Sprint("the restarted Redis holds the shared state again"))
}
