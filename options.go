package llmhttp

import "log/slog"

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
	budgets       *Budgets
	budgetSet     *BudgetSettings
	refusalErrors bool
	observers     []*Observer
	logger        *slog.Logger
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

// WithBudgetSettings puts a budget layer built from s in front of the
// chain: Budgets → Retry → Breaker → Pacer, so that each request is
// admitted, rewritten and charged once, whatever its retries (see
// [Budgets]). When s.Shed.Queued is nil and the transport has a pacer, the
// pacer's queue depth is used. The transport's observers get the budget's
// threshold events.
func WithBudgetSettings(s BudgetSettings) Option {
	return func(c *config) { c.budgetSet = &s; c.budgets = nil }
}

// WithBudgets puts b, which may be shared with other transports, in front of
// the chain (see [WithBudgetSettings]). b keeps the hooks of its own
// settings.
func WithBudgets(b *Budgets) Option {
	return func(c *config) { c.budgets = b; c.budgetSet = nil }
}

// WithLogger makes the transport log through l (see [LogObserver]):
// retries, gate and breaker changes and refusals, with structured
// attributes and never a credential or a request body. Without it, nothing
// is logged. It composes with [WithObserver]; a nil l is ignored.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }
