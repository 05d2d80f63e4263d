package llmhttp_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// This file is the workload driver shared by TestPacerWorkloads (fake time,
// goals asserted) and BenchmarkPacerWorkload: it runs a workload of LLM
// requests against llmhttptest through a client and measures what the
// issue asks for.

// pcKind is one kind of request in a workload: its input tokens (as the
// server counts them) and its max_tokens. The server generates a uniform
// 1–199 output tokens (mean 100), below every max_tokens used here.
type pcKind struct{ input, maxTokens int64 }

// pcMix is the varied prompt sizes and max_tokens of the workloads.
var pcMix = []pcKind{{200, 256}, {500, 1024}, {1000, 512}, {2000, 2048}, {300, 4096}, {800, 300}}

// pcMeanOutput is the server's mean output per request.
const pcMeanOutput = 100

// The server's latency: pcLatency before the first token, pcTokenLatency
// per token; pcMeanLatency on average.
const (
	pcLatency      = 500 * time.Millisecond
	pcTokenLatency = 10 * time.Millisecond
	pcMeanLatency  = pcLatency + pcMeanOutput*pcTokenLatency
)

// pcWorkload describes a workload.
type pcWorkload struct {
	name     string
	provider llmhttptest.Provider
	charge   llmhttptest.Charge
	// burst requests are released at once from workers goroutines; when
	// burst is 0 the requests arrive evenly at load × capacity for windows
	// windows.
	burst, workers int
	load, windows  float64
	// transports is the number of independent clients on one key.
	transports int
	// warm sends one request first, so that the pacer has seen the limits.
	warm bool
	// upfront gives the pacer the limits before any response.
	upfront bool
	// window is the server's "minute" (0: a real minute).
	window time.Duration
	// store makes the transports share a PacerStore (an in-memory one, as
	// separate processes would share Redis).
	store bool
}

// pcWorkloads are the workloads of the issue, for both dialects and both
// output charging rules where the rule matters.
func pcWorkloads() []pcWorkload {
	var ws []pcWorkload
	for _, p := range []struct {
		name   string
		prov   llmhttptest.Provider
		charge llmhttptest.Charge
	}{
		{"anthropic-generated", llmhttptest.Anthropic, llmhttptest.ChargeGenerated},
		{"anthropic-reserved", llmhttptest.Anthropic, llmhttptest.ChargeReserved},
		{"openai-reserved", llmhttptest.OpenAI, llmhttptest.ChargeReserved},
		{"openai-generated", llmhttptest.OpenAI, llmhttptest.ChargeGenerated},
	} {
		ws = append(ws,
			pcWorkload{name: "burst/" + p.name, provider: p.prov, charge: p.charge, burst: 300, workers: 64, warm: true},
			pcWorkload{name: "steady-over/" + p.name, provider: p.prov, charge: p.charge, load: 1.5, windows: 10},
			pcWorkload{name: "shared-key/" + p.name, provider: p.prov, charge: p.charge, burst: 300, workers: 64, transports: 4, warm: true},
		)
	}
	for _, p := range []struct {
		name string
		prov llmhttptest.Provider
	}{{"anthropic", llmhttptest.Anthropic}, {"openai", llmhttptest.OpenAI}} {
		ws = append(ws,
			pcWorkload{name: "first-burst-cold/" + p.name, provider: p.prov, burst: 300, workers: 64},
			pcWorkload{name: "first-burst-upfront/" + p.name, provider: p.prov, burst: 300, workers: 64, upfront: true},
		)
	}
	return ws
}

// pcShortWindow is the shortened "minute" of the short-window workloads.
const pcShortWindow = 6 * time.Second

// pcShortWorkloads are the burst, steady-over and shared-key workloads
// against a server whose "minute" is window: the pacer must learn the
// window from the resets (the headers say nothing else).
func pcShortWorkloads(window time.Duration) []pcWorkload {
	var ws []pcWorkload
	for _, w := range pcWorkloads() {
		if strings.HasPrefix(w.name, "first-burst") {
			continue
		}
		w.name = "window-" + window.String() + "/" + w.name
		w.window = window
		ws = append(ws, w)
	}
	return ws
}

// The server's limits (llmhttptest's defaults, spelled out).
var (
	pcAnthropicLimits = llmhttptest.Limits{RPM: 50, ITPM: 30_000, OTPM: 8_000}
	pcOpenAILimits    = llmhttptest.Limits{RPM: 500, TPM: 30_000}
)

// pcResult is what a run measured.
type pcResult struct {
	ok, failed, local, unfinished int
	total                         int     // requests of the workload
	attempts, throttled           int64   // seen by the server; its 429s
	elapsed                       float64 // seconds, to the last success
	capacity                      float64 // requests per second
	allowance                     float64 // requests the full buckets admit at once
	goodput                       float64 // fraction of capacity
	p50, p95                      float64 // seconds, successful requests
}

