// Package llmhttptest provides a rate-limited fake of the Anthropic Messages
// and OpenAI Chat Completions APIs for tests and benchmarks, in the style of
// [net/http/httptest].
//
// It answers with the providers' real request and response shapes (JSON and
// server-sent events), limits each credential and model with continuously
// refilling token buckets as the providers do, sends their real rate-limit
// headers, 429s with retry-after and error bodies, injects scripted faults,
// and counts what it saw, so that code which handles rate limits — llmhttp
// itself, or yours — can be tested on demand. The official Go SDKs work
// against it unchanged (option.WithBaseURL).
//
// # Serving
//
//   - [NewServer] starts a loopback HTTP server ([Server.URL], [Server.Close]).
//   - [NewHandler] gives the [Handler] alone, an [http.Handler].
//   - [NewTransport] (or [Handler.Transport]) serves requests in memory,
//     without sockets: use it inside testing/synctest bubbles, where the
//     handler's clock is the bubble's fake clock and a one-minute window
//     passes instantly.
//
// # Rate limits
//
// Limits are per credential (x-api-key, api-key or Authorization) and per
// model, per [Config.Window] (a minute by default). Anthropic endpoints
// enforce requests (RPM), input tokens (ITPM) and output tokens (OTPM);
// OpenAI endpoints requests (RPM) and combined tokens (TPM). Every bucket
// starts full and refills continuously at limit/Window, exactly (integer
// arithmetic, no drift). A request is admitted when every bucket holds what
// it needs: one request, its input tokens (characters/4, see [Tokens]) and,
// under [ChargeReserved], its max_tokens of output. Otherwise it gets a 429
// with retry-after — the whole seconds, rounded up, until it would be
// admitted — and the provider's error body; nothing is charged (see
// [Config.RejectedCost]). How output is charged is a setting ([Charge]),
// because the providers differ and Anthropic changed its rule.
//
// # Headers
//
// Anthropic responses carry request-id and
// anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-{limit,
// remaining,reset}, resets as RFC 3339 times of the full refill and token
// remainders rounded to the nearest thousand. OpenAI responses carry
// x-request-id and x-ratelimit-{limit,remaining,reset}-{requests,tokens},
// resets as Go durations ("6m0s", "12ms"). A non-streamed response's
// headers show the buckets after the request was charged in full; a streamed
// response's head shows them after admission, before its output is
// generated (under ChargeGenerated its output is not in them yet).
//
// # Faults
//
// [Fault] scripts misbehaviour — overload (529 / 503), 500s, 504s,
// connection resets, latency, quota exhaustion, slow_down, 413, forced 429s,
// a mid-stream error event, a cut stream — by time window, count and
// probability, seeded by [Config.Seed]. Put them in [Config.Faults] or add
// them with [Handler.Inject].
//
// # Counters
//
// [Handler.Stats] counts requests by status, per credential fingerprint and
// model, with the tokens charged. [Handler.Capacity] gives the theoretical
// steady request rate the limits allow for a workload: the yardstick a
// client-side pacer is measured against.
//
// # Baseline
//
// [OKTransport] answers every request at once with the same 200, with no
// limits and no state; with [ChatBody] and [SendChat] it is the bare
// baseline of a benchmark of the RoundTrippers above it.
//
// # Time
//
// Everything time-based reads the time package: there is no goroutine and
// no ticker in the handler; buckets are advanced lazily from time.Now(), and
// latencies are timers raced against the request's context. Create the
// handler inside a synctest bubble to run it on fake time.
package llmhttptest
