package redis_test

import (
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// fleetCases are the provider dialects and output charging rules of the
// fleet runs.
var fleetCases = []struct {
	name   string
	p      llmhttptest.Provider
	charge llmhttptest.Charge
}{
	{"anthropic-generated", llmhttptest.Anthropic, llmhttptest.ChargeGenerated},
	{"anthropic-reserved", llmhttptest.Anthropic, llmhttptest.ChargeReserved},
	{"openai-reserved", llmhttptest.OpenAI, llmhttptest.ChargeReserved},
	{"openai-generated", llmhttptest.OpenAI, llmhttptest.ChargeGenerated},
}

// The multi-replica proof, on fake time: 4 and 8 replicas — each its own
// http.Client, Pacer and Redis connection — share one API key, with
// arrivals at 1.5× what the limits allow for 10 one-minute windows. Through
// the Redis store they use at least 97 % of the capacity and hear at most
// 1 % of 429s, like one process; the same replicas pacing alone (from the
// headers) are logged for comparison.
func TestFleetSharesOneKey(t *testing.T) {
	simFleets(t, func(c *fleetConfig) { c.load, c.windows = 1.5, 10 }, 0.97, nil)
}

// simFleets runs, on fake time against miniredis, a fleet of 4 and of 8
// replicas, through the store and alone, for every case of fleetCases:
// set fills in the workload (load or burst, windows); the fleets through
// the store must meet the goals (checkGoals, with at least minGoodput of
// the capacity) and check, if set.
func simFleets(t *testing.T, set func(*fleetConfig), minGoodput float64, check func(t *testing.T, r fleetResult)) {
	for _, replicas := range []int{4, 8} {
		for _, shared := range []bool{true, false} {
			for _, fc := range fleetCases {
				name := fc.name + "/replicas=" + strconv.Itoa(replicas) + "/redis"
				if !shared {
					name = fc.name + "/replicas=" + strconv.Itoa(replicas) + "/local"
				}
				t.Run(name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						m, _ := newMini(t)
						h := llmhttptest.NewHandler(serverConfig(fc.charge, time.Minute))
						c := fleetConfig{provider: fc.p, replicas: replicas, handler: h, window: time.Minute,
							base: func(int) http.RoundTripper { return h.Transport() }}
						set(&c)
						var cnt counter
						if shared {
							c.store = func(int) llmhttp.PacerStore {
								rdb := miniClient(t, m)
								rdb.AddHook(&cnt)
								return llmredis.NewStore(rdb, llmredis.Settings{}).Pacer()
							}
						}
						r := runFleet(c)
						t.Logf("%v  round trips/request %.2f", r, float64(cnt.calls.Load())/float64(max(r.attempts, 1)))
						if !shared {
							return
						}
						checkGoals(t, r, fc.charge, fc.p, replicas, minGoodput)
						if check != nil {
							check(t, r)
						}
					})
				})
			}
		}
	}
}

// checkGoals asserts the goals for a fleet through the store: at
// least minGoodput of the capacity (the 97 % under load), at most
// 1 % of 429s per attempt. With an
// Anthropic server that reserves max_tokens, each replica's pacer first
// assumes Anthropic's documented rule (only generated tokens count) and
// switches on its second 429 that only a reservation explains (see
// llmhttp.PacerSettings.OutputCharging): those 429s, two per replica at
// most, are the pacers' to learn, and are allowed beyond the 1 %.
func checkGoals(t *testing.T, r fleetResult, charge llmhttptest.Charge, p llmhttptest.Provider, replicas int, minGoodput float64) {
	t.Helper()
	assert.GreaterOrEqual(t, r.goodput, minGoodput, "of capacity")
	allowed := 0.01 * float64(r.attempts)
	if p == llmhttptest.Anthropic && charge == llmhttptest.ChargeReserved {
		allowed += float64(2 * replicas)
	}
	assert.LessOrEqual(t, float64(r.throttled), allowed, "429s")
	assert.Zero(t, r.failed+r.local)
	assert.Zero(t, r.storeErrors())
}

// The first burst of a fleet that knows nothing yet — a new key, an empty
// Redis, no limits given up front: 300 requests at once through 4 and 8
// replicas. Through the store, one request goes first and the others
// follow at the pace its answer reveals; alone, each replica sends until
// its own answers come back (logged for comparison). The fleets through
// the store use 0.97–0.99 of the capacity, but the start costs a little:
// OpenAI, generated output, 4 replicas, ranged 0.968–0.993 over 110 runs
// (mean 0.983), so the bound is 0.96, not the 0.97 the steady load meets.
func TestFleetColdBurst(t *testing.T) {
	simFleets(t, func(c *fleetConfig) { c.burst, c.windows = 300, 20 }, 0.96, func(t *testing.T, r fleetResult) {
		assert.Equal(t, r.total, r.ok, "all served")
	})
}
