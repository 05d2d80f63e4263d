package llmhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmhttp/llmhttp"
)

// fakeAPI answers each request with the next of replies (status, headers as
// "Key: value" pairs, body), then 200 OK for ever: a stand-in for the
// network, so that the examples run without one.
func fakeAPI(replies ...fakeReply) (http.RoundTripper, *atomic.Int32) {
	var n atomic.Int32
	return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		r := fakeReply{status: http.StatusOK, body: `{"type":"message","content":[{"type":"text","text":"Hello!"}]}`}
		if i := int(n.Add(1)) - 1; i < len(replies) {
			r = replies[i]
		}
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(r.header); i += 2 {
			h.Set(r.header[i], r.header[i+1])
		}
		return &http.Response{
			StatusCode: r.status, Status: fmt.Sprintf("%d %s", r.status, http.StatusText(r.status)),
			Header: h, Body: io.NopCloser(strings.NewReader(r.body)), ContentLength: int64(len(r.body)), Request: req,
		}, nil
	}), &n
}

type fakeReply struct {
	status int
	header []string
	body   string
}

func newMessage(ctx context.Context, model string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://api.anthropic.com/v1/messages",
		strings.NewReader(`{"model":"`+model+`","max_tokens":256,"messages":[{"role":"user","content":"Hi"}]}`))
	req.Header.Set("X-Api-Key", "sk-ant-example")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	return req
}

