// Package llmhttp makes LLM API traffic survive rate limits. It is an
// [http.RoundTripper] middleware chain that any HTTP-based Claude or
// OpenAI-compatible client uses as its transport: the official SDKs through
// option.WithHTTPClient, go-openai, langchaingo, or a plain [http.Client].
//
//	client := &http.Client{Transport: llmhttp.New(nil)} // nil: http.DefaultTransport
//
// or, with the official SDKs,
//
//	anthropic.NewClient(option.WithHTTPClient(client), option.WithMaxRetries(0))
//
// It paces requests from the provider's own rate-limit headers, per API key
// and model, in requests and in tokens; retries only what is worth retrying,
// waiting as long as the server asks; breaks the circuit on outages; and
// answers locally when waiting is pointless. A [Transport] is safe for
// concurrent use by multiple goroutines and should be shared, like
// [http.Transport]: its pacer and breaker learn from every response. llmhttp
// starts no goroutines of its own and needs no Close.
//
// # Composition
//
// [New] builds the recommended chain, outermost first:
//
//	Retry    owns attempts: classify → decide → wait → replay the body → try again
//	Breaker  per host+model(+lane): fails fast on outages; never trips on throttles
//	Pacer    per credential+model(+lane): gate, request and token buckets, concurrency, queue
//	base     http.DefaultTransport when nil; or otelhttp, a logging transport, …
//
// Retry is outermost so that every attempt is paced and counted by the
// breaker; the breaker sits outside the pacer so that an open circuit
// answers without spending pacing tokens; the pacer is innermost so that it
// sees every raw response's rate-limit headers, 429s included. Options
// change each layer's settings ([WithRetryPolicy], [WithPacerSettings],
// [WithBreakerSettings]), share one between transports ([WithPacer],
// [WithBreaker]) or leave it out ([WithoutRetry], [WithoutPacing],
// [WithoutBreaker]). Every settings struct's zero value means its
// documented defaults.
//
// [Chain] composes any [Middleware]s, these or others, in the order given
// (the first is outermost), and forwards CloseIdleConnections through every
// layer. Each layer works alone: [Retry], [Breaker.Wrap], [Pacer.Wrap].
// Other transports stack on either side; OpenTelemetry's otelhttp goes
// inside Retry, so that each attempt gets its own span:
//
//	llmhttp.New(otelhttp.NewTransport(base))
//
// # Classification
//
// [Classify] tells what an attempt's outcome means the way the providers
// mean it ([Class]): a throttle (429), a ramp-up slow_down, an overload
// (529, 503 overloaded), a billing or quota error that must never be retried
// (insufficient_quota, a spend cap — a 429 too), a request too large for the
// limits, a server error, a timeout, a network error, an auth or client
// error, or the caller's own cancellation. It reads the status, the headers
// and at most 64 KiB of an error body, which it puts back for the caller.
// Every layer uses the same [Classifier], so "failure" means the same to the
// retrier and the breaker; wrap [Classify] to teach it a gateway's own
// signals.
//
// # Retries
//
// [Retry] sends a request again when a later attempt may succeed: throttles,
// overloads, server errors, timeouts and network errors, a 409 once, and
// whatever the server marks x-should-retry: true; never a quota, auth, client
// or too-large error, and never a request whose body cannot be replayed
// (GetBody unset). The server's hint (retry-after-ms, retry-after, the IETF
// RateLimit field, an exhausted bucket's reset) is a floor, with a small
// upward jitter; without one the wait is an exponential backoff with jitter.
// A hint longer than [RetryPolicy.MaxRetryAfter] (60 s), or a wait that
// would end after the request's deadline, ends retrying at once. The final
// response is returned unaltered — plus X-Should-Retry: false when llmhttp
// gave up on it — so that an SDK decodes the provider's own error, and every
// discarded attempt is drained and closed. A [RetryBudget] per partition
// stops retry storms during outages.
//
// # Pacing
//
// A [Pacer] keeps, per [Partition] (scheme+host, a fingerprint of the API
// key, model, and lane: Anthropic's fast mode draws on token limits of its
// own, [LaneFast]), token buckets for requests, input, output and combined
// tokens like the provider's own, learned from the *-limit and *-reset
// headers and resynchronised from *-remaining on every response. Each
// request is charged an estimate before it is sent ([Estimator]; its text's
// characters / 4 by default) and the estimate is corrected from the usage
// the responses report.
// A 429 closes the partition's gate until the server's time, so that every
// caller waits behind it instead of discovering the 429 on its own, and the
// waiters are released one by one. slow_down and overload answers lower the
// sending rate, which climbs back with time. An optional concurrency cap
// queues requests by [Priority] ([WithPriority]), then arrival. A request
// whose predicted wait exceeds its context deadline or
// [PacerSettings.MaxWait] is answered at once with a local reply. Before the
// first response the pacer knows no limits and lets traffic through, unless
// [PacerSettings.Limits] gives them up front.
//
// # Circuit breaking
//
// A [Breaker] keeps one circuit per host and model: ten failures in a row,
// or half of at least twenty outcomes in thirty seconds, open it. Failures
// are network errors, overloads, server errors and timeouts; throttles,
// quota, client errors and cancellations are neither failures nor successes,
// because a rate limit is not an outage. While a circuit is open its requests
// get a local 503 at once; after the open period (or the server's longer
// Retry-After) one probe tests the endpoint while the others wait for its
// outcome. The retry layer waits out an open circuit's time to half-open when
// it fits the request's deadline.
//
// # Local replies
//
// When llmhttp refuses a request itself (circuit open, a wait longer than the
// deadline or MaxWait, a latched quota), it does not return a Go error, which
// both official SDKs would retry three times. It answers the way Envoy
// answers locally: a synthesised response with X-Should-Retry: false,
// Retry-After where known, Llmhttp-Refusal naming the reason, and a JSON
// error body in the provider's shape, which the SDKs decode as their own API
// error and do not retry. [RefusalOf] tells a local reply from the
// provider's and gives its [Refusal]; [WithRefusalErrors] returns the
// *Refusal as an error instead, for plain net/http callers, matched by
// errors.Is against [ErrCircuitOpen], [ErrWaitTooLong], [ErrQuotaExhausted],
// [ErrBudgetExhausted], [ErrShed] and [ErrTooLarge].
//
// # Budgets and load shedding
//
// Rate limits protect the provider; budgets protect the wallet. A
// [BudgetSettings] (option [WithBudgetSettings]) names budgets of requests
// and tokens per window — "pr-bot: 10M tokens a day", "50k tokens per user
// per hour" ([Budget.PerTenant]) — chosen per request with [WithBudget] and
// [WithTenant] on its context, or by a function of the request. The budget
// layer sits in front of Retry, so each request is admitted, rewritten and
// charged once: its estimate at admission, then the usage its response
// reports ([TapUsage] reads it from JSON and server-sent events as the caller
// reads the body, buffering nothing). [BudgetSettings.OnThreshold] fires once
// per window at 70 % and 90 % by default. A spent budget refuses (a local
// reply, budget-exhausted, Retry-After when it fits again), degrades (the
// body's model and max_tokens rewritten in place, every other byte the same,
// Llmhttp-Degraded on the response) or delays low-priority work within its
// deadline, per [Budget.Policy]. Under pressure, requests are shed lowest
// [Priority] first ([WithPriority]); critical ones never.
//
// # Observability
//
// [WithObserver] takes an [Observer], a struct of hooks in the style of
// net/http/httptrace — attempts with their class and resend count, waits with
// their cause, gate and circuit changes, refusals, usage, budget thresholds —
// called outside every lock; unset hooks cost nothing. Events name the
// [Partition] (host, key fingerprint, model), never the key or the prompt.
// [WithLogger] logs the same through log/slog. [Transport.Stats] snapshots
// every partition. The nested modules github.com/llmhttp/llmhttp/otel and
// github.com/llmhttp/llmhttp/prom turn the events into OpenTelemetry and
// Prometheus metrics.
//
// # Using with LLM SDKs
//
// The official SDKs retry on their own, twice by default, with no cap on
// Retry-After in anthropic-sdk-go. Set option.WithMaxRetries(0) so that
// llmhttp alone decides; every final answer llmhttp gives up on carries
// X-Should-Retry: false, which both SDKs honour, so the two loops do not
// multiply throttled attempts even when it is forgotten. [RetryPolicy.OnSDKRetry]
// reports requests an SDK above is retrying anyway.
//
// Passing your own client with option.WithHTTPClient drops the 10-minute
// ResponseHeaderTimeout of the SDKs' default client; set it again on the
// transport beneath llmhttp:
//
//	base := http.DefaultTransport.(*http.Transport).Clone()
//	base.ResponseHeaderTimeout = 10 * time.Minute
//	hc := &http.Client{Transport: llmhttp.New(base)}
//
// go-openai (ClientConfig.HTTPClient) and langchaingo (WithHTTPClient) have
// no retry loop to turn off. The repository's examples module runs each of
// them against llmhttptest, the package's fake rate-limited API.
//
// # Streaming
//
// Streamed (server-sent events) requests go through the same chain. Retries
// happen only before the response head: once a 2xx is handed up, the body is
// the caller's, and an error event or a dropped connection inside the stream
// is never retried. The breaker counts the head's outcome, and an error
// event later in the stream as a further failure once it is read. The pacer counts a
// stream in flight (against MaxConcurrent) until its body is read to the end
// or closed, and learns from the usage it reports; always close the body.
package llmhttp
