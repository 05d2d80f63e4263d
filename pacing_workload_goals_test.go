package llmhttp_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestPacerWorkloads runs the workloads against llmhttptest on fake
// time (a real one-minute window, passing instantly) through llmhttp, and
// asserts the goals:
//
//   - burst: ≥ 0.97 of capacity, ≤ 1 % of attempts answered 429, no
//     failure;
//   - steady-over: the same;
//   - shared-key: ≥ 0.90 of capacity, ≤ 3 % of attempts answered 429 (on
//     the mean of three runs, not by every single run: see below);
//   - the first bursts (cold, and with limits up front) are reported only.
//
// With -v it logs every figure, and the same workloads through a plain
// client (each request sent once) and through the SDKs' own retry loop.
func TestPacerWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("workloads are long")
	}
	for _, w := range pcWorkloads() {
		t.Run(w.name, func(t *testing.T) {
			for _, mode := range []string{pcLLMHTTP, pcPlain, pcSDK} {
				// Runs differ by the order in which the goroutines of one
				// instant are scheduled; the shared-key runs, whose clients
				// race each other, are judged on the mean of three.
				runs := 1
				if mode == pcLLMHTTP && strings.HasPrefix(w.name, "shared-key/") {
					runs = 3
				}
				var goodput, throttled float64
				var failed int
				for range runs {
					var r pcResult
					synctest.Test(t, func(t *testing.T) { r = pcRunWorkload(w, mode) })
					t.Logf("%-8s %v", mode, r)
					goodput += r.goodput / float64(runs)
					throttled += r.throttleRate() / float64(runs)
					failed += r.failed
				}
				if mode != pcLLMHTTP {
					continue
				}
				wantGoodput, wantThrottled, wantFailed := 0.97, 0.01, 0
				switch {
				case strings.HasPrefix(w.name, "shared-key/"):
					// Four clients that see each other only through the
					// headers: 0.1 % of attempts answered 429 under the
					// generated rule, 0.9 % under OpenAI's reserved one and
					// 1.2 % under Anthropic's (1.5 % in the race build; mean
					// of 100–200 runs: notes/pacer-results.md), but single
					// runs reach 3.5 % under reservation, where a client
					// with nothing in flight sends a request holding up to
					// 4,096 tokens of max_tokens, half the bucket, on a
					// report seconds old. A mean of three above 3 % came up
					// once in 100,000 triples drawn from those runs (6 times
					// in the race build). A request may run out of its
					// attempts.
					wantGoodput, wantThrottled, wantFailed = 0.90, 0.03, 3*runs
				case strings.HasPrefix(w.name, "first-burst"):
					continue
				case w.name == "burst/anthropic-reserved":
					// The pacer starts from Anthropic's documented rule
					// (generated) and learns from a 429 that max_tokens is
					// reserved: 1–5 of ~302 attempts, 0.7 % on the mean of 30
					// race runs; a single run may reach 1.7 %.
					wantThrottled = 0.02
				}
				if goodput < wantGoodput {
					t.Errorf("goodput %.3f of capacity, want ≥ %.2f", goodput, wantGoodput)
				}
				if throttled > wantThrottled {
					t.Errorf("%.2f%% of attempts answered 429, want ≤ %.1f%%", 100*throttled, 100*wantThrottled)
				}
				if failed > wantFailed {
					t.Errorf("%d requests failed, want ≤ %d", failed, wantFailed)
				}
			}
		})
	}
}