// throttleRate returns the server's 429s per attempt.
func (r pcResult) throttleRate() float64 {
	if r.attempts == 0 {
		return 0
	}
	return float64(r.throttled) / float64(r.attempts)
}

// attemptsPerSuccess returns the attempts the server saw per success.
func (r pcResult) attemptsPerSuccess() float64 {
	if r.ok == 0 {
		return math.Inf(1)
	}
	return float64(r.attempts) / float64(r.ok)
}

func (r pcResult) String() string {
	return fmt.Sprintf("goodput %.3f  429/attempt %.4f  attempts/success %.3f  ok %d/%d  failed %d (local %d)  unfinished %d  p50 %.1fs  p95 %.1fs  (capacity %.3f/s, allowance %.0f, %.0fs)",
		r.goodput, r.throttleRate(), r.attemptsPerSuccess(), r.ok, r.total, r.failed, r.local, r.unfinished, r.p50, r.p95, r.capacity, r.allowance, r.elapsed)
}

// pcClients are the clients a workload runs through.
const (
	pcLLMHTTP = "llmhttp" // llmhttp.New: retry, breaker, pacer
	pcPlain   = "plain"   // the bare transport: every request sent once
	pcSDK     = "sdk"     // the official SDKs' own loop: 2 retries, Retry-After obeyed
)

// pcRunWorkload runs w through clients of kind mode against a fresh
// llmhttptest handler, with a one-minute window, and must run inside a
// synctest bubble (the handler's latencies and the minute pass on the fake
// clock).
func pcRunWorkload(w pcWorkload, mode string) pcResult {
	cfg := llmhttptest.Config{
		Anthropic: pcAnthropicLimits, OpenAI: pcOpenAILimits,
		AnthropicCharge: w.charge, OpenAICharge: w.charge,
		MeanOutput: pcMeanOutput,
		Latency:    pcLatency, TokenLatency: pcTokenLatency,
		Seed: 7, Window: w.window,
	}
	h := llmhttptest.NewHandler(cfg)
	base := h.Transport()

	var mix []llmhttptest.RequestSize
	var sumIn float64
	for _, k := range pcMix {
		mix = append(mix, llmhttptest.RequestSize{InputTokens: k.input, OutputTokens: pcMeanOutput})
		sumIn += float64(k.input)
	}
	avgIn := sumIn / float64(len(pcMix))
	res := pcResult{capacity: h.Capacity(llmhttptest.Workload{Provider: w.provider, Model: "model", Mix: mix})}
	if w.provider == llmhttptest.Anthropic {
		l := pcAnthropicLimits
		res.allowance = min(float64(l.RPM), float64(l.ITPM)/avgIn, float64(l.OTPM)/pcMeanOutput)
	} else {
		l := pcOpenAILimits
		res.allowance = min(float64(l.RPM), float64(l.TPM)/(avgIn+pcMeanOutput))
	}

	clients := make([]http.RoundTripper, max(w.transports, 1))
	store := &fakeStore{horizon: time.Second} // declines long waits, as the Redis store does
	for i := range clients {
		switch mode {
		case pcLLMHTTP:
			s := llmhttp.PacerSettings{MaxWait: -1}
			if w.store {
				s.Store = store
			}
			if w.upfront {
				s.Limits = map[string]llmhttp.Limits{"": pcUpfront(w.provider)}
			}
			clients[i] = llmhttp.New(base, llmhttp.WithPacerSettings(s))
		case pcSDK:
			clients[i] = &pcSDKRetry{next: base}
		default:
			clients[i] = base
		}
	}

	bodies := make([][]byte, len(pcMix))
	for i, k := range pcMix {
		bodies[i] = llmhttptest.Body(w.provider, "model", k.input, k.maxTokens)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []float64
		last      time.Time
	)
	send := func(client http.RoundTripper, i int) {
		start := time.Now()
		req := llmhttptest.NewRequest(ctx, w.provider, "", "sk-workload", bodies[i%len(bodies)])
		resp, err := client.RoundTrip(req)
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
		case ok:
			res.ok++
			latencies = append(latencies, time.Since(start).Seconds())
			last = time.Now()
		case ctx.Err() != nil:
			res.unfinished++
		case local:
			res.local++
			res.failed++
		default:
			res.failed++
		}
	}

	if w.warm {
		for _, c := range clients {
			send(c, 0)
		}
	}
	start := time.Now()
	okBefore := res.ok
	var wg sync.WaitGroup
	if w.burst > 0 {
		next := make(chan int)
		for g := range w.workers {
			c := clients[g%len(clients)]
			wg.Go(func() {
				for i := range next {
					send(c, i)
				}
			})
		}
		for i := range w.burst {
			next <- i
		}
		close(next)
		wg.Wait()
	} else {
		gap := time.Duration(float64(time.Second) / (w.load * res.capacity))
		n := int(w.load * res.capacity * w.windows * pcWindow(w).Seconds())
		for i := range n {
			wg.Go(func() { send(clients[i%len(clients)], i) })
			time.Sleep(gap)
		}
		stop := start.Add(time.Duration(w.windows * float64(pcWindow(w))))
		time.Sleep(time.Until(stop))
		mu.Lock()
		counted := res.ok - okBefore
		mu.Unlock()
		cancel()
		wg.Wait()
		res.ok = okBefore + counted
		res.elapsed = stop.Sub(start).Seconds()
	}
	st := h.Stats()
	res.attempts, res.throttled = st.Requests, st.ByStatus[http.StatusTooManyRequests]
	ok := float64(res.ok - okBefore)
	if w.burst > 0 {
		res.elapsed = last.Sub(start).Seconds()
	}
	// The initial buckets admit an allowance at once; the rest can go at
	// the capacity at best. A warmed-up run spent one request of it per
	// client.
	allowance := res.allowance
	if w.warm {
		allowance -= float64(len(clients))
	}
	switch {
	case res.capacity <= 0 || res.elapsed <= 0:
	case w.burst > 0:
		// The share of the burst served, times the ideal time to serve it
		// over the time taken (capped at 1: failing fast is not faster).
		// The ideal is the time the limits need to admit the burst, plus
		// the mean latency of the last request admitted (1.5 s: a third
		// of a percent of a one-minute window's burst, but 3 % of a
		// six-second one's).
		n := float64(w.burst)
		ideal := max(n-allowance, 0)/res.capacity + pcMeanLatency.Seconds()
		res.goodput = ok / n * min(1, ideal/res.elapsed)
	default:
		// What was served in the run, of what the limits allow in it
		// (capped: a client that lets 429s drop its large requests serves
		// more small ones than the mix's capacity). A request admitted
		// less than the mean latency before the end cannot have finished.
		span := res.elapsed - pcMeanLatency.Seconds()
		possible := allowance + res.capacity*span
		res.goodput = (min(ok, possible) - allowance) / (res.capacity * span)
	}
	res.total = w.burst
	if w.burst == 0 {
		res.total = int(w.load * res.capacity * w.windows * pcWindow(w).Seconds())
	}
	res.ok -= okBefore // the warm-up is not part of the workload
	slices.Sort(latencies)
	res.p50, res.p95 = pcQuantile(latencies, 0.5), pcQuantile(latencies, 0.95)
	return res
}

