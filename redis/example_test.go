package redis_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
	llmredis "github.com/llmhttp/llmhttp/redis"
)

// Two replicas of a service share one API key's pacing and budgets through
// Redis. (Here Redis is a miniredis and the provider llmhttptest, both in
// memory; in production, a goredis.Client on your Redis.)
func ExampleNewStore() {
	m := miniredis.NewMiniRedis()
	defer m.Close()
	provider := llmhttptest.NewHandler(llmhttptest.Config{})

	replica := func() *http.Client {
		rdb := goredis.NewClient(&goredis.Options{
			Addr:                     "127.0.0.1:6379",
			Dialer:                   func(context.Context, string, string) (net.Conn, error) { return m.Dial() },
			ContextTimeoutEnabled:    true, // lets Settings.Timeout bound every call
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
		store := llmredis.NewStore(rdb, llmredis.Settings{})
		return &http.Client{Transport: llmhttp.New(provider.Transport(),
			llmhttp.WithPacerSettings(llmhttp.PacerSettings{Store: store.Pacer()}),
			llmhttp.WithBudgetSettings(llmhttp.BudgetSettings{
				Budgets: map[string]llmhttp.Budget{"daily": {Tokens: 1_000_000, All: true}},
				Store:   store.Budgets(),
			}),
		)}
	}
	for _, client := range []*http.Client{replica(), replica()} {
		req, _ := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages",
			strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}`))
		req.Header.Set("X-Api-Key", "sk-ant-example")
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	keys := m.Keys()
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Println(k)
	}
	// Output:
	// 200 OK
	// 200 OK
	// llmhttp:budget:daily
	// rate:{llmhttp:pacer:https://api.anthropic.com|ee6827de75b65095|claude-sonnet-4-5}:input_tokens
	// rate:{llmhttp:pacer:https://api.anthropic.com|ee6827de75b65095|claude-sonnet-4-5}:output_tokens
	// rate:{llmhttp:pacer:https://api.anthropic.com|ee6827de75b65095|claude-sonnet-4-5}:requests
	// {llmhttp:pacer:https://api.anthropic.com|ee6827de75b65095|claude-sonnet-4-5}:limits
}