// New is the whole chain with its defaults. Here the API is overloaded on
// the first attempt and asks for a 20 ms pause: llmhttp waits as told and
// tries again, and the caller sees only the success.
func ExampleNew() {
	base, sent := fakeAPI(fakeReply{
		status: 529,
		header: []string{"Retry-After-Ms", "20"},
		body:   `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
	})
	client := &http.Client{Transport: llmhttp.New(base)} // llmhttp.New(nil) sends through http.DefaultTransport

	resp, err := client.Do(newMessage(context.Background(), "claude-sonnet-4-5"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status, "after", sent.Load(), "attempts")
	// Output: 200 OK after 2 attempts
}

// Chain composes middlewares, llmhttp's and others, the first outermost.
// A logger above Retry sees each call once; one below it sees every
// attempt.
func ExampleChain() {
	base, _ := fakeAPI(fakeReply{status: http.StatusServiceUnavailable, body: `{"error":{"message":"busy"}}`})
	logger := func(name string) llmhttp.Middleware {
		return func(next http.RoundTripper) http.RoundTripper {
			return llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
				resp, err := next.RoundTrip(req)
				if err == nil {
					fmt.Println(name, resp.StatusCode)
				}
				return resp, err
			})
		}
	}
	client := &http.Client{Transport: llmhttp.Chain(base,
		logger("call"),
		llmhttp.Retry(llmhttp.RetryPolicy{InitialInterval: 10 * time.Millisecond}),
		logger("attempt"),
	)}

	resp, err := client.Do(newMessage(context.Background(), "claude-sonnet-4-5"))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	// Output:
	// attempt 503
	// attempt 200
	// call 200
}

// Retry on its own, with a hook that reports each retry and exact waits
// (the Jitter that returns its argument turns randomisation off).
func ExampleRetry() {
	base, _ := fakeAPI(
		fakeReply{status: 429, header: []string{"Retry-After-Ms", "30"}, body: `{"error":{"type":"rate_limit_error"}}`},
		fakeReply{status: 500, body: `{"error":{"type":"api_error"}}`},
	)
	retry := llmhttp.Retry(llmhttp.RetryPolicy{
		MaxAttempts:     3,
		InitialInterval: 10 * time.Millisecond,
		Jitter:          func(d time.Duration) time.Duration { return d },
		OnRetry: func(e llmhttp.RetryEvent) {
			fmt.Printf("attempt %d: %d %s, retrying in %v (server's hint: %t)\n",
				e.Attempt, e.Status, e.Class, e.Delay, e.ServerDelay)
		},
	})
	client := &http.Client{Transport: retry(base)}

	resp, err := client.Do(newMessage(context.Background(), "claude-sonnet-4-5"))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// attempt 1: 429 rate_limited, retrying in 30ms (server's hint: true)
	// attempt 2: 500 server, retrying in 10ms (server's hint: false)
	// 200
}

// A billing error looks like a rate limit (429) but must never be retried;
// Classify tells them apart from the body, which it leaves readable.
func ExampleClassify() {
	quota := &http.Response{
		StatusCode: 429,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(
			`{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`)),
		ContentLength: -1, // unknown; 0 would mean an empty body
	}
	throttle := &http.Response{
		StatusCode:    429,
		Header:        http.Header{"Content-Type": {"application/json"}, "Retry-After": {"3"}},
		Body:          io.NopCloser(strings.NewReader(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)),
		ContentLength: -1,
	}
	overloaded := &http.Response{StatusCode: 529, Header: http.Header{}, Body: http.NoBody}

	fmt.Println(llmhttp.Classify(quota, nil))
	fmt.Println(llmhttp.Classify(throttle, nil))
	fmt.Println(llmhttp.Classify(overloaded, nil))
	body, _ := io.ReadAll(quota.Body)
	fmt.Println(len(body) > 0)
	// Output:
	// quota
	// rate_limited
	// overloaded
	// true
}

// The pacer learns each partition's limits from the rate-limit headers of
// every response, 2xx and 429 alike, and paces what follows.
func ExampleNewPacer() {
	reset := time.Now().Add(40 * time.Second).UTC().Format(time.RFC3339)
	base, _ := fakeAPI(fakeReply{status: 200, header: []string{
		"Anthropic-Ratelimit-Requests-Limit", "50",
		"Anthropic-Ratelimit-Requests-Remaining", "49",
		"Anthropic-Ratelimit-Requests-Reset", reset,
		"Anthropic-Ratelimit-Input-Tokens-Limit", "30000",
		"Anthropic-Ratelimit-Input-Tokens-Remaining", "29000",
		"Anthropic-Ratelimit-Input-Tokens-Reset", reset,
	}, body: `{"type":"message","content":[],"usage":{"input_tokens":9,"output_tokens":12}}`})
	pacer := llmhttp.NewPacer(llmhttp.PacerSettings{
		MaxConcurrent: 8, // at most 8 requests in flight per partition; the others queue
	})
	client := &http.Client{Transport: pacer.Wrap(base)}

	resp, err := client.Do(newMessage(context.Background(), "claude-sonnet-4-5"))
	if err != nil {
		fmt.Println(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, st := range pacer.Stats() {
		fmt.Println(st.Partition.Model, "sent:", st.Sent)
		fmt.Println("requests:", st.Requests.Reported.Remaining, "of", st.Requests.Limit)
		fmt.Println("input tokens:", st.InputTokens.Reported.Remaining, "of", st.InputTokens.Limit)
	}
	// Output:
	// claude-sonnet-4-5 sent: 1
	// requests: 49 of 50
	// input tokens: 29000 of 30000
}

// When a request would have to wait longer than MaxWait (or past its
// context's deadline), the pacer answers it at once with a local reply: a
// 429 in the provider's error shape with X-Should-Retry: false, so that an
// SDK above neither waits nor retries. RefusalOf tells it from the
// provider's own 429.
func ExampleRefusalOf() {
	base, sent := fakeAPI()
	client := &http.Client{Transport: llmhttp.New(base, llmhttp.WithPacerSettings(llmhttp.PacerSettings{
		MaxWait: time.Second,
		// Known up front: 1 request per minute for every model.
		Limits: map[string]llmhttp.Limits{"": {Requests: llmhttp.Limit{Limit: 1}}},
	}))}

	for range 2 {
		resp, err := client.Do(newMessage(context.Background(), "claude-sonnet-4-5"))
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if r, ok := llmhttp.RefusalOf(resp); ok {
			fmt.Println(resp.StatusCode, "from llmhttp:", r.Reason, "X-Should-Retry:", resp.Header.Get("X-Should-Retry"))
		} else {
			fmt.Println(resp.StatusCode, "from the API")
		}
	}
	fmt.Println("sent:", sent.Load())
	// Output:
	// 200 from the API
	// 429 from llmhttp: wait-too-long X-Should-Retry: false
	// sent: 1
}

// For plain net/http code, WithRefusalErrors turns local replies into
// errors that errors.Is recognises, through the *url.Error of http.Client.
func ExampleWithRefusalErrors() {
	base, _ := fakeAPI()
	client := &http.Client{Transport: llmhttp.New(base, llmhttp.WithRefusalErrors(),
		llmhttp.WithPacerSettings(llmhttp.PacerSettings{
			Limits: map[string]llmhttp.Limits{"": {Requests: llmhttp.Limit{Limit: 1}}},
		}))}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 2 {
		resp, err := client.Do(newMessage(ctx, "claude-sonnet-4-5"))
		switch {
		case errors.Is(err, llmhttp.ErrWaitTooLong):
			fmt.Println("refused: the next slot is after the deadline")
		case err != nil:
			fmt.Println(err)
		default:
			resp.Body.Close()
			fmt.Println(resp.StatusCode)
		}
	}
	// Output:
	// 200
	// refused: the next slot is after the deadline
}

// Requests waiting in the pacer's queue go in order of priority, then
// arrival: an interactive request overtakes a batch.
func ExampleWithPriority() {
	ctx := llmhttp.WithPriority(context.Background(), llmhttp.PriorityHigh)
	req := newMessage(ctx, "claude-sonnet-4-5")
	fmt.Println(llmhttp.PriorityOf(req.Context()))
	// Output: high
}
