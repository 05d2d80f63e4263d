package llmhttp_test

import (
	"strings"
	"testing"
	"testing/synctest"
)

// TestPacerWorkloads runs the workloads against llmhttptest on fake
// time (a real one-minute window, passing instantly) through llmhttp, and
// asserts the goals:
//
//   - burst: ≥ 0.97 of capacity, ≤ 1 % of attempts answered 429, no
//     failure;
//   - steady-over: the same;
//   - shared-key: ≥ 0.90 of capacity (the 429 goal, 3 %, is met by the
//     generated charging rule in most runs only: see the known gap below);
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
					// Known gap: four clients that see each other only
					// through the headers lose 2–4 % of attempts to races for
					// the last tokens under the generated rule, and 3–10 %
					// under reservation, where a request holds up to 4096
					// tokens of max_tokens (half of Anthropic's OTPM, a
					// seventh of OpenAI's TPM); a request may then run out of
					// its four attempts. The goal is 3 %; these bounds guard
					// against regressions (see notes/pacer-results.md).
					wantGoodput, wantThrottled, wantFailed = 0.90, 0.05, 3*runs
					if strings.HasSuffix(w.name, "-reserved") {
						wantThrottled = 0.12
					}
				case strings.HasPrefix(w.name, "first-burst"):
					continue
				}
				if goodput < wantGoodput {
					t.Errorf("goodput %.3f of capacity, want ≥ %.2f", goodput, wantGoodput)
				}
				if throttled > wantThrottled {
					t.Errorf("%.2f%% of attempts answered 429, want ≤ %.0f%%", 100*throttled, 100*wantThrottled)
				}
				if failed > wantFailed {
					t.Errorf("%d requests failed, want ≤ %d", failed, wantFailed)
				}
			}
		})
	}
}
