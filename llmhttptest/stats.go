package llmhttptest

import (
	"maps"
	"math"
)

// Stats are the handler's counters, as returned by [Handler.Stats].
type Stats struct {
	// Requests is every request received, on any path.
	Requests int64
	// ByStatus counts the responses sent, by HTTP status. A streamed
	// response counts as its 200 head, whatever happens to the stream.
	ByStatus map[int]int64
	// Resets counts connections dropped by a Reset or StreamCut fault.
	Resets int64
	// StreamErrors counts streams ended by a StreamError fault.
	StreamErrors int64
	// Canceled counts requests whose client went away (context canceled)
	// before the response was complete.
	Canceled int64
	// Partitions are the counters per provider, credential and model, for
	// the Messages and Chat Completions requests that passed authentication
	// and validation.
	Partitions map[Key]PartitionStats
}

// Key names a rate-limit partition: the server limits each credential and
// model separately, and keeps the two dialects apart.
type Key struct {
	Provider Provider
	// Credential is the [Fingerprint] of the request's credential.
	Credential string
	Model      string
}

// PartitionStats are the counters of one [Key].
type PartitionStats struct {
	// Requests counts the requests of the partition.
	Requests int64
	// ByStatus counts its responses by HTTP status.
	ByStatus map[int]int64
	// Resets, StreamErrors and Canceled are as in [Stats].
	Resets, StreamErrors, Canceled int64
	// InputTokens is the input tokens charged: those of every admitted
	// request.
	InputTokens int64
	// OutputTokens is the output tokens charged: those generated (reserved
	// tokens that were refunded do not count).
	OutputTokens int64
}

// Stats returns a snapshot of the handler's counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.ByStatus = maps.Clone(h.stats.ByStatus)
	s.Partitions = make(map[Key]PartitionStats, len(h.parts))
	for k, p := range h.parts {
		ps := p.stats
		ps.ByStatus = maps.Clone(p.stats.ByStatus)
		s.Partitions[Key{Provider: k.provider, Credential: k.credential, Model: k.model}] = ps
	}
	return s
}

// RequestSize is one kind of request in a [Workload].
type RequestSize struct {
	// InputTokens is the request's input, as the server counts it (see
	// [Tokens]; count_tokens returns it).
	InputTokens int64
	// OutputTokens is what the request generates (not its max_tokens).
	OutputTokens int64
	// Weight is the kind's share of the requests. Default 0 means 1; a
	// negative weight leaves the kind out.
	Weight float64
}

// Workload is a steady mix of requests sent with one credential to one model.
type Workload struct {
	// Provider is the endpoint the requests go to: Anthropic or OpenAI.
	Provider Provider
	// Model picks the limits (Config.Models, else the provider's).
	Model string
	// Mix are the kinds of request and their shares.
	Mix []RequestSize
}

// Capacity returns the theoretical capacity of the limits for w: the steady
// number of requests per second (of real time, or fake time under synctest)
// that one credential can have admitted for ever, with Window-long minutes.
// It is the physical limit a client-side pacer can approach, never exceed:
//
//	rate = min(RPM, ITPM / avg input, OTPM / avg output) / Window   (Anthropic)
//	rate = min(RPM, TPM / (avg input + avg output)) / Window          (OpenAI)
//
// where the averages are weighted by Weight, and a limit that is off (or
// whose average is 0) drops out of the minimum; with no limit left the
// result is +Inf. The long-run rate does not depend on the charging rule: a
// reservation of max_tokens is refunded down to the output generated, so in
// the long run every request costs its input and its output. The rule
// changes only the bursts (and which requests fit at all). The initial
// burst — every bucket starts full — is not included: over a run of T
// seconds at most Capacity×T plus one bucket's worth can be admitted.
// A provider other than Anthropic or OpenAI gives 0.
func (h *Handler) Capacity(w Workload) float64 {
	if w.Provider != Anthropic && w.Provider != OpenAI {
		return 0
	}
	l := h.cfg.limitsFor(w.Provider, w.Model)
	var sw, sin, sout float64
	for _, r := range w.Mix {
		wt := r.Weight
		if wt == 0 {
			wt = 1
		}
		if wt < 0 {
			continue
		}
		sw += wt
		sin += wt * float64(r.InputTokens)
		sout += wt * float64(r.OutputTokens)
	}
	var avgIn, avgOut float64
	if sw > 0 {
		avgIn, avgOut = sin/sw, sout/sw
	}
	perWindow := math.Inf(1)
	bound := func(limit int64, per float64) {
		if limit > 0 && per > 0 {
			perWindow = min(perWindow, float64(limit)/per)
		}
	}
	bound(l.RPM, 1)
	if w.Provider == Anthropic {
		bound(l.ITPM, avgIn)
		bound(l.OTPM, avgOut)
	} else {
		bound(l.TPM, avgIn+avgOut)
	}
	return perWindow / h.window.Seconds()
}
