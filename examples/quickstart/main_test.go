package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The quickstart's claim: under the default burst, llmhttp gets more done
// than a plain client and than the SDKs' own retry loop, without 429s.
// The fake is served in memory and the burst runs on synctest's fake clock,
// so the 40 seconds of the real run pass in an instant.
func TestQuickstartLLMHTTPAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := defaultConfig()
		cfg.InMemory = true
		var out bytes.Buffer
		reports, err := compare(t.Context(), &out, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) != 3 {
			t.Fatalf("got %d reports, want 3", len(reports))
		}
		plain, sdk, lh := reports[0], reports[1], reports[2]
		jobs := workload(cfg.Requests, cfg.Seed)
		best := bestTime(cfg, len(jobs), capacity(cfg, jobs))
		for _, r := range reports {
			t.Logf("%-20s ok %d/%d  429s %d  attempts %d  time %v  goodput %.0f tok/min",
				r.name, r.ok, r.requests, r.throttled, r.attempts, r.elapsed, goodput(r, cfg, best))
		}
		if lh.ok != cfg.Requests {
			t.Errorf("llmhttp: %d of %d requests succeeded; failures %v", lh.ok, cfg.Requests, lh.failed)
		}
		if plain.ok >= cfg.Requests || sdk.ok >= cfg.Requests {
			t.Errorf("the burst is too light: plain %d, SDK-style %d of %d succeeded", plain.ok, sdk.ok, cfg.Requests)
		}
		for _, other := range []report{plain, sdk} {
			if g, o := goodput(lh, cfg, best), goodput(other, cfg, best); g <= o {
				t.Errorf("goodput: llmhttp %.0f <= %s %.0f", g, other.name, o)
			}
			if lh.throttled >= other.throttled {
				t.Errorf("429s: llmhttp %d >= %s %d", lh.throttled, other.name, other.throttled)
			}
		}
		if best <= 0 {
			t.Fatalf("the default burst fits in the full buckets")
		}
		if lh.elapsed < best {
			t.Errorf("llmhttp finished in %v, faster than the limits allow (%v): the fake or the arithmetic is wrong", lh.elapsed, best)
		}
	})
}

// run prints the progress and the side-by-side summary.
func TestQuickstartOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := defaultConfig()
		cfg.InMemory = true
		var out bytes.Buffer
		if err := run(t.Context(), &out, cfg); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		for _, want := range []string{
			"plain http.Client", "+ SDK-style retries", "llmhttp.New", // columns
			"succeeded", "failed", "goodput", "429s received", "attempts/request", "latency p50", "latency p95",
			"1,000 requests, 450,000 input tokens and 90,000 output tokens per minute",
			"waiting", // progress lines
		} {
			if !strings.Contains(got, want) {
				t.Errorf("output lacks %q:\n%s", want, got)
			}
		}
		if strings.Contains(got, "\r") {
			t.Errorf("progress rewrote a line on a non-terminal")
		}
	})
}

// On a terminal the progress is one line rewritten in place.
func TestQuickstartProgressOnTerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := defaultConfig()
		cfg.InMemory, cfg.TTY = true, true
		cfg.Requests = 40
		var out bytes.Buffer
		if err := run(t.Context(), &out, cfg); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), "\r\033[K"); n < 3 {
			t.Errorf("progress rewrote its line %d times, want one per contender at least", n)
		}
	})
}

// The real program serves the fake on a loopback socket, on real time: a
// burst that fits in the full buckets runs in well under a second.
func TestQuickstartOverLoopback(t *testing.T) {
	cfg := defaultConfig()
	cfg.Requests, cfg.Concurrency = 30, 8
	cfg.Latency, cfg.TokenLatency = 5*time.Millisecond, 0
	var out bytes.Buffer
	if err := run(t.Context(), &out, cfg); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "30/30") {
		t.Errorf("not every request succeeded over loopback:\n%s", got)
	}
}
