package redis_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// The fleet against a real redis-server and a real llmhttptest server on
// loopback, in real time: "a minute" of the server is fleetWindow, its
// latencies scaled alike. Each replica has its own http.Transport and its
// own Redis client (connection pool).
//
//	LLMHTTP_REDIS_ADDR=$(redis/testdata/start-redis.sh) \
//	  go test -run '^$' -bench BenchmarkFleet -benchtime 1x ./redis

const fleetWindow = 6 * time.Second

// counter counts the commands a client sends and the time it waits for
// them: a go-redis hook.
type counter struct {
	calls atomic.Int64
	nanos atomic.Int64
}

func (c *counter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *counter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		c.calls.Add(1)
		c.nanos.Add(int64(time.Since(start)))
		return err
	}
}

func (c *counter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		c.calls.Add(1)
		c.nanos.Add(int64(time.Since(start)))
		return err
	}
}

// realFleetClient returns a client of the real Redis at addr, counted by c.
func realFleetClient(tb testing.TB, addr string, c *counter) *goredis.Client {
	rdb := goredis.NewClient(&goredis.Options{
		Addr:                     addr,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	if c != nil {
		rdb.AddHook(c)
	}
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// toServer returns a transport that sends every request to srv (the
// requests keep their host, and with it their partition, above it).
func toServer(srv string) http.RoundTripper {
	u, _ := url.Parse(srv)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{}).DialContext}
	return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, ""
		return tr.RoundTrip(r)
	})
}

// commandStats returns the calls of each command Redis counted (INFO
// commandstats), commands run by scripts included.
func commandStats(tb testing.TB, rdb *goredis.Client) map[string]int64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

func BenchmarkFleet(b *testing.B) {
	addr := realAddr(b)
	admin := realFleetClient(b, addr, nil)
	for _, replicas := range []int{4, 8} {
		for _, shared := range []bool{true, false} {
			for _, pc := range []struct {
				name   string
				p      llmhttptest.Provider
				charge llmhttptest.Charge
			}{
				{"anthropic-generated", llmhttptest.Anthropic, llmhttptest.ChargeGenerated},
				{"openai-reserved", llmhttptest.OpenAI, llmhttptest.ChargeReserved},
			} {
				name := pc.name + "/replicas=" + strconv.Itoa(replicas)
				if shared {
					name += "/redis"
				} else {
					name += "/local"
				}
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						srv := llmhttptest.NewServer(serverConfig(pc.charge, fleetWindow))
						var cnt counter
						prefix := "bench:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
						c := fleetConfig{provider: pc.p, replicas: replicas, handler: srv.Handler, window: fleetWindow,
							load: 1.5, windows: 10, base: func(int) http.RoundTripper { return toServer(srv.URL) }}
						if shared {
							c.store = func(int) llmhttp.PacerStore {
								return llmredis.NewStore(realFleetClient(b, addr, &cnt), llmredis.Settings{Prefix: prefix}).Pacer()
							}
						}
						before := commandStats(b, admin)
						r := runFleet(c)
						after := commandStats(b, admin)
						srv.Close()
						var cmds int64
						for k, v := range after {
							if k != "info" {
								cmds += v - before[k]
							}
						}
						sent := float64(r.attempts)
						b.ReportMetric(r.goodput, "goodput")
						b.ReportMetric(r.throttleRate(), "429/attempt")
						b.ReportMetric(float64(r.ok), "ok")
						if shared && sent > 0 {
							b.ReportMetric(float64(cnt.calls.Load())/sent, "roundtrips/req")
							b.ReportMetric(float64(cmds)/sent, "rediscmds/req")
							b.ReportMetric(float64(cnt.nanos.Load())/float64(cnt.calls.Load())/1e3, "µs/roundtrip")
							b.ReportMetric(float64(r.storeErrors()), "storeerrors")
						}
						b.Log(name, r)
					}
				})
			}
		}
	}
}
