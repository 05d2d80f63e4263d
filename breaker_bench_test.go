package llmhttp_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/stretchr/testify/assert"
)

// bkBenchBase answers 200 or 529 without reading anything: the floor.
func bkBenchBase(status int) llmhttp.RoundTripFunc {
	body := bkOK
	if status != 200 {
		body = bkOverloaded
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	}
}

func bkBenchRun(b *testing.B, rt http.RoundTripper, req *http.Request) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

// BenchmarkBreaker measures the breaker's cost per request: closed (a 200
// through it) and open (the local reply) against the bare base, with a cheap
// custom key and with the default key, which reads the model from the body.
func BenchmarkBreaker(b *testing.B) {
	get, _ := http.NewRequest(http.MethodGet, "https://api.anthropic.com/v1/models", nil)
	post := bkReq(b.Context(), bkHost, bkModel)
	hostKey := func(req *http.Request) string { return req.URL.Host }
	open := func(s llmhttp.BreakerSettings, req *http.Request) http.RoundTripper {
		br := llmhttp.NewBreaker(s)
		rt := br.Wrap(bkBenchBase(529))
		for range 10 {
			resp, _ := rt.RoundTrip(req)
			resp.Body.Close()
		}
		if br.State(s.Key(req)) != llmhttp.StateOpen {
			b.Fatal("circuit did not open")
		}
		return rt
	}

	b.Run("bare", func(b *testing.B) { bkBenchRun(b, bkBenchBase(200), get) })
	b.Run("closed/host-key", func(b *testing.B) {
		bkBenchRun(b, llmhttp.NewBreaker(llmhttp.BreakerSettings{Key: hostKey}).Wrap(bkBenchBase(200)), get)
	})
	b.Run("open/host-key", func(b *testing.B) {
		bkBenchRun(b, open(llmhttp.BreakerSettings{Key: hostKey}, get), get)
	})
	b.Run("closed/default-key", func(b *testing.B) {
		bkBenchRun(b, llmhttp.NewBreaker(llmhttp.BreakerSettings{}).Wrap(bkBenchBase(200)), post)
	})
	b.Run("open/default-key", func(b *testing.B) {
		bkBenchRun(b, open(llmhttp.BreakerSettings{Key: llmhttp.BreakerKey}, post), post)
	})
}

// bkEpisode is the result of bkRunEpisode.
type bkEpisode struct {
	requests  int // sent by callers
	ok        int // answered 200
	failed    int // answered with the provider's error (after retries)
	refused   int // answered with a local circuit-open reply
	errs      int // answered with an error (the caller's deadline)
	late      int // answered after their deadline, or never: lost
	attempts  int // attempts that reached the server during the episode
	sentTotal int // attempts that reached the server overall
	recovery  time.Duration
}

