package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func testConfig(h *llmhttptest.Handler) config {
	return config{
		APIKey: "sk-ant-test", BaseURL: "http://fake.test", Model: "claude-sonnet-4-5", Base: h.Transport(),
		Requests: 2000, Urgent: 100, UrgentAfter: 3 * time.Second,
		MaxConcurrent: 128, Deadline: 10 * time.Minute, ProgressEvery: 2 * time.Second,
		Words: 800, Seed: 1,
	}
}

var latencyLine = regexp.MustCompile(`(high|low) +priority: +(\d+) ok, latency \(queueing included\) p50 +([\d.]+)s +p95 +([\d.]+)s`)

// The batch runs against the fake, served in memory on synctest's fake
// clock: every request succeeds without a 429, no more than MaxConcurrent
// are in flight, and the urgent requests, which arrive behind a long queue,
// overtake it.
func TestBatchExample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(fakeConfig())
		cfg := testConfig(h)
		got := demo.Output(t, func(w io.Writer) error { return run(t.Context(), w, cfg) })
		if !strings.Contains(got, "2100 requests in") || !strings.Contains(got, ", 0 failed.") {
			t.Errorf("not every request succeeded")
		}
		if !strings.Contains(got, "queued 1") { // progress showed a queue of 1000 or more
			t.Errorf("progress never showed the queue")
		}
		st := h.Stats()
		if st.ByStatus[200] != 2100 || st.ByStatus[429] != 0 {
			t.Errorf("server saw %v, want 2100 200s and no 429", st.ByStatus)
		}
		p50, p95 := map[string]float64{}, map[string]float64{}
		for _, m := range latencyLine.FindAllStringSubmatch(got, -1) {
			p50[m[1]], _ = strconv.ParseFloat(m[3], 64)
			p95[m[1]], _ = strconv.ParseFloat(m[4], 64)
		}
		if len(p50) != 2 {
			t.Fatalf("no latency lines in the output")
		}
		if p95["high"] >= p50["low"] {
			t.Errorf("high priority p95 %.2fs is not ahead of low priority p50 %.2fs", p95["high"], p50["low"])
		}
	})
}

// No more than MaxConcurrent requests reach the server at once.
func TestBatchExampleConcurrencyCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(fakeConfig())
		cfg := testConfig(h)
		cfg.Requests, cfg.Urgent, cfg.MaxConcurrent = 300, 10, 16
		var inFlight, peak int
		var mu = make(chan struct{}, 1)
		cfg.Base = llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			mu <- struct{}{}
			inFlight++
			peak = max(peak, inFlight)
			<-mu
			resp, err := h.Transport().RoundTrip(req)
			mu <- struct{}{}
			inFlight--
			<-mu
			return resp, err
		})
		demo.Output(t, func(w io.Writer) error { return run(t.Context(), w, cfg) })
		if peak != cfg.MaxConcurrent {
			t.Errorf("peak concurrency %d, want %d", peak, cfg.MaxConcurrent)
		}
	})
}
