package llmhttp

import "net/http"

// BreakerSettings configures a Breaker. (Skeleton: the breaker issue fills it in.)
type BreakerSettings struct{}

// Breaker is a set of circuit breakers. (Skeleton.)
type Breaker struct{}

// NewBreaker returns a Breaker. (Skeleton.)
func NewBreaker(s BreakerSettings) *Breaker { return &Breaker{} }

// Wrap returns next behind the breaker; b.Wrap is a Middleware. (Skeleton: passes through.)
func (b *Breaker) Wrap(next http.RoundTripper) http.RoundTripper { return next }
