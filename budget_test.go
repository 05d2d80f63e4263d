package llmhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// bgUpstream is a scripted provider for budget tests: it answers every
// request 200 with an Anthropic Messages body (or stream) that reports
// usage, and records the bodies it received.
type bgUpstream struct {
	mu     sync.Mutex
	bodies [][]byte
	// usage returns the input and output tokens to report for a request
	// body; nil reports 100 and 50.
	usage func(body []byte) (in, out int64)
	// stream answers with server-sent events.
	stream bool
	// status, when set, is the status of every answer (with an error
	// body).
	status int
	calls  atomic.Int64
}

func (u *bgUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	u.calls.Add(1)
	u.mu.Lock()
	u.bodies = append(u.bodies, body)
	u.mu.Unlock()
	if u.status != 0 {
		return bgResp(req, u.status, "application/json", `{"type":"error","error":{"type":"api_error","message":"boom"}}`), nil
	}
	in, out := int64(100), int64(50)
	if u.usage != nil {
		in, out = u.usage(body)
	}
	if u.stream {
		s := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":" + strconv.FormatInt(in, 10) +
			",\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":" +
			strconv.FormatInt(out, 10) + "}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
		return bgResp(req, 200, "text/event-stream", s), nil
	}
	return bgResp(req, 200, "application/json", `{"type":"message","content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":`+
		strconv.FormatInt(in, 10)+`,"output_tokens":`+strconv.FormatInt(out, 10)+`}}`), nil
}

// last returns the last body the upstream received.
func (u *bgUpstream) last() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return nil
	}
	return u.bodies[len(u.bodies)-1]
}

func bgResp(req *http.Request, status int, ct, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req,
	}
}

// bgBody is an Anthropic Messages body whose prompt is about input tokens
// (4 characters each).
func bgBody(model string, maxTokens int64, input int) string {
	return `{"model":"` + model + `","max_tokens":` + strconv.FormatInt(maxTokens, 10) +
		`,"messages":[{"role":"user","content":"` + strings.Repeat("abcd", input) + `"}]}`
}

// bgReq returns a request with body, its context set up by opts.
func bgReq(ctx context.Context, body string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.anthropic.com/v1/messages", strings.NewReader(body))
	req.Header.Set("X-Api-Key", "sk-ant-budget-test")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	return req
}

// bgDo sends req through rt, reads and closes the body, and returns the
// response (its body consumed) and the body's text.
func bgDo(t testing.TB, rt http.RoundTripper, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp, string(b)
}

// bgStatus returns the budget's status.
func bgStatus(t testing.TB, b *llmhttp.Budgets, name, tenant string) llmhttp.BudgetStatus {
	t.Helper()
	s, err := b.Status(context.Background(), name, tenant)
	require.NoError(t, err)
	return s
}

// bgRefusal checks that resp is the layer's local reply for reason and
// returns its Retry-After.
func bgRefusal(t testing.TB, resp *http.Response, reason string) time.Duration {
	t.Helper()
	r, ok := llmhttp.RefusalOf(resp)
	require.True(t, ok, "status %d is not a local reply", resp.StatusCode)
	require.Equal(t, reason, r.Reason)
	require.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
	return r.RetryAfter
}

// TestBudgetsChargeActualUsage: a request is reserved at its estimate and
// charged what its response reports when the body ends — for a JSON body
// and a stream.
func TestBudgetsChargeActualUsage(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run("stream="+strconv.FormatBool(stream), func(t *testing.T) {
			up := &bgUpstream{stream: stream}
			var events []llmhttp.UsageEvent
			b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
				Budgets: map[string]llmhttp.Budget{"feature": {Tokens: 100_000}},
				OnUsage: func(e llmhttp.UsageEvent) { events = append(events, e) },
			})
			rt := b.Wrap(up)
			ctx := llmhttp.WithBudget(context.Background(), "feature")
			resp, err := rt.RoundTrip(bgReq(ctx, bgBody("claude-sonnet-4-5", 300, 400)))
			require.NoError(t, err)
			// In flight: the estimate is reserved — the text's 1604
			// characters / 4 of input, and max_tokens of output before any
			// response taught an average.
			assert.Equal(t, llmhttp.BudgetCounts{Requests: 1, InputTokens: 401, OutputTokens: 300}, bgStatus(t, b, "feature", "").Used)
			_, err = io.Copy(io.Discard, resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, llmhttp.BudgetCounts{Requests: 1, InputTokens: 100, OutputTokens: 50}, bgStatus(t, b, "feature", "").Used)
			require.Len(t, events, 1)
			assert.Equal(t, llmhttp.BudgetCounts{Requests: 1, InputTokens: 100, OutputTokens: 50}, events[0].Charged)
			assert.Equal(t, []string{"feature"}, events[0].Budgets)
			assert.Equal(t, stream, events[0].Usage.Stream)
			st, _ := b.Stats("feature")
			assert.Equal(t, int64(1), st.Admitted)
			assert.Equal(t, llmhttp.BudgetCounts{Requests: 1, InputTokens: 100, OutputTokens: 50}, st.Charged)

			// The next reservation uses the output learned (50), not max_tokens.
			resp, err = rt.RoundTrip(bgReq(ctx, bgBody("claude-sonnet-4-5", 300, 400)))
			require.NoError(t, err)
			assert.Equal(t, llmhttp.BudgetCounts{Requests: 2, InputTokens: 100 + 401, OutputTokens: 50 + 50}, bgStatus(t, b, "feature", "").Used)
			resp.Body.Close()
		})
	}
}

