package llmhttp_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// laneReq returns an Anthropic Messages request for model with about input
// tokens of text, in fast mode when fast.
func laneReq(ctx context.Context, base, model string, input int, fast bool) *http.Request {
	speed := ""
	if fast {
		speed = `"speed":"fast",`
	}
	return anthropicReq(ctx, base, "sk-ant-lane", `{"model":"`+model+`","max_tokens":100,`+speed+
		`"messages":[{"role":"user","content":"`+strings.Repeat("x", 4*input)+`"}]}`)
}

// A request in Anthropic's fast mode ("speed": "fast") is a partition of
// its own — lane "fast" — for the pacer and the breaker; a nested "speed",
// another speed, or an OpenAI request are not.
func TestDefaultPartitionFastLane(t *testing.T) {
	ctx := context.Background()
	fast := llmhttp.DefaultPartition(laneReq(ctx, "https://api.anthropic.com", "claude-opus-4-8", 10, true))
	std := llmhttp.DefaultPartition(laneReq(ctx, "https://api.anthropic.com", "claude-opus-4-8", 10, false))
	assert.Equal(t, llmhttp.LaneFast, fast.Lane)
	assert.Equal(t, "", std.Lane)
	assert.Equal(t, std.Host, fast.Host)
	assert.Equal(t, std.Credential, fast.Credential)
	assert.Equal(t, std.Model, fast.Model)
	assert.Equal(t, std.String()+"|fast", fast.String())
	assert.Equal(t, "https://api.anthropic.com|claude-opus-4-8|fast",
		llmhttp.BreakerKey(laneReq(ctx, "https://api.anthropic.com", "claude-opus-4-8", 10, true)))
	assert.Equal(t, "https://api.anthropic.com|claude-opus-4-8",
		llmhttp.BreakerKey(laneReq(ctx, "https://api.anthropic.com", "claude-opus-4-8", 10, false)))

	for name, body := range map[string]string{
		"nested":   `{"model":"m","max_tokens":5,"metadata":{"speed":"fast"},"messages":[]}`,
		"standard": `{"model":"m","max_tokens":5,"speed":"standard","messages":[]}`,
		"literal":  `{"model":"m","max_tokens":5,"speed":true,"messages":[]}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages", strings.NewReader(body))
		req.Header.Set("X-Api-Key", "k")
		assert.Equal(t, "", llmhttp.DefaultPartition(req).Lane, name)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-x","speed":"fast","messages":[]}`))
	req.Header.Set("Authorization", "Bearer k")
	assert.Equal(t, "", llmhttp.DefaultPartition(req).Lane, "OpenAI has no speed parameter")
}

