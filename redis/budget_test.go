package redis_test

import (
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// The Redis budget store keeps the counts as llmhttp.MemoryBudgetStore
// does: the same random sequence of adds, refunds, late settlements and
// reads, at random times, gives the same windows.
func TestBudgetStoreMatchesMemory(t *testing.T) {
	for _, w := range []llmhttp.BudgetWindow{
		{Width: time.Minute, Slots: 60},
		{Width: 24 * time.Hour, Slots: 1},
		{Width: time.Second, Slots: 5},
	} {
		t.Run(w.Width.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, rdb := newMini(t)
				st := llmredis.NewStore(rdb, llmredis.Settings{}).Budgets()
				var mem llmhttp.MemoryBudgetStore
				rng := rand.New(rand.NewPCG(1, uint64(w.Slots)))
				got := make([]llmhttp.BudgetCounts, w.Slots)
				want := make([]llmhttp.BudgetCounts, w.Slots)
				var admitted []time.Time
				for i := range 400 {
					now := time.Now()
					at := now
					var delta llmhttp.BudgetCounts
					switch k := rng.IntN(5); {
					case k <= 1:
						delta = llmhttp.BudgetCounts{Requests: 1, InputTokens: rng.Int64N(1000), OutputTokens: rng.Int64N(500)}
						admitted = append(admitted, now)
					case k == 2 && len(admitted) > 0:
						// A settlement, charged to its admission's slot.
						at = admitted[rng.IntN(len(admitted))]
						delta = llmhttp.BudgetCounts{OutputTokens: rng.Int64N(400) - 300}
					case k == 3:
						time.Sleep(time.Duration(rng.Int64N(int64(w.Width) * 2)))
						continue
					}
					key := []string{"a", "b|tenant-1"}[rng.IntN(2)]
					require.NoError(t, st.Add(t.Context(), key, w, at, now, delta, got))
					require.NoError(t, mem.Add(t.Context(), key, w, at, now, delta, want))
					require.Equal(t, want, got, "step %d", i)
				}
			})
		})
	}
}

// A budget's counts expire once its newest slot has left the window.
func TestBudgetStoreExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rdb := newMini(t)
		st := llmredis.NewStore(rdb, llmredis.Settings{Prefix: "p:"}).Budgets()
		w := llmhttp.BudgetWindow{Width: time.Minute, Slots: 10}
		usage := make([]llmhttp.BudgetCounts, w.Slots)
		now := time.Now()
		require.NoError(t, st.Add(t.Context(), "feature", w, now, now, llmhttp.BudgetCounts{Requests: 1}, usage))
		assert.Equal(t, []string{"p:budget:feature"}, m.Keys())
		ttl := m.TTL("p:budget:feature")
		assert.Greater(t, ttl, 10*time.Minute)
		assert.LessOrEqual(t, ttl, 12*time.Minute)
		time.Sleep(12 * time.Minute)
		m.Exists("x")
		assert.Empty(t, m.Keys())
	})
}

// Two processes spend one budget through Redis: between them they get
// what it allows, where each with a budget of its own would get it whole.
func TestBudgetSharedBetweenProcesses(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := "redis"
		if !shared {
			name = "memory"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, _ := newMini(t)
				provider := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
					io.Copy(io.Discard, req.Body)
					req.Body.Close()
					return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
						Body:    io.NopCloser(strings.NewReader(`{"type":"message","usage":{"input_tokens":10,"output_tokens":5}}`)),
						Request: req}, nil
				})
				var clients []*http.Client
				for range 2 {
					s := llmhttp.BudgetSettings{Budgets: map[string]llmhttp.Budget{"day": {Requests: 10, All: true}}}
					if shared {
						s.Store = llmredis.NewStore(miniClient(t, m), llmredis.Settings{}).Budgets()
					}
					clients = append(clients, &http.Client{Transport: llmhttp.NewBudgets(s).Wrap(provider)})
				}
				ok := 0
				for i := range 30 {
					req, _ := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages",
						strings.NewReader(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
					resp, err := clients[i%2].Do(req)
					require.NoError(t, err)
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ok++
					}
				}
				if shared {
					assert.Equal(t, 10, ok)
				} else {
					assert.Equal(t, 20, ok)
				}
			})
		})
	}
}

// While Redis is down the budgets are counted in the process, and they are
// shared again once it is back.
func TestBudgetStoreFallsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFlaky(t)
		var ev events
		st := llmredis.NewStore(f.client(t), llmredis.Settings{OnFallback: ev.add, MinBackoff: time.Second})
		b := st.Budgets()
		w := llmhttp.BudgetWindow{Width: time.Hour, Slots: 1}
		usage := make([]llmhttp.BudgetCounts, 1)
		add := func(n int64) llmhttp.BudgetCounts {
			now := time.Now()
			require.NoError(t, b.Add(t.Context(), "k", w, now, now, llmhttp.BudgetCounts{Requests: n}, usage))
			return usage[0]
		}
		assert.EqualValues(t, 5, add(5).Requests)
		f.kill()
		assert.EqualValues(t, 2, add(2).Requests, "counted locally")
		assert.EqualValues(t, 3, add(1).Requests)
		f.restart() // empty: a redis-server without persistence
		time.Sleep(time.Second)
		assert.EqualValues(t, 4, add(4).Requests, "shared again")
		assert.Equal(t, []llmredis.Mode{llmredis.ModeLocal, llmredis.ModeShared}, ev.modes())
	})
}
