package llmhttp

// An Option configures [New].
type Option func(*config)

type config struct {
	retry         RetryPolicy
	noRetry       bool
	breaker       *Breaker
	breakerSet    BreakerSettings
	noBreaker     bool
	pacer         *Pacer
	pacerSet      PacerSettings
	noPacer       bool
	refusalErrors bool
}

// WithRetryPolicy sets the retry layer's policy.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *config) { c.retry = p } }

// WithoutRetry leaves the retry layer out: every request is sent once.
func WithoutRetry() Option { return func(c *config) { c.noRetry = true } }

// WithBreakerSettings builds the transport's own Breaker from s.
func WithBreakerSettings(s BreakerSettings) Option {
	return func(c *config) { c.breakerSet = s; c.breaker = nil }
}

// WithBreaker uses b, which may be shared with other transports.
func WithBreaker(b *Breaker) Option { return func(c *config) { c.breaker = b } }

// WithoutBreaker leaves the circuit breaker out.
func WithoutBreaker() Option { return func(c *config) { c.noBreaker = true } }

// WithPacerSettings builds the transport's own Pacer from s.
func WithPacerSettings(s PacerSettings) Option {
	return func(c *config) { c.pacerSet = s; c.pacer = nil }
}

// WithPacer uses p, which may be shared with other transports on the same
// credentials.
func WithPacer(p *Pacer) Option { return func(c *config) { c.pacer = p } }

// WithoutPacing leaves the pacer out.
func WithoutPacing() Option { return func(c *config) { c.noPacer = true } }

// WithRefusalErrors makes the Transport return llmhttp's own refusals as a
// [*Refusal] error (errors.Is(err, ErrCircuitOpen), …) instead of a
// synthesised response. Use it with plain net/http callers; keep the default
// (a response with X-Should-Retry: false) under the official SDKs, which
// retry every transport error.
func WithRefusalErrors() Option { return func(c *config) { c.refusalErrors = true } }