// TestBudgetsRefuseUntilReset: under BudgetRefuse a request that does not
// fit is answered locally — 429, budget-exhausted, Retry-After the window's
// reset — and the budget admits again once the window has passed.
func TestBudgetsRefuseUntilReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &bgUpstream{usage: func([]byte) (int64, int64) { return 200, 100 }}
		var refused []llmhttp.RefuseEvent
		b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets:  map[string]llmhttp.Budget{"pr-bot": {Tokens: 1000, Window: time.Hour, Slots: 1}},
			OnRefuse: func(e llmhttp.RefuseEvent) { refused = append(refused, e) },
		})
		rt := b.Wrap(up)
		ctx := llmhttp.WithBudget(t.Context(), "pr-bot")
		time.Sleep(10 * time.Minute) // 00:10 into the hour
		for range 3 {
			resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("m", 100, 50)))
			require.Equal(t, 200, resp.StatusCode)
		}
		assert.Equal(t, int64(900), bgStatus(t, b, "pr-bot", "").Used.Tokens())
		req := bgReq(ctx, bgBody("m", 100, 50))
		resp, body := bgDo(t, rt, req)
		assert.Equal(t, 429, resp.StatusCode)
		assert.Equal(t, 50*time.Minute, bgRefusal(t, resp, llmhttp.ReasonBudgetExhausted))
		assert.Equal(t, "3000", resp.Header.Get("Retry-After"))
		assert.Contains(t, body, `"rate_limit_error"`, "Anthropic-shaped error body")
		assert.Contains(t, body, `budget \"pr-bot\" is spent`)
		assert.Equal(t, int64(3), up.calls.Load(), "the refused request was not sent")
		require.Len(t, refused, 1)
		assert.Equal(t, "pr-bot", refused[0].Budget)
		assert.Equal(t, int64(900), bgStatus(t, b, "pr-bot", "").Used.Tokens(), "a refusal costs nothing")

		time.Sleep(50 * time.Minute)
		resp, _ = bgDo(t, rt, bgReq(ctx, bgBody("m", 100, 50)))
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, int64(300), bgStatus(t, b, "pr-bot", "").Used.Tokens())
		st, _ := b.Stats("pr-bot")
		assert.Equal(t, llmhttp.BudgetStats{Admitted: 4, Refused: 1,
			Charged: llmhttp.BudgetCounts{Requests: 4, InputTokens: 800, OutputTokens: 400}}, st)
	})
}

// TestBudgetsRollingWindow: a rolling window forgets each charge one window
// after it was made, slot by slot, and the refusal's Retry-After is when
// enough has left for the request to fit.
func TestBudgetsRollingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &bgUpstream{usage: func([]byte) (int64, int64) { return 300, 100 }}
		b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets: map[string]llmhttp.Budget{"user": {Tokens: 1000, Window: time.Hour}}, // 60 one-minute slots
		})
		rt := b.Wrap(up)
		ctx := llmhttp.WithBudget(t.Context(), "user")
		send := func() *http.Response {
			// Estimated as it is charged: 300 input, 100 output.
			resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("m", 100, 299)))
			return resp
		}
		require.Equal(t, 200, send().StatusCode) // t = 0: 400
		time.Sleep(20 * time.Minute)
		require.Equal(t, 200, send().StatusCode) // t = 20 min: 800
		time.Sleep(10 * time.Minute)
		resp := send() // t = 30 min: 1200 would not fit
		require.Equal(t, 429, resp.StatusCode)
		// The first 400 leave at t = 60 min: then 400 + 400 fit.
		assert.Equal(t, 30*time.Minute, bgRefusal(t, resp, llmhttp.ReasonBudgetExhausted))
		time.Sleep(30*time.Minute - time.Second)
		require.Equal(t, 429, send().StatusCode)
		assert.Equal(t, int64(800), bgStatus(t, b, "user", "").Used.Tokens())
		time.Sleep(time.Second)
		assert.Equal(t, int64(400), bgStatus(t, b, "user", "").Used.Tokens())
		require.Equal(t, 200, send().StatusCode)
	})
}

