package llmhttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/llmhttp/llmhttp"
)

// Two features with their own budgets: the PR bot may spend 2,000 tokens a
// day and is refused beyond; inline assist keeps working on a smaller
// model and shorter answers once its 1,000 tokens are spent. Requests name
// their feature on their context.
func ExampleBudgets() {
	budgets := llmhttp.NewBudgets(llmhttp.BudgetSettings{
		Budgets: map[string]llmhttp.Budget{
			"pr-bot": {Tokens: 2000, Window: 24 * time.Hour, Slots: 1},
			"assist": {Tokens: 1000, Window: 24 * time.Hour, Slots: 1,
				Policy:  llmhttp.BudgetDegrade,
				Degrade: llmhttp.Degrade{Model: "claude-haiku-4-5", MaxTokens: 64}},
		},
		OnThreshold: func(e llmhttp.ThresholdEvent) {
			fmt.Printf("alert: %s at %.0f%%\n", e.Budget, 100*e.Threshold)
		},
	})
	// A provider whose every answer used 400 input and 200 output tokens.
	provider := llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		body, _ := io.ReadAll(req.Body)
		req.Body.Close()
		model := strings.Split(strings.SplitN(string(body), `"model":"`, 2)[1], `"`)[0]
		return &http.Response{
			StatusCode: 200,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"type":"message","model":"` + model +
				`","usage":{"input_tokens":400,"output_tokens":200}}`)),
			Request: req,
		}, nil
	})
	client := &http.Client{Transport: budgets.Wrap(provider)}

	ask := func(feature string) {
		ctx := llmhttp.WithBudget(context.Background(), feature)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.anthropic.com/v1/messages",
			strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":200,"messages":[{"role":"user","content":"`+
				strings.Repeat("word ", 320)+`"}]}`))
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if r, ok := llmhttp.RefusalOf(resp); ok {
			fmt.Printf("%s: %d %s, retry when the day's window resets: %v\n", feature, resp.StatusCode, r.Reason, r.RetryAfter > 0)
			return
		}
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%s: %d %s", feature, resp.StatusCode, resp.Header.Get("Llmhttp-Degraded"))))
	}
	for range 4 {
		ask("pr-bot")
	}
	for range 2 {
		ask("assist")
	}
	s, _ := budgets.Status(context.Background(), "pr-bot", "")
	fmt.Println("pr-bot used", s.Used.Tokens(), "of", s.Limit.Tokens, "tokens")
	// Output:
	// pr-bot: 200
	// pr-bot: 200
	// alert: pr-bot at 70%
	// alert: pr-bot at 90%
	// pr-bot: 200
	// pr-bot: 429 budget-exhausted, retry when the day's window resets: true
	// assist: 200
	// alert: assist at 70%
	// alert: assist at 90%
	// assist: 200 model=claude-haiku-4-5, max_tokens=64
	// pr-bot used 1800 of 2000 tokens
}
