package llmhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// This file is the proof workload of the budget layer, shared by
// TestBudgetWorkload (goals asserted, on fake time) and
// BenchmarkBudgetWorkload: three features with different budgets and
// priorities share one API key and model against llmhttptest, at more than
// twice what the model's rate limits allow.
//
//   - chat: interactive, critical, a budget it never reaches;
//   - assist: normal priority, degraded to a smaller model and a shorter
//     answer from 60 % of its budget, refused past a 10 % overdraft;
//   - batch: low priority, a five-minute rolling budget under BudgetDelay,
//     each request willing to wait two minutes (WithMaxWait).
//
// Low-priority requests are shed when the pacer's queue holds 6, normal
// ones at 20. Every figure is reported; the goals are that chat keeps its
// latency (p95 within 1.5× of chat running alone) and is never shed or
// refused, that shedding falls on batch first, and that no budget is
// overspent beyond what its policy allows.

// bwFeature is one feature of the workload.
type bwFeature struct {
	name      string
	prio      llmhttp.Priority
	rate      float64 // requests per second
	input     int     // prompt tokens
	maxTokens int64
	maxWait   time.Duration
}

var bwFeatures = []bwFeature{
	{name: "chat", prio: llmhttp.PriorityCritical, rate: 0.25, input: 300, maxTokens: 256},
	{name: "assist", prio: llmhttp.PriorityNormal, rate: 0.5, input: 800, maxTokens: 512},
	{name: "batch", prio: llmhttp.PriorityLow, rate: 1, input: 1500, maxTokens: 1024, maxWait: 2 * time.Minute},
}

// bwBudgets are the features' budgets.
func bwBudgets() map[string]llmhttp.Budget {
	return map[string]llmhttp.Budget{
		"chat": {Tokens: 2_000_000, Window: time.Hour},
		"assist": {Tokens: 150_000, Window: time.Hour, Policy: llmhttp.BudgetDegrade, DegradeAt: 0.6,
			Degrade: llmhttp.Degrade{Model: "claude-haiku", MaxTokens: 64}, MaxOverdraft: 0.1},
		"batch": {Tokens: 60_000, Window: 5 * time.Minute, Slots: 5, Policy: llmhttp.BudgetDelay, DelayUpTo: llmhttp.PriorityLow},
	}
}

// The workload's clients.
const (
	bwBudgeted = "budgets" // the budget layer in front of llmhttp.New
	bwPacer    = "pacer"   // llmhttp.New alone: the pacer's priority queue, no budgets or shedding
	bwAlone    = "alone"   // chat traffic alone through llmhttp.New: the latency to keep
)

// bwDuration is how long requests arrive.
const bwDuration = 10 * time.Minute

// bwFeatureReport is what a run measured for one feature.
type bwFeatureReport struct {
	Sent, OK, Degraded, Shed, Refused, TooLarge, PacerRefused, Failed, Delayed int
	TokensUsed, Budget                                                         int64 // tokens charged in the window at the end; the budget
	P50, P95                                                                   float64
}

// bwReport is a run's figures, per feature.
type bwReport map[string]*bwFeatureReport

func (r bwReport) String() string {
	var b strings.Builder
	for _, f := range bwFeatures {
		x := r[f.name]
		if x == nil {
			continue
		}
		fmt.Fprintf(&b, "%-7s sent %4d  ok %4d  degraded %3d  shed %3d  refused %3d  pacer-refused %3d  failed %2d  delayed %3d  tokens %7d / %7d  p50 %5.1fs  p95 %5.1fs\n",
			f.name, x.Sent, x.OK, x.Degraded, x.Shed, x.Refused, x.PacerRefused, x.Failed, x.Delayed, x.TokensUsed, x.Budget, x.P50, x.P95)
	}
	return b.String()
}

