package redis_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// This file drives a fleet of replicas — independent llmhttp transports,
// each with its own http.Client, Pacer and Redis connection, as separate
// processes would have — on one API key against llmhttptest, and measures
// what the limits allowed against what the fleet got.

// kind is one kind of request: input tokens as the server counts them, and
// max_tokens. The server generates a uniform 1–199 output tokens (mean
// meanOutput).
type kind struct{ input, maxTokens int64 }

// mix are the request kinds, sent round-robin.
var mix = []kind{{200, 256}, {500, 1024}, {1000, 512}, {2000, 2048}, {300, 4096}, {800, 300}}

const meanOutput = 100

// fleetConfig describes a run.
type fleetConfig struct {
	provider llmhttptest.Provider
	charge   llmhttptest.Charge
	replicas int
	// store, when set, returns replica i's shared store (nil: local pacing
	// only).
	store func(i int) llmhttp.PacerStore
	// base returns replica i's transport to the server.
	base func(i int) http.RoundTripper
	// handler is the server (for its counters and capacity).
	handler *llmhttptest.Handler
	// window is the server's "minute".
	window time.Duration
	// load is the arrival rate as a multiple of capacity, for windows
	// windows.
	load, windows float64
	// burst, when positive, sends that many requests at once instead (no
	// warm-up: the replicas start cold), and waits for them for at most
	// windows windows; goodput is then measured up to the last success.
	burst int
	// during, if set, runs alongside the arrivals (fault injection).
	during func(ctx context.Context)
	// options, if set, returns more Transport options for replica i.
	options func(i int) []llmhttp.Option
	// started, if set, is given the replicas' pacers before the arrivals.
	started func(pacers []*llmhttp.Pacer)
}

// serverConfig returns the llmhttptest configuration of the fleet runs:
// each provider's Tier 1 limits, 0.5 s + 10 ms per output token of latency
// (scaled with the window), seed 7.
func serverConfig(charge llmhttptest.Charge, window time.Duration) llmhttptest.Config {
	scale := float64(window) / float64(time.Minute)
	return llmhttptest.Config{
		Anthropic:       llmhttptest.Limits{RPM: 50, ITPM: 30_000, OTPM: 8_000},
		OpenAI:          llmhttptest.Limits{RPM: 500, TPM: 30_000},
		AnthropicCharge: charge, OpenAICharge: charge,
		MeanOutput:   meanOutput,
		Latency:      time.Duration(scale * float64(500*time.Millisecond)),
		TokenLatency: time.Duration(scale * float64(10*time.Millisecond)),
		Seed:         7,
		Window:       window,
	}
}

// fleetResult is what a run measured.
type fleetResult struct {
	ok, local, failed, unfinished int
	total                         int
	attempts, throttled           int64   // seen by the server; its 429s
	capacity                      float64 // requests per second
	goodput                       float64 // fraction of capacity
	p50, p95                      float64 // seconds, successful requests
	pacers                        []*llmhttp.Pacer
}

// storeErrors returns the pacers' failed store calls.
func (r fleetResult) storeErrors() int64 {
	var n int64
	for _, p := range r.pacers {
		for _, s := range p.Stats() {
			n += s.StoreErrors
		}
	}
	return n
}

func (r fleetResult) throttleRate() float64 {
	if r.attempts == 0 {
		return 0
	}
	return float64(r.throttled) / float64(r.attempts)
}

func (r fleetResult) String() string {
	return fmt.Sprintf("goodput %.3f  429/attempt %.4f (%d/%d)  ok %d/%d  local %d  failed %d  unfinished %d  p50 %.2fs  p95 %.2fs  store errors %d  (capacity %.3f/s)",
		r.goodput, r.throttleRate(), r.throttled, r.attempts, r.ok, r.total, r.local, r.failed, r.unfinished, r.p50, r.p95, r.storeErrors(), r.capacity)
}