// TestBudgetsThresholdsFireOncePerWindow: each threshold fires once per
// window, when the budget's use first reaches it, and again in the next
// window.
func TestBudgetsThresholdsFireOncePerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &bgUpstream{usage: func([]byte) (int64, int64) { return 60, 40 }}
		var got []string
		var b *llmhttp.Budgets
		b = llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1000, Window: time.Hour, Slots: 1, Policy: llmhttp.BudgetRefuse}},
			OnThreshold: func(e llmhttp.ThresholdEvent) {
				b.Stats("f") // hooks run outside the layer's lock: this would deadlock otherwise
				got = append(got, e.Budget+"@"+strconv.FormatFloat(e.Threshold, 'g', -1, 64)+":"+strconv.FormatInt(e.Used.Tokens(), 10))
			},
			OnUsage:  func(llmhttp.UsageEvent) { b.Stats("f") },
			OnRefuse: func(llmhttp.RefuseEvent) { b.Stats("f") },
		})
		rt := b.Wrap(up)
		ctx := llmhttp.WithBudget(t.Context(), "f")
		// Estimates (10 input + 40 output after the first) are charged at
		// admission; each request costs 100 in the end.
		for range 12 {
			bgDo(t, rt, bgReq(ctx, bgBody("m", 40, 10)))
		}
		assert.Equal(t, []string{"f@0.7:700", "f@0.9:900"}, got, "the default thresholds, once each")
		time.Sleep(time.Hour)
		got = nil
		for range 10 {
			bgDo(t, rt, bgReq(ctx, bgBody("m", 40, 10)))
		}
		assert.Equal(t, []string{"f@0.7:700", "f@0.9:900"}, got, "again in the next window")
	})
}

// TestBudgetsDegrade: under BudgetDegrade a spent budget keeps serving
// requests rewritten to a cheaper model and a shorter answer — every other
// byte of the body unchanged — marks the response, calls the hook, and
// refuses once degraded requests overdraw it by more than MaxOverdraft.
func TestBudgetsDegrade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &bgUpstream{usage: func([]byte) (int64, int64) { return 300, 100 }}
		var degraded []llmhttp.DegradeEvent
		b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets: map[string]llmhttp.Budget{"assist": {
				Tokens: 1000, Window: time.Hour, Slots: 1,
				Policy: llmhttp.BudgetDegrade, Degrade: llmhttp.Degrade{Model: "claude-haiku-4-5", MaxTokens: 64},
				MaxOverdraft: 0.5,
			}},
			OnDegrade: func(e llmhttp.DegradeEvent) { degraded = append(degraded, e) },
		})
		rt := b.Wrap(up)
		ctx := llmhttp.WithBudget(t.Context(), "assist")
		body := `{"model": "claude-sonnet-4-5",  "max_tokens":1024,"messages":[{"role":"user","content":"` + strings.Repeat("x", 800) + `"}],"metadata":{"user_id":"u-1"}}`
		for range 2 {
			resp, _ := bgDo(t, rt, bgReq(ctx, body))
			require.Equal(t, 200, resp.StatusCode)
			assert.Empty(t, resp.Header.Get("Llmhttp-Degraded"))
			assert.Equal(t, body, string(up.last()), "not degraded: sent as it was")
		}
		// 800 used; the next request (200 input + 100 output expected)
		// does not fit: degraded.
		req := bgReq(ctx, body)
		resp, _ := bgDo(t, rt, req)
		require.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "model=claude-haiku-4-5, max_tokens=64", resp.Header.Get("Llmhttp-Degraded"))
		want := strings.Replace(strings.Replace(body, `"claude-sonnet-4-5"`, `"claude-haiku-4-5"`, 1), `1024`, `64`, 1)
		assert.Equal(t, want, string(up.last()), "only the model and max_tokens changed")
		require.Len(t, degraded, 1)
		assert.Equal(t, llmhttp.DegradeEvent{Request: req, Budget: "assist", Reason: "exhausted",
			FromModel: "claude-sonnet-4-5", Model: "claude-haiku-4-5", FromMaxTokens: 1024, MaxTokens: 64}, degraded[0])
		// 1200 used: the overdraft allows 1500, and a degraded request is
		// estimated at 200 + 64.
		resp, _ = bgDo(t, rt, bgReq(ctx, body))
		assert.Equal(t, 200, resp.StatusCode)
		resp, _ = bgDo(t, rt, bgReq(ctx, body))
		assert.Equal(t, 429, resp.StatusCode, "past the overdraft")
		bgRefusal(t, resp, llmhttp.ReasonBudgetExhausted)
		st, _ := b.Stats("assist")
		assert.Equal(t, int64(2), st.Degraded)
		assert.Equal(t, int64(1), st.Refused)
		assert.Equal(t, int64(4), up.calls.Load())
	})
}

// TestBudgetsDegradeAt degrades requests from a fraction of the budget on,
// under any policy, and refuses them once it is spent.
func TestBudgetsDegradeAt(t *testing.T) {
	up := &bgUpstream{usage: func([]byte) (int64, int64) { return 200, 50 }}
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1000, DegradeAt: 0.5, Degrade: llmhttp.Degrade{Model: "small"}}},
	})
	rt := b.Wrap(up)
	ctx := llmhttp.WithBudget(context.Background(), "f")
	var marks []string
	for range 5 {
		resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("big", 50, 190)))
		marks = append(marks, strconv.Itoa(resp.StatusCode)+" "+resp.Header.Get("Llmhttp-Degraded"))
	}
	// Each request is estimated at 191 + 50 and charged 250: the second
	// reaches 491 of 1000, the third 741, the fourth 991, the fifth
	// would not fit.
	assert.Equal(t, []string{"200 ", "200 ", "200 model=small", "200 model=small", "429 "}, marks)
}

