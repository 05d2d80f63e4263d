package llmhttp_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// BenchmarkPacerOverhead measures what the full chain (New: retry, breaker,
// pacer) adds on the happy path over a bare RoundTripFunc, at 1 KiB and
// 100 KiB request bodies, serial and parallel; "pacer" is New with the
// pacer alone (the request description, which every layer shares, and the
// pacer), "llmhttp" the whole chain. The base answers 200 with
// OpenAI rate-limit headers far from their limits (so nothing waits) and a
// small JSON body with usage; both the bare and the full runs build a new
// request per call and read the response body to the end.
func BenchmarkPacerOverhead(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		body := llmhttptest.ChatBody(size)
		for _, chain := range []string{"bare", "pacer", "llmhttp"} {
			for _, par := range []bool{false, true} {
				name := fmt.Sprintf("%dKiB/%s/serial", size>>10, chain)
				if par {
					name = fmt.Sprintf("%dKiB/%s/parallel", size>>10, chain)
				}
				b.Run(name, func(b *testing.B) {
					var rt http.RoundTripper = llmhttptest.OKTransport()
					switch chain {
					case "pacer":
						rt = llmhttp.New(rt, llmhttp.WithoutRetry(), llmhttp.WithoutBreaker())
					case "llmhttp":
						rt = llmhttp.New(rt)
					}
					b.ReportAllocs()
					b.SetBytes(int64(size))
					if !par {
						for b.Loop() {
							if err := llmhttptest.SendChat(rt, body); err != nil {
								b.Fatal(err)
							}
						}
						return
					}
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := llmhttptest.SendChat(rt, body); err != nil {
								b.Fatal(err)
							}
						}
					})
				})
			}
		}
	}
}

// BenchmarkPacerOverheadPaired measures what BenchmarkPacerOverhead does,
// with the bare and the full chain interleaved: every iteration sends one
// request through each, in alternating order, and times both.
// Sub-benchmarks run one after the other, each in a GC and cache state of
// its own, and on this machine (a 2-core VM) their difference drifts by
// ±10–20 % from run to run; interleaved, both sides share the same heap,
// GC cycles and neighbours, and the difference holds within a few percent.
// Each side's time includes one clock read, which cancels in the
// difference. The modes (see pairMode): "serial" sends from one
// goroutine; "parallel" from GOMAXPROCS goroutines at once, all through
// the same two transports (so the full chain's partition is contended),
// each timing its own requests; "private" is parallel with a bare and a
// full chain of each goroutine's own, which share nothing: the control
// that tells what running GOMAXPROCS goroutines at once costs a request
// on this machine from what sharing the chain's state between them does.
// It reports, per iteration:
//
//	bare-ns     one request through the bare RoundTripFunc
//	llmhttp-ns  one request through the full chain
//	added-ns    the difference: what the chain adds to a request
//
// (ns/op and allocs/op count both requests; in parallel, ns/op is the
// wall time per iteration of all goroutines together, the others the time
// each request took.)
func BenchmarkPacerOverheadPaired(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		for _, mode := range []pairMode{pairSerial, pairParallel, pairPrivate} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, mode), func(b *testing.B) {
				b.ReportAllocs()
				dBare, dFull := runPaired(b, func() http.RoundTripper { return llmhttp.New(llmhttptest.OKTransport()) },
					llmhttptest.ChatBody(size), mode)
				n := float64(b.N)
				b.ReportMetric(float64(dBare)/n, "bare-ns")
				b.ReportMetric(float64(dFull)/n, "llmhttp-ns")
				b.ReportMetric(float64(dFull-dBare)/n, "added-ns")
			})
		}
	}
}

// pairMode is how runPaired sends.
type pairMode int

const (
	pairSerial   pairMode = iota // from one goroutine
	pairParallel                 // from GOMAXPROCS goroutines, through one full chain
	pairPrivate                  // from GOMAXPROCS goroutines, each through a full chain of its own
)

func (m pairMode) String() string { return [...]string{"serial", "parallel", "private"}[m] }

