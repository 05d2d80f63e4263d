package llmhttp

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PartitionStats is a snapshot of one partition of a [Transport], as
// returned by [Transport.Stats]: the pacer's view of its limits and queue,
// its circuit's state, and what the Transport counted for it.
type PartitionStats struct {
	// Partition is the partition ([DefaultPartition]'s).
	Partition Partition

	// Pacer is the pacer's state of the partition: per dimension
	// (requests, tokens, input and output tokens) the limit, what is left
	// and the server's last report; the requests in flight and queued; the
	// gate and the quota latch. Zero when the Transport has no pacer, or
	// its pacer has not seen the partition (or names partitions its own
	// way).
	Pacer PacerStats
	// GateClosed reports that the partition's gate is closed: its requests
	// wait until Pacer.GateUntil.
	GateClosed bool
	// Breaker is the state of the partition's circuit (its host and
	// model); StateClosed when the Transport has no breaker.
	Breaker State

	// Requests counts the requests the Transport carried.
	Requests int64
	// Attempts counts the attempts sent to the server, retries included
	// (locally refused ones are not).
	Attempts int64
	// Retries counts the retries the retry layer made.
	Retries int64
	// RateLimited counts the attempts the server answered with 429.
	RateLimited int64
	// ServerErrors counts the attempts the server answered with a 5xx
	// status (529 included).
	ServerErrors int64
	// Refusals counts llmhttp's local replies (see [Refusal]).
	Refusals int64
	// InputTokens and OutputTokens count the tokens the successful
	// responses' bodies reported, once read to their end or closed. They
	// are counted when the Transport reads usage: when an observer has
	// OnUsage (the otel and prom adapters do) or a budget layer is in the
	// chain; otherwise they stay 0.
	InputTokens, OutputTokens int64
}

// partCounters are the counters of one partition.
type partCounters struct {
	requests, attempts, retries, rateLimited, serverErrors, refusals atomic.Int64
	inputTokens, outputTokens                                        atomic.Int64
}

// attempt counts an attempt the server answered with status (0 for none).
func (c *partCounters) attempt(status int) {
	c.attempts.Add(1)
	switch {
	case status == http.StatusTooManyRequests:
		c.rateLimited.Add(1)
	case status >= 500 && status <= 599:
		c.serverErrors.Add(1)
	}
}

// statsTable holds the counters of a Transport's partitions. Entries are
// never removed: there is one per partition the program talks to.
type statsTable struct {
	parts sync.Map // Partition → *partCounters
}

// of returns the counters of info's partition, creating them on first use.
func (s *statsTable) of(info *requestInfo) *partCounters {
	r := info.ref
	if cr := r.counters.Load(); cr != nil && cr.table == s {
		return cr.c
	}
	c := s.get(info.partition)
	r.counters.Store(&countersRef{table: s, c: c})
	return c
}

// get returns p's counters, creating them on first use.
func (s *statsTable) get(p Partition) *partCounters {
	if v, ok := s.parts.Load(p); ok {
		return v.(*partCounters)
	}
	v, _ := s.parts.LoadOrStore(p, new(partCounters))
	return v.(*partCounters)
}

// Stats returns a snapshot of every partition the Transport has carried a
// request for (and every partition its pacer knows), sorted by partition.
// Each partition's fields are read one by one, not atomically together.
func (t *Transport) Stats() []PartitionStats {
	now := time.Now()
	byPart := make(map[Partition]*PartitionStats)
	get := func(p Partition) *PartitionStats {
		s := byPart[p]
		if s == nil {
			s = &PartitionStats{Partition: p}
			byPart[p] = s
		}
		return s
	}
	t.stats.parts.Range(func(k, v any) bool {
		c := v.(*partCounters)
		s := get(k.(Partition))
		s.Requests = c.requests.Load()
		s.Attempts = c.attempts.Load()
		s.Retries = c.retries.Load()
		s.RateLimited = c.rateLimited.Load()
		s.ServerErrors = c.serverErrors.Load()
		s.Refusals = c.refusals.Load()
		s.InputTokens = c.inputTokens.Load()
		s.OutputTokens = c.outputTokens.Load()
		return true
	})
	if t.pacer != nil {
		for _, ps := range t.pacer.Stats() {
			s := get(ps.Partition)
			s.Pacer = ps
			s.GateClosed = ps.GateUntil.After(now)
		}
	}
	if t.breaker != nil {
		states := t.breaker.partitionStates()
		for p, s := range byPart {
			s.Breaker = states[Partition{Host: p.Host, Model: p.Model, Lane: p.Lane}]
		}
	}
	out := make([]PartitionStats, 0, len(byPart))
	for _, s := range byPart {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b PartitionStats) int {
		return strings.Compare(a.Partition.String(), b.Partition.String())
	})
	return out
}
