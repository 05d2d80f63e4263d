package demo

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/llmhttp/llmhttp"
)

// Transport returns base, or when it is nil a clone of
// http.DefaultTransport with the 10-minute ResponseHeaderTimeout of the
// official SDKs' default clients: a client of your own replaces theirs, and
// its timeout with it.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base != nil {
		return base
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 10 * time.Minute
	return t
}

// Middleware adapts an llmhttp chain to the official SDKs'
// option.WithMiddleware (their option.Middleware and option.MiddlewareNext
// are aliases of these function types). The SDK calls a middleware once per
// attempt of its own, with next sending the request through its HTTP
// client; the chain is built once (its pacer and breaker keep state across
// requests) over a base that calls the next of the request at hand, carried
// in the request's context.
func Middleware(opts ...llmhttp.Option) func(*http.Request, func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	type nextKey struct{}
	chain := llmhttp.New(llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		next := req.Context().Value(nextKey{}).(func(*http.Request) (*http.Response, error))
		return next(req)
	}), opts...)
	return func(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
		return chain.RoundTrip(req.WithContext(context.WithValue(req.Context(), nextKey{}, next)))
	}
}

// NewMessagesRequest returns a POST of body to Anthropic's Messages API at
// baseURL, with key and the headers the API requires: a request as code
// without an SDK sends it.
func NewMessagesRequest(ctx context.Context, baseURL, key string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/messages", body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	return req, nil
}