// TestBudgetsDelay: under BudgetDelay low- and normal-priority requests
// wait until the window has room — exactly until then, on the fake clock —
// in priority order; high-priority ones are refused; a wait longer than the
// request's deadline is refused at once; a cancelled wait returns the
// context's error.
func TestBudgetsDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &bgUpstream{usage: func([]byte) (int64, int64) { return 400, 100 }}
		b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets: map[string]llmhttp.Budget{"batch": {Requests: 1, Window: time.Hour, Slots: 1, Policy: llmhttp.BudgetDelay, MaxDelay: 4 * time.Hour}},
			Shed:    llmhttp.ShedSettings{LowAt: -1}, // low-priority requests may use the whole budget
		})
		rt := b.Wrap(up)
		ctx := llmhttp.WithBudget(t.Context(), "batch")
		resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("m", 100, 10)))
		require.Equal(t, 200, resp.StatusCode)
		start := time.Now()

		// High priority is not delayed.
		resp, _ = bgDo(t, rt, bgReq(llmhttp.WithPriority(ctx, llmhttp.PriorityHigh), bgBody("m", 100, 10)))
		assert.Equal(t, 429, resp.StatusCode)
		assert.Equal(t, time.Hour, bgRefusal(t, resp, llmhttp.ReasonBudgetExhausted))

		// A deadline shorter than the wait: refused at once.
		dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		resp, _ = bgDo(t, rt, bgReq(dctx, bgBody("m", 100, 10)))
		cancel()
		assert.Equal(t, 429, resp.StatusCode)
		assert.Equal(t, time.Hour, bgRefusal(t, resp, llmhttp.ReasonBudgetExhausted))
		resp, _ = bgDo(t, rt, bgReq(llmhttp.WithMaxWait(ctx, 59*time.Minute), bgBody("m", 100, 10)))
		assert.Equal(t, 429, resp.StatusCode, "WithMaxWait bounds the wait too")
		assert.Equal(t, start, time.Now(), "no wait")

		// A cancelled wait returns the context's error.
		cctx, ccancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := rt.RoundTrip(bgReq(cctx, bgBody("m", 100, 10)))
			errc <- err
		}()
		synctest.Wait()
		ccancel()
		assert.ErrorIs(t, <-errc, context.Canceled)

		// Three waiters, low first: the window's request goes to the normal
		// one, the next windows' to the low ones in arrival order.
		var mu sync.Mutex
		var order []string
		var wg sync.WaitGroup
		for _, w := range []struct {
			name string
			prio llmhttp.Priority
		}{{"low-1", llmhttp.PriorityLow}, {"normal", llmhttp.PriorityNormal}, {"low-2", llmhttp.PriorityLow}} {
			wg.Go(func() {
				resp, _ := bgDo(t, rt, bgReq(llmhttp.WithPriority(ctx, w.prio), bgBody("m", 100, 10)))
				mu.Lock()
				order = append(order, w.name+" "+strconv.Itoa(resp.StatusCode)+" "+time.Since(start).String())
				mu.Unlock()
			})
			synctest.Wait()
		}
		wg.Wait()
		assert.Equal(t, []string{"normal 200 1h0m0s", "low-1 200 2h0m0s", "low-2 200 3h0m0s"}, order)
		st, _ := b.Stats("batch")
		assert.Equal(t, int64(4), st.Delayed)
	})
}

// TestBudgetsPerTenant keeps a PerTenant budget for each tenant apart, and
// applies an All budget to every request besides the named one.
func TestBudgetsPerTenant(t *testing.T) {
	up := &bgUpstream{usage: func([]byte) (int64, int64) { return 30, 20 }}
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{
			"per-user": {Tokens: 100, PerTenant: true, All: true},
			"feature":  {Tokens: 1000},
		},
	})
	rt := b.Wrap(up)
	do := func(tenant string) int {
		ctx := llmhttp.WithTenant(llmhttp.WithBudget(context.Background(), "feature", "feature"), tenant)
		resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("m", 20, 5)))
		return resp.StatusCode
	}
	assert.Equal(t, []int{200, 200, 429}, []int{do("alice"), do("alice"), do("alice")})
	assert.Equal(t, []int{200, 200}, []int{do("bob"), do("bob")})
	assert.Equal(t, int64(100), bgStatus(t, b, "per-user", "alice").Used.Tokens())
	assert.Equal(t, int64(100), bgStatus(t, b, "per-user", "bob").Used.Tokens())
	assert.Equal(t, int64(0), bgStatus(t, b, "per-user", "carol").Used.Tokens())
	assert.Equal(t, int64(200), bgStatus(t, b, "feature", "ignored").Used.Tokens())
	_, err := b.Status(context.Background(), "nope", "")
	assert.ErrorContains(t, err, `llmhttp: no budget named "nope"`)
}