// TestPacerWorkloadsShortWindow runs the burst, steady-over and shared-key
// workloads against servers whose "minute" is 6 s and 10 s, so that the
// refill is ten and six times what a one-minute window implies and the
// pacer must learn the window from the resets (the headers say nothing
// else). Goals, burst and steady-over (shared-key is reported only):
//
//   - ≥ 0.95 of capacity at 10 s and ≥ 0.93 at 6 s, ≤ 1 % 429s, no
//     failure — for both dialects under the generated rule and OpenAI's
//     under reservation (measured 0.965–1.000 at 10 s, 0.944–1.000 at 6 s:
//     the 1.5 s the first report takes, while the pacer still believes a
//     minute, is a quarter of a 6 s window);
//   - Anthropic's reserved rule, a known gap: ≥ 0.75 at 6 s and ≥ 0.85 at
//     10 s (measured 0.77–0.93 and 0.91–0.98), ≤ 2 % 429s. A request there
//     holds max_tokens (up to 4,096: half of the 8,000 OTPM) for the 1.5 s
//     it takes, a quarter of a 6 s window, so the output bucket admits
//     fewer requests at once than the capacity formula (which counts
//     generated output only) assumes; and the burst's first seconds, while
//     the pacer still believes a minute, learns that max_tokens is
//     reserved and believes the first report by a quarter (for shared
//     keys), weigh ten times what they weigh against a minute.
func TestPacerWorkloadsShortWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("workloads are long")
	}
	for _, window := range []time.Duration{pcShortWindow, 10 * time.Second} {
		for _, w := range pcShortWorkloads(window) {
			t.Run(w.name, func(t *testing.T) {
				var r pcResult
				synctest.Test(t, func(t *testing.T) { r = pcRunWorkload(w, pcLLMHTTP) })
				t.Logf("%-8s %v", pcLLMHTTP, r)
				if strings.Contains(w.name, "/shared-key/") {
					return
				}
				wantGoodput, wantThrottled := 0.95, 0.01
				if window < 10*time.Second {
					wantGoodput = 0.93
				}
				if strings.HasSuffix(w.name, "anthropic-reserved") {
					wantGoodput, wantThrottled = 0.85, 0.02
					if window < 10*time.Second {
						wantGoodput = 0.75
					}
				}
				assert.GreaterOrEqual(t, r.goodput, wantGoodput, "goodput")
				assert.LessOrEqual(t, r.throttleRate(), wantThrottled, "429s per attempt")
				assert.Zero(t, r.failed, "failures")
			})
		}
	}
}

// TestPacerWorkloadsSharedStore runs the shared-key workloads with the four
// transports sharing a PacerStore (the in-memory fakeStore, standing for
// Redis between processes, declining waits beyond a second as the Redis
// store does): the goal of ≤ 3 % 429s, met through the headers alone, is
// met with room (no 429 at all), goodput 0.98–1.00 (bound 0.95) —
// except under Anthropic's reserved rule, a known gap: each process still
// learns on its own that max_tokens is reserved (the store shares charges,
// not what was learned), from the resets or a 429 of its own, and 0.6 % of
// attempts are answered 429 (0.7 % in the race build; at most 1.6 % in 30
// runs of each, where learning it from 429s alone cost 1.5–2.1 %, up to
// 4.4 %), goodput 0.93–1.00 (bounds 8 %, 0.75).
func TestPacerWorkloadsSharedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("workloads are long")
	}
	for _, w := range pcWorkloads() {
		if !strings.HasPrefix(w.name, "shared-key/") {
			continue
		}
		w.name = "shared-store/" + strings.TrimPrefix(w.name, "shared-key/")
		w.store = true
		t.Run(w.name, func(t *testing.T) {
			var r pcResult
			synctest.Test(t, func(t *testing.T) { r = pcRunWorkload(w, pcLLMHTTP) })
			t.Logf("%-8s %v", pcLLMHTTP, r)
			wantGoodput, wantThrottled := 0.95, 0.01
			if strings.HasSuffix(w.name, "anthropic-reserved") {
				wantGoodput, wantThrottled = 0.75, 0.08
			}
			assert.GreaterOrEqual(t, r.goodput, wantGoodput, "goodput")
			assert.LessOrEqual(t, r.throttleRate(), wantThrottled, "429s per attempt")
			assert.Zero(t, r.failed, "failures")
		})
	}
}