// runPaired sends b.N pairs of requests of body, one through a bare
// RoundTripFunc and one through a full chain (made by newFull) each,
// alternating which goes first, as mode says, each goroutine timing its
// own requests; it returns the total time of each side's requests.
func runPaired(b *testing.B, newFull func() http.RoundTripper, body []byte, mode pairMode) (dBare, dFull time.Duration) {
	send := func(rt http.RoundTripper) time.Duration {
		t := time.Now()
		if err := llmhttptest.SendChat(rt, body); err != nil {
			b.Error(err)
		}
		return time.Since(t)
	}
	// pair sends one request through each side, the full chain first on
	// odd i, and adds their times to db and df.
	pair := func(i int, bare, full http.RoundTripper, db, df *time.Duration) {
		if i%2 == 0 {
			*db += send(bare)
			*df += send(full)
		} else {
			*df += send(full)
			*db += send(bare)
		}
	}
	bare, full := llmhttptest.OKTransport(), newFull()
	if mode == pairSerial {
		i := 0
		for b.Loop() {
			i++
			pair(i, bare, full, &dBare, &dFull)
		}
		return dBare, dFull
	}
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		bare, full := bare, full
		if mode == pairPrivate {
			bare, full = llmhttptest.OKTransport(), newFull()
		}
		var myBare, myFull time.Duration
		for i := 1; pb.Next(); i++ {
			pair(i, bare, full, &myBare, &myFull)
		}
		mu.Lock()
		dBare, dFull = dBare+myBare, dFull+myFull
		mu.Unlock()
	})
	return dBare, dFull
}

// benchLayers are the configurations the layer benchmarks compare: the
// bare RoundTripFunc (nil options: no New at all), New without any layer,
// New with one layer alone, and the whole chain.
var benchLayers = []struct {
	name string
	opts []llmhttp.Option
}{
	{"bare", nil},
	{"transport", []llmhttp.Option{llmhttp.WithoutRetry(), llmhttp.WithoutBreaker(), llmhttp.WithoutPacing()}},
	{"retry", []llmhttp.Option{llmhttp.WithoutBreaker(), llmhttp.WithoutPacing()}},
	{"breaker", []llmhttp.Option{llmhttp.WithoutRetry(), llmhttp.WithoutPacing()}},
	{"pacer", []llmhttp.Option{llmhttp.WithoutRetry(), llmhttp.WithoutBreaker()}},
	{"llmhttp", []llmhttp.Option{}},
}

