package llmhttp

import "net/http"

// RetryPolicy configures the retry layer. (Skeleton: the retry issue fills it in.)
type RetryPolicy struct{}

// Retry returns the retry middleware. (Skeleton: passes through.)
func Retry(p RetryPolicy) Middleware {
	return func(next http.RoundTripper) http.RoundTripper { return next }
}
