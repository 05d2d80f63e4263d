package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

const (
	model      = "claude-sonnet-4-5"
	apiKey     = "sk-ant-quickstart" // the fake accepts any key
	meanOutput = 100                 // the fake's mean reply, in tokens
)

// A job is one request of the burst.
type job struct {
	inputTokens int64 // as the server counts them
	maxTokens   int64
	body        []byte
}

// workload returns the burst: n requests of the sizes a real application
// mixes — mostly short chat turns, some retrieval-augmented prompts, a few
// long documents — each with its own max_tokens.
func workload(n int, seed uint64) []job {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	jobs := make([]job, n)
	for i := range jobs {
		var tokens, maxTokens int64
		switch p := rng.Float64(); {
		case p < 0.6: // a chat turn
			tokens, maxTokens = 150+rng.Int64N(450), 256
		case p < 0.9: // a prompt with retrieved context
			tokens, maxTokens = 1500+rng.Int64N(2000), 1024
		default: // a long document to summarise
			tokens, maxTokens = 6000+rng.Int64N(4000), 2048
		}
		text := filler(rng, int(tokens)*4) // the server counts characters/4
		body, err := json.Marshal(map[string]any{
			"model":      model,
			"max_tokens": maxTokens,
			"messages":   []map[string]string{{"role": "user", "content": text}},
		})
		if err != nil {
			panic(err) // a map of strings and numbers always encodes
		}
		jobs[i] = job{inputTokens: llmhttptest.Tokens(text), maxTokens: maxTokens, body: body}
	}
	return jobs
}

var words = strings.Fields("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches")

