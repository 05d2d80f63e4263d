// Package llmhttp makes LLM API traffic survive rate limits. It is an
// [http.RoundTripper] middleware chain that any HTTP-based Claude or
// OpenAI-compatible client uses as its transport:
//
//	client := &http.Client{Transport: llmhttp.New(nil)}
//
// or, with the official SDKs,
//
//	anthropic.NewClient(option.WithHTTPClient(client), option.WithMaxRetries(0))
//
// # Composition
//
// [New] builds the recommended chain, outermost first:
//
//	Retry    owns attempts: classify → decide → wait → replay the body → try again
//	Breaker  per host+model: fails fast on outages; never trips on throttles
//	Pacer    per credential+model: gate, request and token buckets, concurrency, queue
//	base     http.DefaultTransport when nil; or otelhttp, a logging transport, …
//
// Retry is outermost so every attempt is paced and counted by the breaker; the
// breaker sits outside the pacer so an open circuit answers without spending
// pacing tokens; the pacer is innermost so it sees every raw response's
// rate-limit headers, 429s included. [Chain] composes any [Middleware]s,
// these or others, in the order given (the first is outermost), and forwards
// CloseIdleConnections through every layer.
//
// # Classification
//
// [Classify] tells what an outcome means the way the providers mean it: a
// throttle, a ramp-up slow_down, an overload, a billing or quota error that
// must never be retried, a server error, a network error, a client error or
// the caller's own cancellation. Every layer uses it, so "failure" means the
// same to the retrier and the breaker.
//
// # Local replies
//
// When llmhttp refuses a request itself (circuit open, a wait longer than the
// deadline, a latched quota), it answers the way Envoy answers locally: a
// synthesised response with X-Should-Retry: false, Retry-After where known,
// Llmhttp-Refusal naming the reason, and a JSON error body in the provider's
// shape, so the SDKs decode it as their own API error and do not retry it.
// [RefusalOf] gives the details; [WithRefusalErrors] returns a [*Refusal]
// error instead, for plain net/http callers.
//
// # Using with LLM SDKs
//
// The SDKs retry on their own (twice by default). Set
// option.WithMaxRetries(0) so that llmhttp alone decides; every final answer
// llmhttp gives up on carries X-Should-Retry: false, so the two loops do not
// multiply when it is forgotten.
//
// A [Transport] is safe for concurrent use by multiple goroutines and should
// be reused, like [http.Transport]. llmhttp starts no goroutines of its own.
package llmhttp
