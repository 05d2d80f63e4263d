package redis_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmhttp/llmhttp"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// The latency the shared store adds to a request, against a real Redis on
// loopback: the full llmhttp chain over a canned answer (far below its
// limits, so no request waits), without a store and with one.
//
//	LLMHTTP_REDIS_ADDR=$(redis/testdata/start-redis.sh) \
//	  go test -run '^$' -bench 'BenchmarkStoreOverhead|BenchmarkStoreCall' -benchtime 2000x -cpu 1,2 ./redis

// canned answers every request at once with OpenAI's rate-limit headers and
// a usage body.
func canned() http.RoundTripper {
	return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		h := http.Header{"Content-Type": {"application/json"}}
		h.Set("X-Ratelimit-Limit-Requests", "1000000")
		h.Set("X-Ratelimit-Remaining-Requests", "999999")
		h.Set("X-Ratelimit-Reset-Requests", "1ms")
		h.Set("X-Ratelimit-Limit-Tokens", "100000000")
		h.Set("X-Ratelimit-Remaining-Tokens", "99999000")
		h.Set("X-Ratelimit-Reset-Tokens", "1ms")
		return &http.Response{StatusCode: http.StatusOK, Header: h, Request: req,
			Body: io.NopCloser(strings.NewReader(`{"usage":{"prompt_tokens":250,"completion_tokens":20,"total_tokens":270}}`))}, nil
	})
}

func BenchmarkStoreOverhead(b *testing.B) {
	addr := realAddr(b)
	body := `{"model":"gpt-4o","max_completion_tokens":64,"messages":[{"role":"user","content":"` + strings.Repeat("abc ", 250) + `"}]}`
	for _, mode := range []string{"bare", "redis"} {
		b.Run(mode, func(b *testing.B) {
			var cnt counter
			s := llmhttp.PacerSettings{}
			if mode == "redis" {
				prefix := "bench:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
				s.Store = llmredis.NewStore(realFleetClient(b, addr, &cnt), llmredis.Settings{Prefix: prefix}).Pacer()
			}
			client := &http.Client{Transport: llmhttp.New(canned(), llmhttp.WithPacerSettings(s))}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer sk-bench")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(cnt.calls.Load())/float64(b.N), "roundtrips/op")
		})
	}
}

// One call of each script, against a real Redis on loopback.
func BenchmarkStoreCall(b *testing.B) {
	rdb := realFleetClient(b, realAddr(b), nil)
	benchCalls(b, rdb)
}

// The same against miniredis in memory (no network): the scripts' cost
// in Go's Lua.
func BenchmarkStoreCallMiniredis(b *testing.B) {
	_, rdb := newMini(b)
	benchCalls(b, rdb)
}

func benchCalls(b *testing.B, rdb goredis.UniversalClient) {
	prefix := "bench:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	st := llmredis.NewStore(rdb, llmredis.Settings{Prefix: prefix, Horizon: -1})
	var lim [llmhttp.NumDimensions]llmhttp.BucketLimit
	lim[llmhttp.DimRequests] = llmhttp.BucketLimit{Capacity: 1e9, PerSecond: 1e9}
	lim[llmhttp.DimTokens] = llmhttp.BucketLimit{Capacity: 1e12, PerSecond: 1e12}
	key := llmhttp.Partition{Host: "https://api.openai.com", Credential: llmhttp.Fingerprint("sk-bench"), Model: "gpt-4o"}
	var c llmhttp.Amounts
	c[llmhttp.DimRequests], c[llmhttp.DimTokens] = 1, 314
	b.Run("ping", func(b *testing.B) { // the round trip alone
		b.ReportAllocs()
		for b.Loop() {
			if err := rdb.Ping(b.Context()).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reserve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Pacer().Reserve(b.Context(), key, llmhttp.Reservation{Now: time.Now(), Cost: c, Limits: lim}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("settle", func(b *testing.B) {
		var s llmhttp.Settlement
		s.Limits, s.Refund[llmhttp.DimTokens] = lim, 44
		s.Reported[llmhttp.DimTokens], s.ReportedKnown[llmhttp.DimTokens] = 1e12, true
		b.ReportAllocs()
		for b.Loop() {
			s.Now = time.Now()
			if err := st.Pacer().Settle(b.Context(), key, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("budget", func(b *testing.B) {
		w := llmhttp.BudgetWindow{Width: time.Minute, Slots: 60}
		usage := make([]llmhttp.BudgetCounts, w.Slots)
		b.ReportAllocs()
		for b.Loop() {
			now := time.Now()
			if err := st.Budgets().Add(b.Context(), "bench", w, now, now, llmhttp.BudgetCounts{Requests: 1, InputTokens: 250}, usage); err != nil {
				b.Fatal(err)
			}
		}
	})
}