// TestBudgetsSelectFunc names budgets with a function of the request.
func TestBudgetsSelectFunc(t *testing.T) {
	up := &bgUpstream{}
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{"by-header": {Requests: 1, PerTenant: true}},
		Select: func(r *http.Request) ([]string, string) {
			return []string{"by-header"}, r.Header.Get("X-User")
		},
	})
	rt := b.Wrap(up)
	codes := func(user string) int {
		req := bgReq(context.Background(), bgBody("m", 10, 1))
		req.Header.Set("X-User", user)
		resp, _ := bgDo(t, rt, req)
		return resp.StatusCode
	}
	assert.Equal(t, []int{200, 429, 200}, []int{codes("a"), codes("a"), codes("b")})
}

// TestBudgetsPerRequestCaps refuses a request over a per-request input or
// output cap with a too-large reply (413), before it is charged, or trims
// its max_tokens when the budget says so.
func TestBudgetsPerRequestCaps(t *testing.T) {
	up := &bgUpstream{}
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{
			"strict":  {Tokens: 1e6, MaxInputTokens: 1000, MaxOutputTokens: 500},
			"trimmed": {Tokens: 1e6, MaxOutputTokens: 500, TrimOutput: true},
		},
	})
	rt := b.Wrap(up)
	strict := llmhttp.WithBudget(context.Background(), "strict")
	resp, body := bgDo(t, rt, bgReq(strict, bgBody("m", 100, 1200)))
	assert.Equal(t, 413, resp.StatusCode)
	bgRefusal(t, resp, llmhttp.ReasonTooLarge)
	assert.Contains(t, body, "input tokens exceed the per-request cap of 1000")
	resp, _ = bgDo(t, rt, bgReq(strict, bgBody("m", 501, 10)))
	assert.Equal(t, 413, resp.StatusCode)
	resp, _ = bgDo(t, rt, bgReq(strict, bgBody("m", 500, 10)))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, int64(1), up.calls.Load())
	st, _ := b.Stats("strict")
	assert.Equal(t, int64(2), st.TooLarge)
	assert.Equal(t, int64(150), bgStatus(t, b, "strict", "").Used.Tokens(), "refusals are not charged")

	trimmed := llmhttp.WithBudget(context.Background(), "trimmed")
	resp, _ = bgDo(t, rt, bgReq(trimmed, bgBody("m", 4096, 10)))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "max_tokens=500", resp.Header.Get("Llmhttp-Degraded"))
	assert.Equal(t, bgBody("m", 500, 10), string(up.last()))
	resp, _ = bgDo(t, rt, bgReq(trimmed, bgBody("m", 400, 10)))
	assert.Empty(t, resp.Header.Get("Llmhttp-Degraded"))
	assert.Equal(t, bgBody("m", 400, 10), string(up.last()))

	// An OpenAI request without a limit gets one, named as api.openai.com
	// wants it.
	req, _ := http.NewRequestWithContext(trimmed, http.MethodPost, "https://api.openai.com/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	resp, _ = bgDo(t, rt, req)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `{"max_completion_tokens":500,"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, string(up.last()))

	// A body that cannot be rewritten (no GetBody) cannot be trimmed.
	req = bgReq(trimmed, bgBody("m", 4096, 10))
	req.GetBody = nil
	resp, _ = bgDo(t, rt, req)
	assert.Equal(t, 413, resp.StatusCode)
}

// TestBudgetsShedByFraction: as a budget nears its limit, low-priority
// requests are shed first (from 80 % by default), then — when configured —
// normal and high ones; critical requests are never shed.
func TestBudgetsShedByFraction(t *testing.T) {
	up := &bgUpstream{usage: func([]byte) (int64, int64) { return 90, 10 }}
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1000}},
		Shed:    llmhttp.ShedSettings{NormalAt: 0.9, HighAt: 0.95},
	})
	rt := b.Wrap(up)
	send := func(p llmhttp.Priority) string {
		ctx := llmhttp.WithPriority(llmhttp.WithBudget(context.Background(), "f"), p)
		// Estimated as charged: 90 input, 10 output.
		resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("m", 10, 89)))
		if r, ok := llmhttp.RefusalOf(resp); ok {
			return r.Reason
		}
		return "ok"
	}
	var got []string
	for range 7 {
		send(llmhttp.PriorityNormal) // 700 used
	}
	got = append(got, send(llmhttp.PriorityLow))      // 800: fits exactly
	got = append(got, send(llmhttp.PriorityLow))      // 900 > 800: shed
	got = append(got, send(llmhttp.PriorityNormal))   // 900: fits
	got = append(got, send(llmhttp.PriorityNormal))   // shed
	got = append(got, send(llmhttp.PriorityHigh))     // 1000 > 950: shed
	got = append(got, send(llmhttp.PriorityCritical)) // 1000: fits
	got = append(got, send(llmhttp.PriorityCritical)) // spent: refused
	assert.Equal(t, []string{"ok", "shed", "ok", "shed", "shed", "ok", "budget-exhausted"}, got)
	st, _ := b.Stats("f")
	assert.Equal(t, int64(3), st.Shed)
	assert.Equal(t, int64(1), st.Refused)
}

