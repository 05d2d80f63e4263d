package llmhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/llmhttp/llmhttp"
)

// bbChunks is a body that returns b in reads of size bytes; reset rewinds
// it, so that a benchmark allocates nothing for its body.
type bbChunks struct {
	b    []byte
	size int
	off  int
}

func (r *bbChunks) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.size)], r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *bbChunks) Close() error { return nil }

// bbStream returns an Anthropic stream of n text deltas.
func bbStream(n int) []byte {
	var b bytes.Buffer
	b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":2095,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":1800,\"output_tokens\":1}}}\n\n")
	for i := range n {
		b.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"token " + strconv.Itoa(i) + " of the answer, \\\"quoted\\\"\\n\"}}\n\n")
	}
	b.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":" + strconv.Itoa(n*8) + "}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return b.Bytes()
}

// BenchmarkTapUsage reads a 500-delta Anthropic stream (about 70 KiB)
// through TapUsage in reads of 64 bytes, 1 KiB and 32 KiB, against the
// same reads of the bare body. ns/chunk is the time per Read; allocs/op,
// per whole stream, shows the tap allocates once per response, never per
// chunk.
func BenchmarkTapUsage(b *testing.B) {
	stream := bbStream(500)
	for _, size := range []int{64, 1 << 10, 32 << 10} {
		for _, tap := range []bool{false, true} {
			name := "bare"
			if tap {
				name = "tap"
			}
			b.Run(name+"/chunk="+strconv.Itoa(size), func(b *testing.B) {
				body := &bbChunks{b: stream, size: size}
				buf := make([]byte, 32<<10)
				req, _ := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages", nil)
				h := http.Header{"Content-Type": {"text/event-stream"}}
				var got int64
				b.ReportAllocs()
				b.SetBytes(int64(len(stream)))
				chunks := 0
				for b.Loop() {
					body.off = 0
					resp := &http.Response{StatusCode: 200, Header: h, Body: body, Request: req}
					if tap {
						llmhttp.TapUsage(resp, func(u llmhttp.Usage) { got = u.OutputTokens })
					}
					for {
						_, err := resp.Body.Read(buf)
						chunks++
						if err != nil {
							break
						}
					}
					resp.Body.Close()
				}
				if tap && got != 4000 {
					b.Fatalf("output %d", got)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(chunks), "ns/chunk")
			})
		}
	}
}

// BenchmarkBudgetsOverhead sends a request through the budget layer (one
// budget, a JSON response charged from its usage) against the bare
// upstream.
func BenchmarkBudgetsOverhead(b *testing.B) {
	body := bgBody("claude-sonnet-4-5", 512, 500)
	resp := `{"type":"message","content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":500,"output_tokens":50}}`
	up := llmhttp.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Body.Close()
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(resp)), Request: r}, nil
	})
	budgets := llmhttp.NewBudgets(llmhttp.BudgetSettings{Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1 << 60}}})
	ctx := llmhttp.WithBudget(context.Background(), "f")
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"bare", up}, {"budgets", budgets.Wrap(up)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.rt.RoundTrip(bgReq(ctx, body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkBudgetWorkload runs the proof workload (see bwRun) through the
// budget layer, the pacer alone and chat alone, and reports per feature:
//
//	ok, degraded, shed, refused, pacer-refused, delayed   requests
//	tokens, budget   tokens charged in the window at the end; the budget
//	p50-s p95-s      latency of the served requests, in seconds
//
// Each run takes ten minutes of testing/synctest's fake clock; a benchmark
// cannot start a bubble, so each run re-executes this test binary on
// TestBudgetWorkloadReport, and ns/op is the real time of one simulated
// run.
func BenchmarkBudgetWorkload(b *testing.B) {
	for _, mode := range []string{bwBudgeted, bwPacer, bwAlone} {
		b.Run(mode, func(b *testing.B) {
			var r bwReport
			for b.Loop() {
				r = bwRunReport(b, mode)
			}
			for _, f := range bwFeatures {
				x := r[f.name]
				if x == nil || x.Sent == 0 {
					continue
				}
				b.ReportMetric(float64(x.OK), f.name+"-ok")
				b.ReportMetric(float64(x.Degraded), f.name+"-degraded")
				b.ReportMetric(float64(x.Shed), f.name+"-shed")
				b.ReportMetric(float64(x.Refused), f.name+"-refused")
				b.ReportMetric(float64(x.PacerRefused), f.name+"-pacer-refused")
				b.ReportMetric(float64(x.Delayed), f.name+"-delayed")
				if x.Budget > 0 {
					b.ReportMetric(float64(x.TokensUsed), f.name+"-tokens")
					b.ReportMetric(float64(x.Budget), f.name+"-budget")
				}
				b.ReportMetric(x.P50, f.name+"-p50-s")
				b.ReportMetric(x.P95, f.name+"-p95-s")
			}
		})
	}
}

// bwRunReport runs the workload through mode in a child test process.
func bwRunReport(b *testing.B, mode string) bwReport {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBudgetWorkloadReport$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LLMHTTP_BUDGET_CLIENT="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, bwReportPrefix); i >= 0 {
			var r bwReport
			if err := json.Unmarshal([]byte(line[i+len(bwReportPrefix):]), &r); err != nil {
				b.Fatal(err)
			}
			return r
		}
	}
	b.Fatalf("no report in\n%s", out)
	return nil
}
