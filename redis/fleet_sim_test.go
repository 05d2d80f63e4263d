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
						c := fleetConfig{provider: fc.p, replicas: replicas, handler: h, window: time.Minute, load: 1.5, windows: 10,
							base: func(int) http.RoundTripper { return h.Transport() }}
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
						if !llmredis.CanDecline {
							t.Skip("the goals need a core whose Grant can decline a reservation (llmhttp.Grant.Declined; see reserved_core.go)")
						}
						assert.GreaterOrEqual(t, r.goodput, 0.97, "of capacity")
						assert.LessOrEqual(t, r.throttleRate(), 0.01, "429s per attempt")
						assert.Zero(t, r.failed+r.local)
						assert.Zero(t, r.storeErrors())
					})
				})
			}
		}
	}
}