// TestBudgetsShedByQueue sheds by the depth of the pacer's queue for the
// request's partition: low from 8 by default, normal from NormalQueue,
// high and critical never unless configured (critical never at all).
func TestBudgetsShedByQueue(t *testing.T) {
	var depth atomic.Int64
	var parts []llmhttp.Partition
	up := &bgUpstream{}
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Shed: llmhttp.ShedSettings{NormalQueue: 20, Queued: func(p llmhttp.Partition) int {
			parts = append(parts, p)
			return int(depth.Load())
		}},
	})
	rt := b.Wrap(up)
	send := func(p llmhttp.Priority) int {
		resp, _ := bgDo(t, rt, bgReq(llmhttp.WithPriority(context.Background(), p), bgBody("claude-x", 10, 10)))
		return resp.StatusCode
	}
	depth.Store(7)
	assert.Equal(t, []int{200, 200, 200}, []int{send(llmhttp.PriorityLow), send(llmhttp.PriorityNormal), send(llmhttp.PriorityCritical)})
	depth.Store(8)
	assert.Equal(t, []int{429, 200, 200}, []int{send(llmhttp.PriorityLow), send(llmhttp.PriorityNormal), send(llmhttp.PriorityHigh)})
	depth.Store(1000)
	assert.Equal(t, []int{429, 429, 200, 200}, []int{send(llmhttp.PriorityLow), send(llmhttp.PriorityNormal), send(llmhttp.PriorityHigh), send(llmhttp.PriorityCritical)})
	require.NotEmpty(t, parts)
	assert.Equal(t, "claude-x", parts[0].Model)
	assert.Equal(t, "https://api.anthropic.com", parts[0].Host)
}

// TestBudgetsRefunds: a request that got no answer from the provider is
// refunded entirely; one answered with an error keeps its request count
// but not its tokens.
func TestBudgetsRefunds(t *testing.T) {
	ctx := llmhttp.WithBudget(context.Background(), "f")
	settings := llmhttp.BudgetSettings{Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1000, Requests: 10}}}

	b := llmhttp.NewBudgets(settings)
	boom := errors.New("connection refused")
	_, err := b.Wrap(llmhttp.RoundTripFunc(func(r *http.Request) (*http.Response, error) { r.Body.Close(); return nil, boom })).
		RoundTrip(bgReq(ctx, bgBody("m", 100, 50)))
	require.ErrorIs(t, err, boom)
	assert.Equal(t, llmhttp.BudgetCounts{}, bgStatus(t, b, "f", "").Used)

	b = llmhttp.NewBudgets(settings)
	resp, _ := bgDo(t, b.Wrap(&bgUpstream{status: 500}), bgReq(ctx, bgBody("m", 100, 50)))
	require.Equal(t, 500, resp.StatusCode)
	assert.Equal(t, llmhttp.BudgetCounts{Requests: 1}, bgStatus(t, b, "f", "").Used)

	b = llmhttp.NewBudgets(settings)
	inner := llmhttp.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Body.Close()
		return (&llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen}).Response(r), nil
	})
	resp, _ = bgDo(t, b.Wrap(inner), bgReq(ctx, bgBody("m", 100, 50)))
	require.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, llmhttp.BudgetCounts{}, bgStatus(t, b, "f", "").Used)
}

// TestBudgetsStoreErrorFailsOpen lets requests through, uncharged, when
// the store fails, and reports the failure.
func TestBudgetsStoreErrorFailsOpen(t *testing.T) {
	var errs atomic.Int64
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets:      map[string]llmhttp.Budget{"f": {Tokens: 1}},
		Store:        bgFailingStore{},
		OnStoreError: func(error) { errs.Add(1) },
	})
	resp, _ := bgDo(t, b.Wrap(&bgUpstream{}), bgReq(llmhttp.WithBudget(context.Background(), "f"), bgBody("m", 10, 10)))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Positive(t, errs.Load())
}

type bgFailingStore struct{}

func (bgFailingStore) Add(context.Context, string, llmhttp.BudgetWindow, time.Time, time.Time, llmhttp.BudgetCounts, []llmhttp.BudgetCounts) error {
	return errors.New("store down")
}

// TestBudgetsPassThrough: a request with no budget, no shedding and no
// usage hook reaches the next transport as it is.
func TestBudgetsPassThrough(t *testing.T) {
	var got *http.Request
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1}}})
	rt := b.Wrap(llmhttp.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r
		return bgResp(r, 200, "application/json", "{}"), nil
	}))
	req := bgReq(llmhttp.WithBudget(context.Background(), "unknown"), bgBody("m", 10, 10))
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Same(t, req, got)
}