// bkRunEpisode runs the fault workload in units of u (time.Second at full
// scale): callers send an Anthropic request every 0.2u for 120u, each with a
// deadline of 60u, through llmhttp.New (retry, and the breaker unless
// withBreaker is false; no pacer, and unlimited server rate limits, so that
// nothing but the episode matters), to an llmhttptest server that answers
// after 1u and is overloaded (529 to every request) from 45u to 75u. It
// counts the attempts that reach the server during the episode, the time
// from the end of the episode to the first successful attempt sent after it
// (recovery), and how every request ended.
func bkRunEpisode(tb testing.TB, u time.Duration, withBreaker bool) bkEpisode {
	const perSec = 5
	start, end := 45*u, 75*u
	h := llmhttptest.NewHandler(llmhttptest.Config{
		Anthropic: llmhttptest.Limits{RPM: llmhttptest.Unlimited, ITPM: llmhttptest.Unlimited, OTPM: llmhttptest.Unlimited},
		Latency:   u,
		Faults:    []llmhttptest.Fault{{Kind: llmhttptest.Overloaded, Start: start, Duration: end - start}},
	})
	origin := time.Now()
	var (
		mu        sync.Mutex
		res       bkEpisode
		recovered = time.Duration(-1)
	)
	server := h.Transport()
	base := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		at := time.Since(origin)
		resp, err := server.RoundTrip(req)
		mu.Lock()
		res.sentTotal++
		if at >= start && at < end {
			res.attempts++
		}
		if err == nil && resp.StatusCode == 200 && at >= end && (recovered < 0 || at-end < recovered) {
			recovered = at - end
		}
		mu.Unlock()
		return resp, err
	})
	opts := []llmhttp.Option{
		llmhttp.WithoutPacing(),
		llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{
			InitialInterval: u, MaxInterval: 30 * u, MaxRetryAfter: 60 * u, MaxElapsedTime: 600 * u,
			Budget: llmhttp.RetryBudget{RefillPeriod: 60 * u},
		}),
	}
	if withBreaker {
		opts = append(opts, llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{Window: 30 * u, OpenDuration: 30 * u}))
	} else {
		opts = append(opts, llmhttp.WithoutBreaker())
	}
	client := &http.Client{Transport: llmhttp.New(base, opts...)}

	var wg sync.WaitGroup
	for i := range 120 * perSec {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*u)
			defer cancel()
			deadline, _ := ctx.Deadline()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.anthropic.com/v1/messages",
				strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"request `+strconv.Itoa(i)+`"}]}`))
			req.Header.Set("X-Api-Key", "sk-ant-bench")
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			res.requests++
			switch {
			case time.Now().After(deadline.Add(u / 10)):
				res.late++
			case err != nil:
				res.errs++
			case resp.StatusCode == 200:
				res.ok++
			case resp.Header.Get("Llmhttp-Refusal") != "":
				res.refused++
			default:
				res.failed++
			}
		})
		time.Sleep(u / perSec)
	}
	wg.Wait()
	res.recovery = recovered
	return res
}

// TestBreakerFaultEpisode runs the fault workload on fake time at full
// scale: a 30 s overload in the middle of two minutes of steady traffic.
// With the breaker, far fewer attempts reach the overloaded server, no
// request is lost, and traffic recovers within one open period of the end.
func TestBreakerFaultEpisode(t *testing.T) {
	var with, without bkEpisode
	synctest.Test(t, func(t *testing.T) { without = bkRunEpisode(t, time.Second, false) })
	synctest.Test(t, func(t *testing.T) { with = bkRunEpisode(t, time.Second, true) })
	for _, r := range []struct {
		name string
		e    bkEpisode
	}{{"without breaker", without}, {"with breaker", with}} {
		t.Logf("%-15s requests=%d ok=%d failed=%d refused=%d errors=%d lost=%d | attempts: during episode=%d total=%d | recovery=%v",
			r.name, r.e.requests, r.e.ok, r.e.failed, r.e.refused, r.e.errs, r.e.late, r.e.attempts, r.e.sentTotal, r.e.recovery)
		assert.Equal(t, 600, r.e.requests, r.name)
		assert.Zero(t, r.e.late, "%s: requests lost", r.name)
		assert.GreaterOrEqual(t, r.e.recovery, time.Duration(0), "%s: never recovered", r.name)
	}
	assert.Less(t, with.attempts*3, without.attempts, "the breaker spares the overloaded server")
	assert.LessOrEqual(t, with.recovery, 30*time.Second, "recovery within one open period")
}

// BenchmarkBreakerFaultEpisode runs the fault workload on the real clock,
// scaled down a hundredfold (the 30 s episode lasts 300 ms), and reports per
// run the attempts sent during the episode, the recovery time in
// full-scale seconds, and the requests lost.
func BenchmarkBreakerFaultEpisode(b *testing.B) {
	const u = 10 * time.Millisecond
	for _, withBreaker := range []bool{false, true} {
		name := "without-breaker"
		if withBreaker {
			name = "with-breaker"
		}
		b.Run(name, func(b *testing.B) {
			var attempts, lost, ok, recovery float64
			n := 0
			for b.Loop() {
				e := bkRunEpisode(b, u, withBreaker)
				attempts += float64(e.attempts)
				lost += float64(e.late)
				ok += float64(e.ok)
				recovery += float64(e.recovery) / float64(u)
				n++
			}
			b.ReportMetric(attempts/float64(n), "episode-attempts/op")
			b.ReportMetric(recovery/float64(n), "recovery-s/op")
			b.ReportMetric(ok/float64(n), "ok/op")
			b.ReportMetric(lost/float64(n), "lost/op")
		})
	}
}
