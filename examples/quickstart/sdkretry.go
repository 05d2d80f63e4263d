package main

import (
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/llmhttp/llmhttp"
)

// sdkRetries wraps do with the retry loop the official Go SDKs run by
// default, as anthropic-sdk-go v1.84.0 writes it
// (internal/requestconfig/requestconfig.go: shouldRetry, retryDelay;
// openai-go's is the same but for a 2-minute cap on Retry-After):
//
//   - 2 retries (3 attempts);
//   - retried: a connection error, 408, 409, 429 and every status ≥ 500,
//     unless x-should-retry says otherwise;
//   - the wait: Retry-After-Ms, else Retry-After (seconds or a date), with
//     no cap; without either, 0.5 s × 2ⁿ capped at 8 s, minus up to 25 %
//     jitter;
//   - the responses it gives up on are returned as they came.
//
// It is here so that the quickstart compares llmhttp with what the SDKs do
// on their own, not with a straw man.
func sdkRetries(do doer) doer {
	const maxRetries = 2
	return func(req *http.Request) (*http.Response, error) {
		for retry := 0; ; retry++ {
			attempt := req
			if retry > 0 {
				attempt = req.Clone(req.Context())
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				attempt.Body = body
			}
			resp, err := do(attempt)
			if retry == maxRetries || !sdkShouldRetry(resp) {
				return resp, err
			}
			delay := sdkRetryDelay(resp, retry)
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return nil, req.Context().Err()
			}
		}
	}
}

func sdkShouldRetry(resp *http.Response) bool {
	if resp == nil {
		return true // a connection error
	}
	if retry, set := llmhttp.ParseShouldRetry(resp.Header); set {
		return retry
	}
	s := resp.StatusCode
	return s == http.StatusRequestTimeout || s == http.StatusConflict ||
		s == http.StatusTooManyRequests || s >= http.StatusInternalServerError
}

func sdkRetryDelay(resp *http.Response, retry int) time.Duration {
	if resp != nil {
		if d, ok := llmhttp.ParseRetryAfter(resp.Header, time.Now()); ok {
			return d
		}
	}
	d := min(time.Duration(0.5*float64(time.Second)*math.Pow(2, float64(retry))), 8*time.Second)
	return d - time.Duration(rand.Int64N(int64(d/4)))
}