// TestBudgetsStreamErrorCharged: a stream that fails after its head is
// charged what was seen, and the error reaches OnUsage.
func TestBudgetsStreamErrorCharged(t *testing.T) {
	var ev llmhttp.UsageEvent
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1e6}},
		OnUsage: func(e llmhttp.UsageEvent) { ev = e },
	})
	body := usFixture(t, "anthropic_error.sse")
	rt := b.Wrap(llmhttp.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Body.Close()
		return bgResp(r, 200, "text/event-stream", string(body)), nil
	}))
	bgDo(t, rt, bgReq(llmhttp.WithBudget(context.Background(), "f"), bgBody("m", 100, 10)))
	require.NotNil(t, ev.Usage.Err)
	assert.Equal(t, llmhttp.ClassOverloaded, ev.Usage.Err.Class)
	assert.Equal(t, llmhttp.BudgetCounts{Requests: 1, InputTokens: 1000, OutputTokens: 3}, ev.Charged)
	assert.Equal(t, int64(1003), bgStatus(t, b, "f", "").Used.Tokens())
}

// TestBudgetsDegradedRequestIsReplayable: a degraded request's body can be
// read again (GetBody) for retries, and its ContentLength matches.
func TestBudgetsDegradedRequestIsReplayable(t *testing.T) {
	var seen *http.Request
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{"f": {Tokens: 1000, DegradeAt: 0.0001, Degrade: llmhttp.Degrade{Model: "mini"}}},
	})
	rt := b.Wrap(llmhttp.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return bgResp(r, 200, "application/json", "{}"), nil
	}))
	orig := bgBody("a-much-longer-model-name", 10, 10)
	req := bgReq(llmhttp.WithBudget(context.Background(), "f"), orig)
	bgDo(t, rt, req)
	require.NotSame(t, req, seen)
	want := bgBody("mini", 10, 10)
	assert.Equal(t, int64(len(want)), seen.ContentLength)
	rc, err := seen.GetBody()
	require.NoError(t, err)
	again, _ := io.ReadAll(rc)
	assert.Equal(t, want, string(again))
	assert.Equal(t, llmhttp.Partition{Host: "https://api.anthropic.com", Credential: llmhttp.Fingerprint("sk-ant-budget-test"), Model: "mini"},
		llmhttp.DefaultPartition(seen), "the degraded request is paced as the new model's")
	// The caller's request is untouched.
	rc, _ = req.GetBody()
	b0, _ := io.ReadAll(rc)
	assert.Equal(t, orig, string(b0))
	var v map[string]any
	require.NoError(t, json.Unmarshal(again, &v))
	assert.True(t, bytes.Contains(again, []byte(`"model":"mini"`)))
}

// TestBudgetsShedOrderUnderLoad floods one model of llmhttptest with four
// priorities, a request a second each, at 1.6 times its rate limit, through
// the budget layer in front of llmhttp.New, shedding on the pacer's queue
// (low from 2 waiting, normal from 5, high from 10): the lower the
// priority, the more is shed; critical requests are never shed, and the
// capacity goes to critical and high first.
func TestBudgetsShedOrderUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Anthropic: llmhttptest.Limits{RPM: 150}, Latency: 200 * time.Millisecond, Seed: 1,
		})
		pacer := llmhttp.NewPacer(llmhttp.PacerSettings{MaxWait: -1})
		b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Shed: llmhttp.ShedSettings{LowQueue: 2, NormalQueue: 5, HighQueue: 10, Queued: func(p llmhttp.Partition) int {
				s, _ := pacer.PartitionStats(p)
				return s.Queued
			}},
		})
		rt := b.Wrap(llmhttp.New(h.Transport(), llmhttp.WithPacer(pacer)))
		prios := []llmhttp.Priority{llmhttp.PriorityLow, llmhttp.PriorityNormal, llmhttp.PriorityHigh, llmhttp.PriorityCritical}
		var mu sync.Mutex
		shed := map[llmhttp.Priority]int{}
		served := map[llmhttp.Priority]int{}
		var wg sync.WaitGroup
		for i := range 960 { // 4 per second for four minutes, against 2.5 per second
			p := prios[i%len(prios)]
			wg.Go(func() {
				resp, _ := bgDo(t, rt, bgReq(llmhttp.WithPriority(t.Context(), p), bgBody("claude-x", 50, 20)))
				mu.Lock()
				defer mu.Unlock()
				if r, ok := llmhttp.RefusalOf(resp); ok && r.Reason == llmhttp.ReasonShed {
					shed[p]++
				} else if resp.StatusCode == 200 {
					served[p]++
				}
			})
			time.Sleep(250 * time.Millisecond)
		}
		wg.Wait()
		t.Logf("shed %v, served %v", shed, served)
		assert.Greater(t, shed[llmhttp.PriorityLow], shed[llmhttp.PriorityNormal])
		assert.Greater(t, shed[llmhttp.PriorityNormal], shed[llmhttp.PriorityHigh])
		assert.Zero(t, shed[llmhttp.PriorityCritical])
		assert.Equal(t, 240, served[llmhttp.PriorityCritical])
		assert.Equal(t, 240, served[llmhttp.PriorityHigh])
	})
}

