// Command batch runs a batch job of a few thousand Claude requests through
// one llmhttp transport: every request is started at once, and llmhttp's
// pacer queues them — at most MaxConcurrent in flight, sent as fast as the
// rate limits allow, in order of priority, then arrival. A few seconds in,
// high-priority requests (an interactive user, say) arrive and go to the
// front of the queue. Progress shows the queue draining; the summary shows
// the latency of each priority.
//
// Without ANTHROPIC_API_KEY it runs against llmhttptest's fake Anthropic API
// on a loopback port, with Anthropic's Tier 4 limits for Claude Sonnet
// (4,000 requests, 2,000,000 input and 400,000 output tokens per minute) on
// real minutes: 2,100 requests take well under a minute. With the key set it
// sends a small batch (-requests, 20 by default) of tiny requests to Claude
// Haiku: mind the cost before raising it.
//
//	go run ./examples/batch
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	cfg := config{
		Requests: 2000, Urgent: 100, UrgentAfter: 3 * time.Second,
		MaxConcurrent: 128, Deadline: 10 * time.Minute, ProgressEvery: 2 * time.Second,
		Model: "claude-sonnet-4-5", Words: 1000, Seed: 1,
	}
	apiKey := os.Getenv("ANTHROPIC_API_KEY")
	if apiKey != "" {
		cfg.Requests, cfg.Urgent, cfg.Model, cfg.Words = 20, 2, "claude-haiku-4-5", 20
	}
	flag.IntVar(&cfg.Requests, "requests", cfg.Requests, "low-priority requests in the batch")
	flag.IntVar(&cfg.Urgent, "urgent", cfg.Urgent, "high-priority requests arriving during the batch")
	flag.IntVar(&cfg.MaxConcurrent, "concurrency", cfg.MaxConcurrent, "requests in flight at most")
	flag.Parse()

	if apiKey != "" {
		cfg.APIKey, cfg.BaseURL = apiKey, "https://api.anthropic.com"
	} else {
		srv := llmhttptest.NewServer(fakeConfig())
		defer srv.Close()
		cfg.APIKey, cfg.BaseURL = "sk-ant-fake", srv.URL
		fmt.Printf("ANTHROPIC_API_KEY is not set: using llmhttptest's fake Anthropic API at %s,\n"+
			"with Tier 4 limits: 4,000 requests, 2,000,000 input and 400,000 output tokens per minute.\n\n", srv.URL)
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.MaxConcurrent
		cfg.Base = t
	}
	demo.Main("batch", nil, func(ctx context.Context, w io.Writer) error { return run(ctx, w, cfg) })
}

// fakeConfig is the fake API: Anthropic's Tier 4 limits for Claude Sonnet,
// and replies of about 100 tokens that take about a second.
func fakeConfig() llmhttptest.Config {
	return llmhttptest.Config{
		Anthropic:    llmhttptest.Limits{RPM: 4000, ITPM: 2_000_000, OTPM: 400_000},
		Latency:      300 * time.Millisecond,
		TokenLatency: 6 * time.Millisecond,
	}
}

