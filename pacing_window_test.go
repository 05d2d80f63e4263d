package llmhttp_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// The refill is learned from *-reset, not assumed from a one-minute window:
// against a server whose "minute" is 6 s the pacer refills at the server's
// 5,000 input tokens a second (not 500), so a burst queued behind an empty
// bucket flows at the server's pace, and no request is refused locally for
// a wait the server would never impose (with a 60 s prior, the pacer used
// to stall for seconds with requests queued and none in flight, then refuse
// them, predicting a 66 s wait).
func TestPacerLearnsWindowFromReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Window:    6 * time.Second,
			Anthropic: llmhttptest.Limits{RPM: 50, ITPM: 30_000, OTPM: 8_000},
			Latency:   100 * time.Millisecond, TokenLatency: time.Millisecond,
			Seed: 1,
		})
		tr := llmhttp.New(h.Transport()) // default settings: MaxWait 60 s
		body := llmhttptest.Body(llmhttptest.Anthropic, "model", 2000, 256)
		const n = 90
		start := time.Now()
		var mu sync.Mutex
		var ok, refused int
		var wg sync.WaitGroup
		next := make(chan struct{})
		for range 16 {
			wg.Go(func() {
				for range next {
					req := llmhttptest.NewRequest(context.Background(), llmhttptest.Anthropic, "", "sk-workload", body)
					resp, err := tr.RoundTrip(req)
					require.NoError(t, err)
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					_, local := llmhttp.RefusalOf(resp)
					mu.Lock()
					if resp.StatusCode == http.StatusOK {
						ok++
					}
					if local {
						refused++
					}
					mu.Unlock()
				}
			})
		}
		for range n {
			next <- struct{}{}
		}
		close(next)
		wg.Wait()
		elapsed := time.Since(start)

		assert.Equal(t, n, ok, "every request served")
		assert.Zero(t, refused, "no local refusal")
		st := pcStats(t, tr.Pacer())
		assert.InDelta(t, 6, st.InputTokens.Window.Seconds(), 0.6, "ITPM 30,000 per 6 s")
		assert.InDelta(t, 5000, st.InputTokens.RefillPerSecond, 600)
		assert.Equal(t, st.InputTokens.Window, st.Requests.Window, "the requests bucket shares the window its drained neighbour shows")
		// 90 × 2,000 input tokens: 30,000 at once, the rest at 5,000 a
		// second (30 s), plus latency.
		ideal := time.Duration(float64(n*2000-30_000) / 5000 * float64(time.Second))
		assert.Less(t, elapsed, ideal+ideal/10+time.Second, "at the server's pace (ideal %v)", ideal)
	})
}

// A server whose window is the minute keeps the minute: the evidence of the
// resets agrees with it and does not move it.
func TestPacerKeepsMinuteWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Seed: 3})
		tr := llmhttp.New(h.Transport(), llmhttp.WithPacerSettings(llmhttp.PacerSettings{MaxWait: -1}))
		body := llmhttptest.Body(llmhttptest.Anthropic, "model", 1500, 256)
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				req := llmhttptest.NewRequest(context.Background(), llmhttptest.Anthropic, "", "sk-workload", bytes.Clone(body))
				resp, err := tr.RoundTrip(req)
				require.NoError(t, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		wg.Wait()
		st := pcStats(t, tr.Pacer())
		assert.Equal(t, time.Minute, st.InputTokens.Window)
		assert.Equal(t, time.Minute, st.Requests.Window)
		assert.Equal(t, time.Minute, st.OutputTokens.Window)
	})
}
