// Command metrics serves llmhttp's Prometheus metrics at /metrics while a
// burst of requests runs through llmhttp against llmhttptest's fake,
// rate-limited Anthropic API — the figures an operator watches: the 429
// rate, retries per request, latency percentiles, time spent waiting and
// why, tokens.
//
//	go run ./examples/metrics                 # serves http://localhost:9464/metrics during the burst
//	go run ./examples/metrics -serve          # and keeps serving afterwards
//	curl -s localhost:9464/metrics | grep ^llmhttp_
//
// The fake allows Anthropic's Tier 1 limits (50 requests, 30 000 input and
// 8 000 output tokens) per 10-second "minute", so the burst of 150 requests
// takes half a minute; 3 % of its answers are 529 overloaded_error, which
// llmhttp retries. At the end the program prints the figures the README's
// PromQL computes, read from the same registry.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/llmhttp/llmhttp/prom"
)

const (
	model  = "claude-sonnet-4-5"
	apiKey = "sk-ant-metrics-example" // the fake accepts any key
)

func main() {
	addr := flag.String("addr", "localhost:9464", "address to serve /metrics on")
	requests := flag.Int("requests", 150, "requests in the burst")
	serve := flag.Bool("serve", false, "keep serving /metrics after the burst, until interrupted")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: metricsMux(reg), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("serving http://%s/metrics\n", ln.Addr())

	cfg := defaultConfig()
	cfg.Requests = *requests
	if _, err := run(ctx, os.Stdout, cfg, reg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *serve {
		fmt.Printf("still serving http://%s/metrics; interrupt to stop\n", ln.Addr())
		<-ctx.Done()
	}
}

// metricsMux serves reg at /metrics.
func metricsMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// config is the burst and the fake it runs against.
type config struct {
	Requests    int
	Concurrency int
	Seed        uint64
	Window      time.Duration // the fake's "minute"
	Overloaded  float64       // share of answers that are 529
	// InMemory serves the fake in memory (for tests on synctest's fake
	// clock) instead of on a loopback port.
	InMemory bool
}

func defaultConfig() config {
	return config{Requests: 150, Concurrency: 16, Seed: 1, Window: 10 * time.Second, Overloaded: 0.03}
}

// summary is what the burst achieved, as the metrics show it.
type summary struct {
	Requests, OK       int
	Attempts, Throttle float64 // from llmhttp_attempts_total
	Retries            float64 // from llmhttp_retries_total
	P95                float64 // seconds, from llmhttp_request_duration_seconds
	Server             llmhttptest.Stats
}

// run sends the burst through llmhttp with a Prometheus collector
// registered on reg, and prints the figures.
func run(ctx context.Context, out io.Writer, cfg config, reg *prometheus.Registry) (summary, error) {
	fake := llmhttptest.Config{
		Window: cfg.Window,
		Seed:   cfg.Seed,
		Faults: []llmhttptest.Fault{{Kind: llmhttptest.Overloaded, Probability: cfg.Overloaded}},
	}
	var (
		h       *llmhttptest.Handler
		wire    http.RoundTripper
		baseURL string
	)
	if cfg.InMemory {
		h = llmhttptest.NewHandler(fake)
		wire, baseURL = h.Transport(), "https://api.anthropic.test"
	} else {
		srv := llmhttptest.NewServer(fake)
		defer srv.Close()
		h, wire, baseURL = srv.Handler, http.DefaultTransport, srv.URL
	}

	collector, err := prom.New(reg)
	if err != nil {
		return summary{}, err
	}
	tr := llmhttp.New(wire, llmhttp.WithObserver(collector.Observer()))
	collector.Watch(tr)
	client := &http.Client{Transport: tr}

	bodies := workload(cfg.Requests, cfg.Seed)
	var (
		mu  sync.Mutex
		sum summary
		wg  sync.WaitGroup
	)
	jobs := make(chan []byte)
	for range cfg.Concurrency {
		wg.Go(func() {
			for body := range jobs {
				ok := send(ctx, client, baseURL, body)
				mu.Lock()
				sum.Requests++
				if ok {
					sum.OK++
				}
				done := sum.Requests
				mu.Unlock()
				if done%50 == 0 {
					fmt.Fprintf(out, "%d/%d requests done\n", done, cfg.Requests)
				}
			}
		})
	}
feed:
	for _, b := range bodies {
		select {
		case jobs <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()

	sum.Server = h.Stats()
	families, err := reg.Gather()
	if err != nil {
		return sum, err
	}
	var requests float64
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "llmhttp_requests_total":
				requests += m.GetCounter().GetValue()
			case "llmhttp_attempts_total":
				sum.Attempts += m.GetCounter().GetValue()
				if label(m.GetLabel(), "code") == "429" {
					sum.Throttle += m.GetCounter().GetValue()
				}
			case "llmhttp_retries_total":
				sum.Retries += m.GetCounter().GetValue()
			case "llmhttp_request_duration_seconds":
				sum.P95 = quantile(0.95, m.GetHistogram())
			}
		}
	}
	fmt.Fprintf(out, "\n%d of %d requests succeeded\n", sum.OK, sum.Requests)
	if sum.Attempts > 0 && requests > 0 {
		fmt.Fprintf(out, "429 rate:             %.2f %%   (goal < 1 %%)\n", 100*sum.Throttle/sum.Attempts)
		fmt.Fprintf(out, "retries per request:  %.2f     (goal < 0.3; attempts per request %.2f)\n",
			sum.Retries/requests, sum.Attempts/requests)
	}
	fmt.Fprintf(out, "p95 latency:          ≤ %gs (histogram bucket; waits for the rate limits included)\n", sum.P95)
	return sum, ctx.Err()
}

// send posts body and reads the answer; it reports a 200.
func send(ctx context.Context, c *http.Client, baseURL string, body []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// workload returns n request bodies: mostly chat turns, some longer
// prompts.
func workload(n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 42))
	out := make([][]byte, n)
	for i := range out {
		chars, maxTokens := 400+rng.IntN(1600), 256
		if rng.Float64() < 0.2 {
			chars, maxTokens = 4000+rng.IntN(8000), 1024
		}
		b, err := json.Marshal(map[string]any{
			"model": model, "max_tokens": maxTokens,
			"messages": []map[string]string{{"role": "user", "content": strings.Repeat("lorem ipsum ", chars/12)}},
		})
		if err != nil {
			panic(err) // strings and numbers always encode
		}
		out[i] = b
	}
	return out
}

// label returns the value of the label named name.
func label(ls []*dto.LabelPair, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// quantile returns the upper bound of the bucket holding the q-quantile of
// h, as PromQL's histogram_quantile would bound it.
func quantile(q float64, h *dto.Histogram) float64 {
	rank := q * float64(h.GetSampleCount())
	for _, b := range h.GetBucket() {
		if float64(b.GetCumulativeCount()) >= rank {
			return b.GetUpperBound()
		}
	}
	return 0
}