// bwRun runs the workload through client mode against a fresh llmhttptest
// handler; it must run inside a synctest bubble.
func bwRun(mode string) bwReport {
	h := llmhttptest.NewHandler(llmhttptest.Config{
		Latency: 500 * time.Millisecond, TokenLatency: 10 * time.Millisecond, Seed: 3,
	})
	pacer := llmhttp.NewPacer(llmhttp.PacerSettings{})
	var client http.RoundTripper = llmhttp.New(h.Transport(), llmhttp.WithPacer(pacer))
	var budgets *llmhttp.Budgets
	if mode == bwBudgeted {
		budgets = llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets: bwBudgets(),
			Shed: llmhttp.ShedSettings{LowQueue: 6, NormalQueue: 20, Queued: func(p llmhttp.Partition) int {
				s, _ := pacer.PartitionStats(p)
				return s.Queued
			}},
		})
		client = budgets.Wrap(client)
	}

	rep := bwReport{}
	lat := map[string][]float64{}
	for _, f := range bwFeatures {
		rep[f.name] = &bwFeatureReport{}
	}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	send := func(f bwFeature) {
		c := llmhttp.WithPriority(llmhttp.WithBudget(ctx, f.name), f.prio)
		if f.maxWait > 0 {
			c = llmhttp.WithMaxWait(c, f.maxWait)
		}
		body := `{"model":"claude-sonnet","max_tokens":` + strconv.FormatInt(f.maxTokens, 10) +
			`,"messages":[{"role":"user","content":"` + strings.Repeat("abc ", f.input) + `"}]}`
		req, _ := http.NewRequestWithContext(c, http.MethodPost, "https://api.anthropic.com/v1/messages", strings.NewReader(body))
		req.Header.Set("X-Api-Key", "sk-ant-workload")
		req.Header.Set("Anthropic-Version", "2023-06-01")
		start := time.Now()
		resp, err := client.RoundTrip(req)
		status, degraded, reason := 0, false, ""
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status, degraded = resp.StatusCode, resp.Header.Get("Llmhttp-Degraded") != ""
			if r, ok := llmhttp.RefusalOf(resp); ok {
				reason = r.Reason
			}
		}
		mu.Lock()
		defer mu.Unlock()
		x := rep[f.name]
		x.Sent++
		switch {
		case status == http.StatusOK:
			x.OK++
			lat[f.name] = append(lat[f.name], time.Since(start).Seconds())
			if degraded {
				x.Degraded++
			}
		case reason == llmhttp.ReasonShed:
			x.Shed++
		case reason == llmhttp.ReasonBudgetExhausted:
			x.Refused++
		case reason == llmhttp.ReasonTooLarge:
			x.TooLarge++
		case reason != "":
			x.PacerRefused++
		default:
			x.Failed++
		}
	}

	var wg sync.WaitGroup
	const tick = 100 * time.Millisecond
	due := make([]float64, len(bwFeatures))
	for t := time.Duration(0); t < bwDuration; t += tick {
		for i, f := range bwFeatures {
			if mode == bwAlone && f.prio != llmhttp.PriorityCritical {
				continue
			}
			due[i] += f.rate * tick.Seconds()
			for ; due[i] >= 1; due[i]-- {
				wg.Go(func() { send(f) })
			}
		}
		time.Sleep(tick)
	}
	wg.Wait()

	for _, f := range bwFeatures {
		x := rep[f.name]
		l := lat[f.name]
		slices.Sort(l)
		x.P50, x.P95 = pcQuantile(l, 0.5), pcQuantile(l, 0.95)
		if budgets != nil {
			s, _ := budgets.Status(context.Background(), f.name, "")
			st, _ := budgets.Stats(f.name)
			x.TokensUsed, x.Budget, x.Delayed = s.Used.Tokens(), s.Limit.Tokens, int(st.Delayed)
		}
	}
	return rep
}

// TestBudgetWorkload runs the proof workload on fake time through the
// budget layer, the pacer alone, and chat alone, logs every figure (-v),
// and asserts the goals.
func TestBudgetWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("the workload is long")
	}
	reps := map[string]bwReport{}
	for _, mode := range []string{bwAlone, bwPacer, bwBudgeted} {
		synctest.Test(t, func(t *testing.T) { reps[mode] = bwRun(mode) })
		t.Logf("%s:\n%v", mode, reps[mode])
	}
	b, alone := reps[bwBudgeted], reps[bwAlone]
	chat := b["chat"]
	assert.Equal(t, chat.Sent, chat.OK, "every chat request served")
	assert.LessOrEqual(t, chat.P95, 1.5*alone["chat"].P95, "chat keeps its latency")
	assert.Zero(t, chat.Shed+chat.Refused+chat.Degraded)
	assert.Greater(t, b["batch"].Shed, b["assist"].Shed, "low priority is shed first")
	assert.Positive(t, b["assist"].Degraded)
	assert.Positive(t, b["batch"].Delayed)
	assert.LessOrEqual(t, float64(b["assist"].TokensUsed), 1.1*float64(b["assist"].Budget)+600, "assist within its overdraft")
	assert.LessOrEqual(t, b["batch"].TokensUsed, b["batch"].Budget+2600, "batch within its budget (one request's misestimate)")
}

// bwReportPrefix marks the line TestBudgetWorkloadReport prints.
const bwReportPrefix = "BWREPORT "

// TestBudgetWorkloadReport runs the workload through the client named by
// LLMHTTP_BUDGET_CLIENT and prints its figures as JSON, for
// BenchmarkBudgetWorkload. Without the variable it does nothing.
func TestBudgetWorkloadReport(t *testing.T) {
	mode := os.Getenv("LLMHTTP_BUDGET_CLIENT")
	if mode == "" {
		t.Skip("run by BenchmarkBudgetWorkload")
	}
	var r bwReport
	synctest.Test(t, func(t *testing.T) { r = bwRun(mode) })
	out, _ := json.Marshal(r)
	fmt.Println(bwReportPrefix + string(out))
}