// BenchmarkLayersOverhead breaks BenchmarkPacerOverhead's full chain
// down by layer, serially at 1 KiB: "transport" is New without any layer
// (the request description and the counters every layer shares), then New
// with one layer alone, then the whole chain. Each figure less "bare" is
// what that part adds.
func BenchmarkLayersOverhead(b *testing.B) {
	body := llmhttptest.ChatBody(1 << 10)
	for _, c := range benchLayers {
		b.Run(c.name, func(b *testing.B) {
			var rt http.RoundTripper = llmhttptest.OKTransport()
			if c.opts != nil {
				rt = llmhttp.New(rt, c.opts...)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := llmhttptest.SendChat(rt, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLayersOverheadParallel breaks BenchmarkPacerOverheadPaired's
// parallel case down by layer at 1 KiB: GOMAXPROCS goroutines send through
// a bare RoundTripFunc and a New with the layers named, each interleaving
// the two and timing its own requests; "shared" sends through one New (so
// each layer's shared state, the partition's and the circuit's, is
// contended), "private" through one New per goroutine (the control: no
// state shared). added-ns is what the configuration adds to a request's
// latency; shared less private, what sharing its state costs.
func BenchmarkLayersOverheadParallel(b *testing.B) {
	body := llmhttptest.ChatBody(1 << 10)
	for _, c := range benchLayers[1:] { // every configuration with New
		for _, mode := range []pairMode{pairParallel, pairPrivate} {
			name := c.name + "/shared"
			if mode == pairPrivate {
				name = c.name + "/private"
			}
			b.Run(name, func(b *testing.B) {
				dBare, dFull := runPaired(b, func() http.RoundTripper { return llmhttp.New(llmhttptest.OKTransport(), c.opts...) },
					body, mode)
				b.ReportMetric(float64(dFull-dBare)/float64(b.N), "added-ns")
			})
		}
	}
}

// BenchmarkPacerWorkload runs every workload of the issue (see
// pcWorkloads) through llmhttp, a plain client (each request sent once) and
// the SDKs' own retry loop, against llmhttptest, and reports per run:
//
//	goodput      served share of what the limits allow (see pcRunWorkload)
//	429/attempt  the server's 429s per request it received
//	attempts/ok  requests the server received per success
//	p50-s p95-s  latency of the successful requests, in seconds
//
// The runs use a real one-minute window on testing/synctest's fake clock,
// so a run takes a fraction of a second of real time and gives the same
// figures as TestPacerWorkloads. A benchmark cannot start a synctest bubble
// (synctest.Test needs a *testing.T), so each run re-executes this test
// binary on TestPacerWorkloadReport; ns/op is the real time of one
// simulated run, not a latency.
func BenchmarkPacerWorkload(b *testing.B) {
	for _, w := range pcWorkloads() {
		for _, mode := range []string{pcLLMHTTP, pcPlain, pcSDK} {
			b.Run(w.name+"/"+mode, func(b *testing.B) {
				var r pcReport
				for b.Loop() {
					r = pcRunReport(b, w.name, mode)
				}
				b.ReportMetric(r.Goodput, "goodput")
				b.ReportMetric(r.Throttled, "429/attempt")
				b.ReportMetric(r.AttemptsPerSuccess, "attempts/ok")
				b.ReportMetric(r.P50, "p50-s")
				b.ReportMetric(r.P95, "p95-s")
			})
		}
	}
}

// BenchmarkPacerWorkloadRealTime runs two burst workloads on the real clock
// against a server whose "minute" is pcShortWindow (6 s): 120 requests from
// 32 goroutines, through llmhttp and through a plain client, reporting the
// same metrics as BenchmarkPacerWorkload. The pacer is told nothing of the
// window: it learns it from the resets. A run takes about 15 s (the
// limits' time for the burst, plus the requests' latency); use -benchtime
// 1x.
func BenchmarkPacerWorkloadRealTime(b *testing.B) {
	for _, w := range pcShortWorkloads(pcShortWindow) {
		if !strings.Contains(w.name, "/burst/") || !(strings.HasSuffix(w.name, "anthropic-generated") || strings.HasSuffix(w.name, "openai-reserved")) {
			continue
		}
		w.burst, w.workers = 120, 32
		for _, mode := range []string{pcLLMHTTP, pcPlain} {
			b.Run(w.name+"/"+mode, func(b *testing.B) {
				var r pcResult
				for b.Loop() {
					r = pcRunWorkload(w, mode)
				}
				b.ReportMetric(r.goodput, "goodput")
				b.ReportMetric(r.throttleRate(), "429/attempt")
				b.ReportMetric(r.attemptsPerSuccess(), "attempts/ok")
				b.ReportMetric(r.p50, "p50-s")
				b.ReportMetric(r.p95, "p95-s")
			})
		}
	}
}

// pcReport is a workload run's figures, as TestPacerWorkloadReport prints
// them for BenchmarkPacerWorkload.
type pcReport struct {
	Goodput, Throttled, AttemptsPerSuccess, P50, P95 float64
}

const pcReportPrefix = "PCREPORT "

// pcRunReport runs workload name through mode in a child test process and
// returns its figures.
func pcRunReport(b *testing.B, name, mode string) pcReport {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPacerWorkloadReport$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LLMHTTP_WORKLOAD="+name, "LLMHTTP_CLIENT="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, pcReportPrefix); i >= 0 {
			var r pcReport
			if err := json.Unmarshal([]byte(line[i+len(pcReportPrefix):]), &r); err != nil {
				b.Fatal(err)
			}
			return r
		}
	}
	b.Fatalf("no report in\n%s", out)
	return pcReport{}
}

// TestPacerWorkloadReport runs the workload named by LLMHTTP_WORKLOAD
// through the client LLMHTTP_CLIENT and prints its figures as JSON, for
// BenchmarkPacerWorkload. Without the variables it does nothing.
func TestPacerWorkloadReport(t *testing.T) {
	name, mode := os.Getenv("LLMHTTP_WORKLOAD"), os.Getenv("LLMHTTP_CLIENT")
	if name == "" {
		t.Skip("run by BenchmarkPacerWorkload")
	}
	for _, w := range pcWorkloads() {
		if w.name != name {
			continue
		}
		var r pcResult
		synctest.Test(t, func(t *testing.T) { r = pcRunWorkload(w, mode) })
		out, _ := json.Marshal(pcReport{
			Goodput: r.goodput, Throttled: r.throttleRate(), AttemptsPerSuccess: r.attemptsPerSuccess(),
			P50: r.p50, P95: r.p95,
		})
		t.Log(pcReportPrefix + string(out))
		return
	}
	t.Fatalf("no workload %q", name)
}