// TestBudgetsDelayBelowShedFraction: under BudgetDelay a low-priority
// request that would pass the shed fraction (80 %) waits until it fits
// below it, instead of being shed; with the default MaxDelay (10 min) a
// wait of an hour is refused at once.
func TestBudgetsDelayBelowShedFraction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &bgUpstream{usage: func([]byte) (int64, int64) { return 140, 10 }}
		b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
			Budgets: map[string]llmhttp.Budget{
				"long":  {Tokens: 1000, Window: time.Hour, Slots: 1, Policy: llmhttp.BudgetDelay, MaxDelay: 2 * time.Hour},
				"short": {Tokens: 1000, Window: time.Hour, Slots: 1, Policy: llmhttp.BudgetDelay},
			},
		})
		rt := b.Wrap(up)
		for _, name := range []string{"long", "short"} {
			ctx := llmhttp.WithBudget(t.Context(), name)
			for range 5 {
				resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("m", 10, 139))) // 150 each: 750
				require.Equal(t, 200, resp.StatusCode)
			}
		}
		start := time.Now()
		low := func(name string) *http.Response {
			resp, _ := bgDo(t, rt, bgReq(llmhttp.WithPriority(llmhttp.WithBudget(t.Context(), name), llmhttp.PriorityLow), bgBody("m", 10, 139)))
			return resp
		}
		resp := low("short")
		assert.Equal(t, 429, resp.StatusCode)
		assert.Equal(t, time.Hour, bgRefusal(t, resp, llmhttp.ReasonBudgetExhausted), "until the window resets")
		resp = low("long")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, time.Hour, time.Since(start))
		resp, _ = bgDo(t, rt, bgReq(llmhttp.WithBudget(t.Context(), "long"), bgBody("m", 10, 139)))
		assert.Equal(t, 200, resp.StatusCode, "normal priority uses the whole budget")
	})
}

// bgCountingBody counts its Close calls.
type bgCountingBody struct {
	io.Reader
	closes atomic.Int32
}

func (b *bgCountingBody) Close() error { b.closes.Add(1); return nil }

// TestBudgetsClosesRequestBodyOnce: whether the request is refused,
// degraded (a clone is sent instead) or sent as it is, its body is closed
// exactly once, and the caller's request is not modified.
func TestBudgetsClosesRequestBodyOnce(t *testing.T) {
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{
			"capped":   {Tokens: 1e6, MaxInputTokens: 100},
			"degraded": {Tokens: 1e6, DegradeAt: 1e-9, Degrade: llmhttp.Degrade{Model: "mini"}},
			"spent":    {Requests: 1},
		},
	})
	rt := b.Wrap(&bgUpstream{})
	for _, c := range []struct {
		budget string
		input  int
		status int
	}{{"capped", 500, 413}, {"capped", 10, 200}, {"degraded", 10, 200}, {"spent", 10, 200}, {"spent", 10, 429}} {
		req := bgReq(llmhttp.WithBudget(context.Background(), c.budget), bgBody("m", 10, c.input))
		body := &bgCountingBody{Reader: strings.NewReader(bgBody("m", 10, c.input))}
		req.Body = body
		before := req.Clone(req.Context())
		resp, _ := bgDo(t, rt, req)
		assert.Equal(t, c.status, resp.StatusCode, c.budget)
		assert.Equal(t, int32(1), body.closes.Load(), "%s: body closed once", c.budget)
		assert.Equal(t, before.Header, req.Header)
		assert.Equal(t, before.ContentLength, req.ContentLength)
	}
}

// TestBudgetsDegradeModelOnlyOverdraft: a degrade that only changes the
// model still stops at MaxOverdraft.
func TestBudgetsDegradeModelOnlyOverdraft(t *testing.T) {
	up := &bgUpstream{usage: func([]byte) (int64, int64) { return 90, 10 }}
	b := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{"f": {Tokens: 300, Policy: llmhttp.BudgetDegrade,
			Degrade: llmhttp.Degrade{Model: "small"}, MaxOverdraft: 0.5}},
	})
	rt := b.Wrap(up)
	ctx := llmhttp.WithBudget(context.Background(), "f")
	var got []string
	for range 6 {
		resp, _ := bgDo(t, rt, bgReq(ctx, bgBody("big", 10, 89))) // 100 each
		got = append(got, strconv.Itoa(resp.StatusCode)+" "+resp.Header.Get("Llmhttp-Degraded"))
	}
	// 300 spent after three; the overdraft allows 450: one more, degraded.
	assert.Equal(t, []string{"200 ", "200 ", "200 ", "200 model=small", "429 ", "429 "}, got)
}