// runFleet runs the arrivals of c through c.replicas replicas, round-robin,
// and measures the run: goodput is what the server charged of the binding
// limit, of what that limit allowed in the run.
func runFleet(c fleetConfig) fleetResult {
	h := c.handler
	var sizes []llmhttptest.RequestSize
	for _, k := range mix {
		sizes = append(sizes, llmhttptest.RequestSize{InputTokens: k.input, OutputTokens: meanOutput})
	}
	res := fleetResult{capacity: h.Capacity(llmhttptest.Workload{Provider: c.provider, Model: "model", Mix: sizes})}

	clients := make([]*http.Client, c.replicas)
	for i := range clients {
		s := llmhttp.PacerSettings{MaxWait: -1}
		if c.store != nil {
			s.Store = c.store(i)
		}
		pacer := llmhttp.NewPacer(s)
		res.pacers = append(res.pacers, pacer)
		opts := []llmhttp.Option{llmhttp.WithPacer(pacer)}
		if c.options != nil {
			opts = append(opts, c.options(i)...)
		}
		clients[i] = &http.Client{Transport: llmhttp.New(c.base(i), opts...)}
	}
	bodies := make([][]byte, len(mix))
	for i, k := range mix {
		bodies[i] = llmhttptest.Body(c.provider, "model", k.input, k.maxTokens)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []float64
		last      time.Time
	)
	send := func(client *http.Client, i int) {
		start := time.Now()
		resp, err := client.Do(llmhttptest.NewRequest(ctx, c.provider, "", "sk-fleet", bodies[i%len(bodies)]))
		ok, local := false, false
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
			_, local = llmhttp.RefusalOf(resp)
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ok && ctx.Err() == nil:
			res.ok++
			latencies = append(latencies, time.Since(start).Seconds())
			last = time.Now()
		case ctx.Err() != nil:
			res.unfinished++
		case local:
			res.local++
		default:
			res.failed++
		}
	}

	if c.started != nil {
		c.started(res.pacers)
	}
	start := time.Now()
	runFor := time.Duration(c.windows * float64(c.window))
	var wg sync.WaitGroup
	if c.during != nil {
		dctx, dcancel := context.WithTimeout(ctx, runFor)
		defer dcancel()
		wg.Go(func() { c.during(dctx) })
	}
	n := c.burst
	if n > 0 {
		var sent sync.WaitGroup
		for i := range n {
			sent.Go(func() { send(clients[i%len(clients)], i) })
		}
		done := make(chan struct{})
		wg.Go(func() { sent.Wait(); close(done) })
		t := time.NewTimer(runFor)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		mu.Lock()
		runFor = last.Sub(start)
		mu.Unlock()
	} else {
		gap := time.Duration(float64(time.Second) / (c.load * res.capacity))
		n = int(c.load * res.capacity * runFor.Seconds())
		for i := range n {
			wg.Go(func() { send(clients[i%len(clients)], i) })
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * gap)))
		}
		time.Sleep(time.Until(start.Add(runFor)))
	}
	mu.Lock()
	ok := res.ok
	mu.Unlock()
	cancel()
	wg.Wait()
	res.ok, res.total = ok, n
	st := h.Stats()
	res.attempts, res.throttled = st.Requests, st.ByStatus[http.StatusTooManyRequests]

	// The fraction of capacity used: of each limit, what the server
	// charged over what it allowed in the run (a full bucket at the start,
	// and its refill); the largest is the limit that binds.
	for _, ps := range st.Partitions {
		ok200 := float64(ps.ByStatus[http.StatusOK])
		allowed := func(limit int64) float64 { return float64(limit) * (1 + runFor.Seconds()/c.window.Seconds()) }
		if c.provider == llmhttptest.Anthropic {
			res.goodput = max(ok200/allowed(50), float64(ps.InputTokens)/allowed(30_000), float64(ps.OutputTokens)/allowed(8_000))
		} else {
			res.goodput = max(ok200/allowed(500), float64(ps.InputTokens+ps.OutputTokens)/allowed(30_000))
		}
	}
	slices.Sort(latencies)
	res.p50, res.p95 = quantile(latencies, 0.5), quantile(latencies, 0.95)
	return res
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[min(int(q*float64(len(xs))), len(xs)-1)]
}
