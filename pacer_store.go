package llmhttp

import "time"

// roundingOf returns the granularity provider p rounds dimension d's
// remaining to: Anthropic rounds token counts to the nearest thousand;
// counts are otherwise exact.
func roundingOf(p Provider, d pdim) float64 {
	if p == ProviderAnthropic && d != pdRequests && d != pdRequestsPerDay {
		return 1000
	}
	return 1
}

// localStore is a partition's buckets and gate: the part of its state that
// pacers in several processes could share (see [PacerStore]), of which it
// is then this pacer's mirror. Everything else — the queue, the requests
// in flight, the slow-down cap, what was learned about the requests — is
// local to one pacer. Its methods are called with the partition's lock
// held, take now and never block.
type localStore struct {
	buckets [pdCount]pbucket
	until   time.Time
	// epoch is the time of the buckets' instant instantBase: the first
	// time the store was given.
	epoch time.Time
}

// at returns t as an instant of the buckets' clock.
func (s *localStore) at(t time.Time) instant {
	if s.epoch.IsZero() {
		s.epoch = t
	}
	return instantOf(s.epoch, t)
}

// wait returns how long from now until c fits every known bucket (and the
// server's bucket, as far as this client can tell, holds need), and the
// dimension that waits longest (pdCount when none waits). hold is what the
// requests in flight may hold beyond their charge, were the server
// reserving what need holds room for (see pacerPart.mayHold). With clamp,
// each cost is clamped to its bucket's capacity first.
func (s *localStore) wait(t time.Time, c, need, hold pcost, clamp, shareNeed bool) (time.Duration, pdim) {
	now := s.at(t)
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
			// Room the server may want present, though it will not charge
			// it: in its bucket as this client's charges predict it, and in
			// this client's share of it while other clients are seen, or —
			// with shareNeed — for the first reports (clients of a shared
			// key that start together would otherwise each claim the whole
			// bucket's room). In the share, the room the requests in
			// flight may hold comes on top while other clients may be
			// taking the rest: until a second report could show them, and
			// while the reports show them.
			w = max(w, b.shadowWait(now, need[d]))
			if wary := b.wary(now); wary || (shareNeed && b.reports < waryReports) {
				n := need[d]
				if wary || b.blind() {
					n += hold[d]
				}
				w = max(w, b.wait(now, n))
			}
		}
		if w > longest {
			longest, dim = w, pdim(d)
		}
	}
	return longest, dim
}

// take charges c to the buckets (clamped to their capacities).
func (s *localStore) take(t time.Time, c pcost) {
	now := s.at(t)
	for d := range s.buckets {
		s.buckets[d].take(now, c[d])
	}
}

// give refunds c.
func (s *localStore) give(t time.Time, c pcost) {
	now := s.at(t)
	for d := range s.buckets {
		s.buckets[d].give(now, c[d])
	}
}

// sync resynchronises the buckets from a response's report, and learns
// their windows from it.
func (s *localStore) sync(t time.Time, r *report) {
	now := s.at(t)
	var known [pdCount]bool
	for d, rep := range r.reps {
		if rep == nil {
			continue
		}
		b := &s.buckets[d]
		window := rep.Window
		if b.known() && rep.Exhausted() && window > b.win.prior {
			// An exhausted bucket whose reset is further than its window is
			// in debt (output charged after the fact), not a longer window.
			window = b.win.prior
		}
		b.configure(now, rep.Limit, window, false)
		known[d] = b.known()
	}
	ev := r.windowEvidence(t, s, &known)
	for d, rep := range r.reps {
		if known[d] {
			b := &s.buckets[d]
			b.learnWindow(now, rep, r.resetIn[d], ev[d], r.round[d], r.grain[d], r.lag)
			b.sync(now, rep, r.resetIn[d], r.uncounted[d], r.round[d])
		}
	}
}

// windowEvidence returns what r says of the window of each known bucket of
// s. The buckets of one report that share a prior window (every
// per-minute limit of a provider) share the server's window too: each
// learns from the evidence of every one of them, and of every pair of them
// (see pairEvidence), so a bucket that is never drained (the requests of a
// token-bound workload) learns the window its drained neighbours show.
// Evidence that contradicts the rest of the report is left out.
func (r *report) windowEvidence(now time.Time, s *localStore, known *[pdCount]bool) (ev [pdCount]winRange) {
	var done [pdCount]bool
	for d := range s.buckets {
		if !known[d] || done[d] {
			continue
		}
		prior := s.buckets[d].win.prior
		var group winRange
		for o := d; o < len(s.buckets); o++ {
			if !known[o] || s.buckets[o].win.prior != prior {
				continue
			}
			group = group.with(windowEvidence(now, r.reps[o], r.round[o], r.grain[o]+r.skew, r.lag))
			for q := o + 1; q < len(s.buckets); q++ {
				if known[q] && s.buckets[q].win.prior == prior {
					group = group.with(pairEvidence(r.reps[o], r.reps[q], r.round[o], r.round[q], max(r.grain[o], r.grain[q])))
				}
			}
		}
		for o := d; o < len(s.buckets); o++ {
			if known[o] && s.buckets[o].win.prior == prior {
				ev[o], done[o] = group, true
			}
		}
	}
	return ev
}

// report is one response's rate limits as a partition hands them to its
// store.
type report struct {
	// reps are the report's dimensions; nil where it said nothing.
	reps [pdCount]*Limit
	// uncounted is the cost of this client's requests in flight that the
	// report cannot include yet.
	uncounted pcost
	// round is the granularity of each dimension's remaining; resetIn how
	// long from now its reset is (0 when it has none), and grain the
	// resolution of that reset (see resetGrain).
	round   pcost
	resetIn [pdCount]time.Duration
	grain   [pdCount]time.Duration
	// lag bounds how long before now the server made the report; skew the
	// clock difference allowed with a server that sends absolute resets.
	lag, skew time.Duration
}

// cut lowers this client's share of dimension d's refill after a 429 the
// pacer did not expect (see pbucket.share).
func (s *localStore) cut(now time.Time, d pdim) { s.buckets[d].cut(s.at(now)) }

// configure sets limits known up front (no level is implied unless a
// Remaining is given).
func (s *localStore) configure(t time.Time, l *Limits) {
	now := s.at(t)
	for d := range s.buckets {
		rep := limitOf(l, pdim(d))
		b := &s.buckets[d]
		b.configure(now, rep.Limit, rep.Window, true)
		if b.known() && rep.HasRemaining {
			b.level = min(float64(max(rep.Remaining, 0)), b.capacity)
		}
	}
}

// gateUntil returns when the gate opens; it is open when that is not after
// now.
func (s *localStore) gateUntil() time.Time { return s.until }

// closeGate closes the gate until t; it never shortens a closed gate and
// reports whether it changed anything.
func (s *localStore) closeGate(t time.Time) bool {
	if !t.After(s.until) {
		return false
	}
	s.until = t
	return true
}

// bucket returns dimension d's bucket.
func (s *localStore) bucket(d pdim) *pbucket { return &s.buckets[d] }
