package llmhttp

import "time"

// pacerStore is the part of a partition's state that pacers in several
// processes could share: the buckets and the gate. Everything else — the
// queue, the requests in flight, the slow-down cap, what was learned about
// the requests — is local to one pacer.
//
// localStore keeps it in memory. A shared store (design.md §8: Redis, GCRA
// plus reserve/refund/force-debit scripts and a "closed until" key) would
// implement the same calls against a local mirror refreshed outside the
// partition's lock: every method is called with that lock held, takes now
// and must not block.
type pacerStore interface {
	// wait returns how long from now until c fits every known bucket (and
	// the server's bucket, as far as this client can tell, holds need),
	// and the dimension that waits longest (pdCount when none waits). With
	// clamp, each cost is clamped to its bucket's capacity first.
	wait(now time.Time, c, need pcost, clamp bool) (time.Duration, pdim)
	// take charges c to the buckets (clamped to their capacities).
	take(now time.Time, c pcost)
	// give refunds c.
	give(now time.Time, c pcost)
	// sync resynchronises the buckets from a response's limits; uncounted
	// is the cost of requests in flight that the report cannot include;
	// round the granularity of each dimension's remaining.
	sync(now time.Time, l Limits, uncounted, round pcost)
	// cut lowers this client's share of dimension d's refill after a 429
	// the pacer did not expect (see pbucket.share).
	cut(now time.Time, d pdim)
	// configure sets limits known up front (no level is implied unless a
	// Remaining is given).
	configure(now time.Time, l Limits)
	// gateUntil returns when the gate opens; it is open when that is not
	// after now.
	gateUntil() time.Time
	// closeGate closes the gate until t; it never shortens a closed gate
	// and reports whether it changed anything.
	closeGate(t time.Time) bool
	// bucket returns dimension d's bucket, for inspection.
	bucket(d pdim) *pbucket
}

// roundingOf returns the granularity provider p rounds dimension d's
// remaining to: Anthropic rounds token counts to the nearest thousand;
// counts are otherwise exact.
func roundingOf(p Provider, d pdim) float64 {
	if p == ProviderAnthropic && d != pdRequests && d != pdRequestsPerDay {
		return 1000
	}
	return 1
}

// localStore is the in-process pacerStore.
type localStore struct {
	buckets [pdCount]pbucket
	until   time.Time
}

var _ pacerStore = (*localStore)(nil)

func (s *localStore) wait(now time.Time, c, need pcost, clamp bool) (time.Duration, pdim) {
	var longest time.Duration
	dim := pdCount
	for d := range s.buckets {
		b := &s.buckets[d]
		if !b.known() || (c[d] <= 0 && need[d] <= 0) {
			continue
		}
		var w time.Duration
		if clamp {
			w = b.wait(now, c[d])
		} else {
			b.advance(now)
			w = b.waitRaw(c[d])
		}
		if need[d] > c[d] {
			w = max(w, b.shadowWait(now, need[d]))
		}
		if w > longest {
			longest, dim = w, pdim(d)
		}
	}
	return longest, dim
}

func (s *localStore) take(now time.Time, c pcost) {
	for d := range s.buckets {
		s.buckets[d].take(now, c[d])
	}
}

func (s *localStore) give(now time.Time, c pcost) {
	for d := range s.buckets {
		s.buckets[d].give(now, c[d])
	}
}

func (s *localStore) sync(now time.Time, l Limits, uncounted, round pcost) {
	for d := range s.buckets {
		if rep := limitOf(&l, pdim(d)); rep.Known() {
			s.buckets[d].sync(now, rep, uncounted[d], round[d])
		}
	}
}

func (s *localStore) cut(now time.Time, d pdim) { s.buckets[d].cut(now) }

func (s *localStore) configure(now time.Time, l Limits) {
	for d := range s.buckets {
		rep := limitOf(&l, pdim(d))
		b := &s.buckets[d]
		b.configure(now, rep.Limit, rep.Window, true)
		if b.known() && rep.HasRemaining {
			b.level = min(float64(max(rep.Remaining, 0)), b.capacity)
		}
	}
}

func (s *localStore) gateUntil() time.Time { return s.until }

func (s *localStore) closeGate(t time.Time) bool {
	if !t.After(s.until) {
		return false
	}
	s.until = t
	return true
}

func (s *localStore) bucket(d pdim) *pbucket { return &s.buckets[d] }