// pcWindow returns the server's window of w.
func pcWindow(w pcWorkload) time.Duration {
	if w.window > 0 {
		return w.window
	}
	return time.Minute
}

// pcQuantile returns the q quantile of sorted xs (0 when empty).
func pcQuantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[min(int(q*float64(len(xs))), len(xs)-1)]
}

// pcUpfront returns the server's limits as llmhttp up-front limits.
func pcUpfront(p llmhttptest.Provider) llmhttp.Limits {
	if p == llmhttptest.Anthropic {
		l := pcAnthropicLimits
		return llmhttp.Limits{
			Requests:     llmhttp.Limit{Limit: l.RPM},
			InputTokens:  llmhttp.Limit{Limit: l.ITPM},
			OutputTokens: llmhttp.Limit{Limit: l.OTPM},
		}
	}
	l := pcOpenAILimits
	return llmhttp.Limits{Requests: llmhttp.Limit{Limit: l.RPM}, Tokens: llmhttp.Limit{Limit: l.TPM}}
}

// pcSDKRetry is the official SDKs' own retry loop, for comparison: two
// retries of 408, 409, 429 and 5xx, after retry-after when it is given
// (anthropic-sdk-go: any; openai-go: up to 2 minutes), else after
// 0.5 s × 2ⁿ (at most 8 s) less up to 25 % jitter.
type pcSDKRetry struct{ next http.RoundTripper }

func (s *pcSDKRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			r = req.Clone(req.Context())
			r.Body, _ = req.GetBody()
		}
		resp, err := s.next.RoundTrip(r)
		if err != nil || attempt == 2 {
			return resp, err
		}
		switch c := resp.StatusCode; {
		case c == 408, c == 409, c == 429, c >= 500:
		default:
			return resp, nil
		}
		wait := time.Duration(float64(500*time.Millisecond) * math.Pow(2, float64(attempt)))
		wait = min(wait, 8*time.Second)
		wait -= time.Duration(float64(wait) * 0.25 * float64(attempt%2) / 2) // deterministic stand-in for the jitter
		if s, err := strconv.ParseFloat(resp.Header.Get("Retry-After"), 64); err == nil && s >= 0 && s <= 120 {
			wait = time.Duration(s * float64(time.Second))
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
}