// filler returns n characters of words.
func filler(rng *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

// A contender is one way of sending the burst.
type contender struct {
	name string
	// client returns the caller's client over wire, the transport that
	// reaches the server.
	client func(wire http.RoundTripper) doer
}

type doer func(*http.Request) (*http.Response, error)

var contenders = []contender{
	{"plain http.Client", func(wire http.RoundTripper) doer {
		return (&http.Client{Transport: wire}).Do
	}},
	{"+ SDK-style retries", func(wire http.RoundTripper) doer {
		return sdkRetries((&http.Client{Transport: wire}).Do)
	}},
	{"llmhttp.New", func(wire http.RoundTripper) doer {
		return (&http.Client{Transport: llmhttp.New(wire)}).Do
	}},
}

// A report is what one contender achieved.
type report struct {
	name      string
	requests  int
	ok        int
	okTokens  int64          // input tokens of the successful requests
	failed    map[string]int // by status ("429", "529", "error", …)
	attempts  int64          // requests that reached the server, retries included
	throttled int64          // 429s the server sent
	elapsed   time.Duration
	latencies []time.Duration // of the successful requests, sorted
}

func (r report) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p*float64(len(r.latencies))+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// compare sends the burst through every contender, each against a fresh
// server with full buckets, and returns their reports.
func compare(ctx context.Context, progress io.Writer, cfg config) ([]report, error) {
	jobs := workload(cfg.Requests, cfg.Seed)
	fmt.Fprintln(progress, wrap(fmt.Sprintf("A burst of %d Claude requests, %d at a time, to a fake Anthropic API "+
		"(llmhttptest) with %s per minute, sent three ways: through a plain http.Client; through the same, "+
		"retrying as the official SDKs do by default; through llmhttp.New.",
		len(jobs), cfg.Concurrency, limitsText(cfg.Limits)), 100))
	fmt.Fprintln(progress)
	var reports []report
	for _, c := range contenders {
		r, err := fire(ctx, progress, cfg, c, jobs)
		if err != nil {
			return nil, err
		}
		reports = append(reports, r)
	}
	return reports, nil
}

// serverConfig is the fake API: Anthropic's Tier 1 limits, on a shortened
// minute.
func serverConfig(cfg config) llmhttptest.Config {
	return llmhttptest.Config{
		Anthropic:    cfg.Limits,
		Window:       cfg.Window,
		Latency:      cfg.Latency,
		TokenLatency: cfg.TokenLatency,
		MeanOutput:   meanOutput,
		Seed:         cfg.Seed,
	}
}

// capacity is the steady rate, in requests per second, at which the fake's
// limits admit the burst's mix of requests.
func capacity(cfg config, jobs []job) float64 {
	mix := make([]llmhttptest.RequestSize, len(jobs))
	for i, j := range jobs {
		mix[i] = llmhttptest.RequestSize{InputTokens: j.inputTokens, OutputTokens: meanOutput}
	}
	h := llmhttptest.NewHandler(serverConfig(cfg))
	return h.Capacity(llmhttptest.Workload{Provider: llmhttptest.Anthropic, Model: model, Mix: mix})
}

// fire sends jobs through c, cfg.Concurrency at a time, against a fresh fake
// server, showing progress on w.
func fire(ctx context.Context, w io.Writer, cfg config, c contender, jobs []job) (report, error) {
	var base http.RoundTripper
	var url string
	if cfg.InMemory {
		h := llmhttptest.NewHandler(serverConfig(cfg))
		base, url = h.Transport(), "https://api.anthropic.com"
	} else {
		srv := llmhttptest.NewServer(serverConfig(cfg))
		defer srv.Close()
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Concurrency // keep-alive for every worker
		defer t.CloseIdleConnections()
		base, url = t, srv.URL
	}
	wire := &wireCounter{next: base}
	do := c.client(wire)

	var st runState
	st.total = len(jobs)
	r := report{name: c.name, requests: len(jobs), failed: map[string]int{}}
	var mu sync.Mutex // guards r
	start := time.Now()
	stopProgress := showProgress(w, cfg, c.name, start, &st, wire)

	queue := make(chan job)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for j := range queue {
				st.active.Add(1)
				t0 := time.Now()
				outcome := send(ctx, do, url, j)
				lat := time.Since(t0)
				st.active.Add(-1)
				st.done.Add(1)
				mu.Lock()
				if outcome == "" {
					st.ok.Add(1)
					r.ok++
					r.okTokens += j.inputTokens
					r.latencies = append(r.latencies, lat)
				} else {
					r.failed[outcome]++
				}
				mu.Unlock()
			}
		})
	}
	for _, j := range jobs {
		select {
		case queue <- j:
		case <-ctx.Done():
		}
	}
	close(queue)
	wg.Wait()
	r.elapsed = time.Since(start)
	stopProgress()
	if err := ctx.Err(); err != nil {
		return r, err
	}
	r.attempts, r.throttled = wire.attempts.Load(), wire.throttled.Load()
	sort.Slice(r.latencies, func(a, b int) bool { return r.latencies[a] < r.latencies[b] })
	return r, nil
}

// send makes one request of the burst and returns "" on success, else what
// its failure was.
func send(ctx context.Context, do doer, url string, j job) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/messages", bytes.NewReader(j.body))
	if err != nil {
		return "error"
	}
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	resp, err := do(req)
	if err != nil {
		return "error"
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "error"
	}
	if resp.StatusCode != http.StatusOK {
		if ref, ok := llmhttp.RefusalOf(resp); ok {
			return "local " + ref.Reason
		}
		return fmt.Sprint(resp.StatusCode)
	}
	return ""
}

// runState is the live state of a run, for the progress display.
type runState struct {
	total            int
	done, ok, active atomic.Int64
}

// wireCounter counts what reaches the server.
type wireCounter struct {
	next                http.RoundTripper
	attempts, throttled atomic.Int64
	inFlight            atomic.Int64
}

func (c *wireCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.attempts.Add(1)
	c.inFlight.Add(1)
	resp, err := c.next.RoundTrip(req)
	c.inFlight.Add(-1)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.throttled.Add(1)
	}
	return resp, err
}