// laneRun sends fast and std requests of input tokens at once through a
// transport built from opts to h, after one warm-up request of each kind
// (so that both pools' limits are known), the standard ones when every
// fast one is answered or waiting (in a synctest bubble). It returns the
// longest time a standard request took, the requests that did not end in
// a 200 and the 429s the server sent.
func laneRun(t *testing.T, h *llmhttptest.Handler, opts []llmhttp.Option, fast, std, input int) (stdMax time.Duration, failed int, throttled int64) {
	t.Helper()
	rt := llmhttp.New(h.Transport(), opts...)
	for _, f := range []bool{true, false} {
		code, _, err := pcDo(t, rt, laneReq(t.Context(), "http://fake.test", "claude-x", input, f))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	for i := range fast + std {
		isFast := i < fast
		if i == fast {
			// The fast requests first, until each is answered or waits
			// (fake time stands still meanwhile): the standard ones then
			// find whatever the fast burst left, in any goroutine order.
			synctest.Wait()
		}
		wg.Go(func() {
			code, _, err := pcDo(t, rt, laneReq(t.Context(), "http://fake.test", "claude-x", input, isFast))
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			if code != http.StatusOK {
				failed++
			}
			if !isFast {
				stdMax = max(stdMax, time.Since(start))
			}
		})
	}
	wg.Wait()
	return stdMax, failed, h.Stats().ByStatus[http.StatusTooManyRequests]
}

// laneHandler is a fake Anthropic API whose fast mode has a small pool of
// its own beside a large standard one: 6,000 input tokens a minute
// against 200,000.
func laneHandler() *llmhttptest.Handler {
	return llmhttptest.NewHandler(llmhttptest.Config{
		Anthropic: llmhttptest.Limits{RPM: 1000, ITPM: 200_000, OTPM: 40_000, FastITPM: 6_000, FastOTPM: 4_000},
		Output:    func(llmhttptest.Request) int64 { return 20 },
	})
}

// Fast-mode requests are paced on the fast-mode limits the answers report
// (anthropic-fast-*), in a partition of their own, while standard requests
// of the same key and model go at the standard pool's pace: the small fast
// pool's queue never holds them back, and the server sends no 429.
// Paced as one partition instead (a Partition function that drops the
// lane), the fast requests are charged to the standard buckets, run into
// the fast pool's 429s, and the gate those close holds the standard
// requests too.
func TestPacerFastLane(t *testing.T) {
	const fast, std, input = 40, 40, 500 // the fast pool holds 12 such requests a minute
	synctest.Test(t, func(t *testing.T) {
		h := laneHandler()
		p := llmhttp.NewPacer(llmhttp.PacerSettings{MaxWait: -1})
		stdMax, failed, throttled := laneRun(t, h, []llmhttp.Option{llmhttp.WithPacer(p)}, fast, std, input)
		t.Logf("lanes: %d failed, %d 429s, standard requests done within %v", failed, throttled, stdMax)
		assert.Zero(t, failed, "failed requests")
		// The burst's answers all arrive at one instant, in any order, and a
		// report older than one applied already (it leaves out requests
		// answered since) is believed by half like any higher report: in a
		// few runs in a hundred that lets one fast request over the pool,
		// its 429 retried. Paced as one partition, below, there are 63–85.
		assert.LessOrEqual(t, throttled, int64(1), "429s")
		assert.Less(t, stdMax, time.Second, "standard requests held back")

		st := p.Stats()
		require.Len(t, st, 2)
		byLane := map[string]llmhttp.PacerStats{}
		for _, s := range st {
			byLane[s.Partition.Lane] = s
		}
		require.Contains(t, byLane, llmhttp.LaneFast)
		require.Contains(t, byLane, "")
		assert.EqualValues(t, 6_000, byLane[llmhttp.LaneFast].InputTokens.Limit)
		assert.EqualValues(t, 4_000, byLane[llmhttp.LaneFast].OutputTokens.Limit)
		assert.EqualValues(t, 200_000, byLane[""].InputTokens.Limit)
		assert.EqualValues(t, 40_000, byLane[""].OutputTokens.Limit)
		assert.EqualValues(t, 1000, byLane[llmhttp.LaneFast].Requests.Limit, "the request limit is the key's")
		assert.EqualValues(t, int64(fast+1)+throttled, byLane[llmhttp.LaneFast].Sent, "every fast request and retry")
	})

	synctest.Test(t, func(t *testing.T) {
		h := laneHandler()
		oneLane := func(req *http.Request) llmhttp.Partition {
			p := llmhttp.DefaultPartition(req)
			p.Lane = ""
			return p
		}
		p := llmhttp.NewPacer(llmhttp.PacerSettings{MaxWait: -1, Partition: oneLane})
		stdMax, failed, throttled := laneRun(t, h, []llmhttp.Option{llmhttp.WithPacer(p)}, fast, std, input)
		t.Logf("one partition: %d failed, %d 429s, standard requests done within %v", failed, throttled, stdMax)
		assert.Positive(t, throttled, "the fast pool's 429s")
		assert.Greater(t, stdMax, time.Second, "standard requests held by the fast pool's gate")
	})
}

// Limits given up front for a model apply to its fast lane with the
// fast-mode fields in place of the input and output tokens.
func TestPacerFastLaneUpfrontLimits(t *testing.T) {
	u := &pcUpstream{}
	p := llmhttp.NewPacer(llmhttp.PacerSettings{Limits: map[string]llmhttp.Limits{"claude-x": {
		InputTokens:      llmhttp.Limit{Limit: 200_000},
		OutputTokens:     llmhttp.Limit{Limit: 40_000},
		FastInputTokens:  llmhttp.Limit{Limit: 6_000},
		FastOutputTokens: llmhttp.Limit{Limit: 4_000},
	}}})
	rt := p.Wrap(u)
	for _, f := range []bool{true, false} {
		_, _, err := pcDo(t, rt, laneReq(t.Context(), "https://api.anthropic.com", "claude-x", 10, f))
		require.NoError(t, err)
	}
	st := p.Stats()
	require.Len(t, st, 2)
	for _, s := range st {
		want := [2]int64{200_000, 40_000}
		if s.Partition.Lane == llmhttp.LaneFast {
			want = [2]int64{6_000, 4_000}
		}
		assert.Equal(t, want, [2]int64{s.InputTokens.Limit, s.OutputTokens.Limit}, s.Partition.String())
	}
}

// Fast mode's overload (a 529 when its capacity is exceeded) opens the
// fast lane's circuit only: standard requests to the same model still go.
func TestBreakerFastLaneCircuit(t *testing.T) {
	u := &pcUpstream{reply: func(_ int, req *http.Request) *http.Response {
		if req.Header.Get("X-Test-Id") == "fast" {
			return pcResp(529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		}
		return nil
	}}
	rt := llmhttp.New(u, llmhttp.WithoutRetry(), llmhttp.WithoutPacing(),
		llmhttp.WithBreakerSettings(llmhttp.BreakerSettings{ConsecutiveFailures: 3}))
	req := func(fast bool) *http.Request {
		r := laneReq(t.Context(), "https://api.anthropic.com", "claude-x", 10, fast)
		if fast {
			r.Header.Set("X-Test-Id", "fast")
		}
		return r
	}
	for range 3 {
		code, _, err := pcDo(t, rt, req(true))
		require.NoError(t, err)
		require.Equal(t, 529, code)
	}
	assert.Equal(t, llmhttp.ReasonCircuitOpen, pcRefused(t, rt, req(true)).Reason)
	code, _, err := pcDo(t, rt, req(false))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "the standard circuit is closed")
	assert.Equal(t, 4, u.count(), "the refused fast request was not sent")
}