// config is what run needs.
type config struct {
	APIKey  string
	BaseURL string // "https://api.anthropic.com" for the real API
	Model   string
	// Base is the transport beneath llmhttp; nil means
	// http.DefaultTransport.
	Base http.RoundTripper

	// Requests is the batch: low-priority requests, all started at once.
	Requests int
	// Urgent high-priority requests arrive UrgentAfter into the batch.
	Urgent      int
	UrgentAfter time.Duration
	// MaxConcurrent caps the requests in flight (the pacer queues the
	// others).
	MaxConcurrent int
	// Deadline bounds each request, its wait in the queue included.
	Deadline time.Duration
	// Words is the mean prompt length, in words.
	Words int
	Seed  uint64

	ProgressEvery time.Duration
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	// A batch wants to wait rather than be refused: MaxWait < 0 lets each
	// request wait as long as its context allows (the default refuses a
	// wait longer than a minute with a local 429). The queue is per
	// partition (host, key, model), ordered by priority, then arrival.
	transport := llmhttp.New(cfg.Base, llmhttp.WithPacerSettings(llmhttp.PacerSettings{
		MaxConcurrent: cfg.MaxConcurrent,
		MaxWait:       -1,
	}))
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	var (
		done, failed atomic.Int64
		mu           sync.Mutex
		latency      = map[llmhttp.Priority][]time.Duration{}
		failures     = map[string]int{}
		wg           sync.WaitGroup
	)
	send := func(prio llmhttp.Priority, body []byte) {
		defer wg.Done()
		start := time.Now()
		err := call(ctx, client, cfg, prio, body)
		d := time.Since(start)
		done.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed.Add(1)
			failures[err.Error()]++
			return
		}
		latency[prio] = append(latency[prio], d)
	}

	total := cfg.Requests + cfg.Urgent
	fmt.Fprintf(w, "batch: %d low-priority requests now, %d high-priority ones after %v; at most %d in flight.\n",
		cfg.Requests, cfg.Urgent, cfg.UrgentAfter, cfg.MaxConcurrent)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	start := time.Now()
	stopProgress := progress(w, cfg.ProgressEvery, func() string {
		var queued, inFlight int
		var sent, throttled int64
		for _, st := range transport.Pacer().Stats() {
			queued += st.Queued
			inFlight += st.InFlight
			sent += st.Sent
			throttled += st.Throttled
		}
		return fmt.Sprintf("%6.1fs  done %4d/%d  failed %d  in flight %3d  queued %4d  sent %4d  429s %d",
			time.Since(start).Seconds(), done.Load(), total, failed.Load(), inFlight, queued, sent, throttled)
	})

	wg.Add(total)
	for range cfg.Requests {
		go send(llmhttp.PriorityLow, prompt(rng, cfg))
	}
	urgent := make([][]byte, cfg.Urgent)
	for i := range urgent {
		urgent[i] = prompt(rng, cfg)
	}
	t := time.NewTimer(cfg.UrgentAfter)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	for _, body := range urgent {
		go send(llmhttp.PriorityHigh, body)
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	fmt.Fprintf(w, "\n%d requests in %.1fs, %d failed.\n", total, elapsed.Seconds(), failed.Load())
	for _, p := range []llmhttp.Priority{llmhttp.PriorityHigh, llmhttp.PriorityLow} {
		l := latency[p]
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		fmt.Fprintf(w, "  %-4s priority: %4d ok, latency (queueing included) p50 %6.2fs  p95 %6.2fs  max %6.2fs\n",
			p, len(l), pct(l, 0.5).Seconds(), pct(l, 0.95).Seconds(), pct(l, 1).Seconds())
	}
	var reasons []string
	for r, n := range failures {
		reasons = append(reasons, fmt.Sprintf("  %d× %s", n, r))
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintln(w, r)
	}
	for _, st := range transport.Pacer().Stats() {
		fmt.Fprintf(w, "pacer, %s: sent %d, throttled %d, refused %d\n", st.Partition.Model, st.Sent, st.Throttled, st.Refused)
	}
	return ctx.Err()
}

// call sends one request of the batch with priority prio and reads its
// reply.
func call(ctx context.Context, c *http.Client, cfg config, prio llmhttp.Priority, body []byte) error {
	ctx, cancel := context.WithTimeout(llmhttp.WithPriority(ctx, prio), cfg.Deadline)
	defer cancel()
	req, err := demo.NewMessagesRequest(ctx, cfg.BaseURL, cfg.APIKey, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		if r, ok := llmhttp.RefusalOf(resp); ok {
			return fmt.Errorf("refused by llmhttp: %s", r.Reason)
		}
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

var words = strings.Fields("summarise classify translate extract the invoice ticket review email report contract log for a customer in two lines")

// prompt returns the body of one request: a prompt of about cfg.Words
// words (between half and one and a half times as many).
func prompt(rng *rand.Rand, cfg config) []byte {
	n := cfg.Words/2 + rng.IntN(cfg.Words+1)
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[rng.IntN(len(words))])
	}
	body, err := json.Marshal(map[string]any{
		"model":      cfg.Model,
		"max_tokens": 256,
		"messages":   []map[string]string{{"role": "user", "content": b.String()}},
	})
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	return body
}

// progress prints line() every period until the returned function is
// called, which prints it a last time.
func progress(w io.Writer, every time.Duration, line func() string) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				fmt.Fprintln(w, line())
			case <-quit:
				fmt.Fprintln(w, line())
				return
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// pct returns the p-quantile of sorted.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
