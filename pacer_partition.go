package llmhttp

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Partition tuning.
const (
	// maxTransit bounds the estimate of how long a request takes to reach
	// the server (see pacerPart.transit).
	maxTransit = 2 * time.Second
	// latencyAlpha is the weight of a new observation in the average time
	// to a response head.
	latencyAlpha = 0.2
	// risingRecheck bounds the wait of the head of the queue while its
	// bucket's refill is rising (a share of a contended bucket), so the
	// rise is not slept through.
	risingRecheck = time.Second
	// ambiguousAfter is how many 429s on an empty output bucket make the
	// pacer assume reservation.
	ambiguousAfter = 1
	// refuteAfter is how many consecutive reports must contradict
	// reservation before the pacer stops assuming it.
	refuteAfter = 2
	// refundsAfter is how many reports showing output given back (see
	// fullTrack) make the pacer assume reservation.
	refundsAfter = 2
)

// pacerPart is the pacer's state for one partition.
type pacerPart struct {
	p        *Pacer
	key      Partition
	provider Provider

	mu      sync.Mutex
	store   localStore
	queue   pqueue
	flights []*pflight
	slow    slowDown
	learn   learned

	// stagger spaces the releases after the gate opens: while on, no
	// request is admitted before next (except the one whose own answer
	// closed the gate, holding a ticket). It goes off once the queue is
	// empty.
	stagger struct {
		on   bool
		next time.Time
	}
	gateOpenSeen bool // the gate's opening since it last closed was reported

	quotaUntil time.Time
	quotaMsg   string

	// transit is the shortest time seen from sending a request to its
	// response head: a request sent more recently may not have reached the
	// server when the last report was made, so none of its cost is
	// believed counted. latency is the average time to a response head.
	transit    time.Duration
	hasTransit bool
	latency    float64 // seconds
	// minServe is the shortest time seen from sending a request to the end
	// of its answer: a request in flight for less (less the transit) cannot
	// have ended at the server.
	minServe time.Duration
	hasServe bool

	// refundedAt is when a settled request last refunded output (see
	// inferCharging).
	refundedAt time.Time

	sent, throttled, refused, storeErrors, declined int64

	line sharedLine // the requests the shared store declined
}

// pflight is a request in flight: sent, and its cost not yet settled.
type pflight struct {
	idx     int // in pacerPart.flights; -1 once finished
	seq     uint64
	sent    time.Time
	arrived time.Time // when the request reached the pacer
	cost    pcost
	// outUncounted reports that the output part of cost is not counted by
	// the server until generation ends (OutputGenerated, or no max_tokens).
	outUncounted bool
	// pending reports that the shared store has not reserved its cost
	// yet (declined, or not asked yet; see reserveShared): the shared
	// levels do not include it.
	pending bool
	// later is the shared settlement of a served answer that is not a
	// stream, sent when its body ends (or is closed) with the output the
	// body reports; nil without a store.
	later    *Settlement
	maxOut   int64
	estInput int64 // the input estimate before correction, for learning
	stream   bool
	body     *pacerBody // the wrapper of its response body, allocated with it
}

// flightBody allocates a flight and the wrapper of its response body
// together: one allocation instead of two, none for a request's first
// flight (see pacerMemo.flight).
type flightBody struct {
	pflight
	body pacerBody
}

func newPacerPart(p *Pacer, key Partition, provider Provider, upfront *Limits, now time.Time) *pacerPart {
	pp := &pacerPart{p: p, key: key, provider: provider, learn: newLearned(p.s.OutputCharging, provider)}
	if p.s.Store != nil {
		for d := range pp.store.buckets {
			pp.store.buckets[d].shared = true
		}
	}
	pp.store.configure(now, upfront)
	return pp
}

// memoEstimate returns the estimate remembered for info's request.
func (pp *pacerPart) memoEstimate(info *requestInfo) (Estimate, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return info.pacer.est, info.pacer.hasEst
}

// admit waits for the request's turn, from its arrival at now, and charges
// it. It returns the flight when the request may go; otherwise a refusal
// to answer with, or the context's error. It never waits while holding the
// lock.
func (pp *pacerPart) admit(req *http.Request, info *requestInfo, est Estimate, now time.Time) (*pflight, *Refusal, error) {
	ctx := req.Context()
	if ctx.Err() != nil {
		return nil, nil, context.Cause(ctx)
	}
	s := &pp.p.s
	arrived := now
	var ev gateEvents

	pp.mu.Lock()
	if !info.pacer.hasEst {
		info.pacer.est, info.pacer.hasEst = est, true
	}
	if now.Before(pp.quotaUntil) {
		r := &Refusal{Reason: ReasonQuota, RetryAfter: pp.quotaUntil.Sub(now), Message: pp.quotaMsg}
		pp.refused++
		pp.mu.Unlock()
		pp.waited(req, 0, "quota", r, nil)
		return nil, r, nil
	}
	if info.pacer.seq == 0 {
		info.pacer.seq = pp.p.seq.Add(1)
	}
	cost, need, outUnc := pp.learn.cost(est)
	if len(pp.queue) == 0 {
		if d, _, blocked := pp.delay(now, &cost, &need, info); d == 0 && !blocked {
			f := pp.take(now, &cost, outUnc, info, est, &ev)
			f.arrived = arrived
			pp.mu.Unlock()
			ev.fire(s)
			return f, nil, nil
		}
	}

	w := &pwaiter{prio: PriorityOf(ctx), seq: info.pacer.seq, cost: cost, arrived: arrived, index: -1}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	cause := "queue"
	for {
		d, blocked := time.Duration(0), true
		c := "queue"
		// What was learned while it waited (the charging rule, the average
		// output, the input ratio) changes its cost.
		cost, need, outUnc = pp.learn.cost(est)
		w.cost = cost
		isHead := w.index == 0 || (w.index < 0 && pp.wouldLead(w))
		if isHead {
			d, c, blocked = pp.delay(now, &cost, &need, info)
			if d == 0 && !blocked {
				pp.queue.remove(w)
				f := pp.take(now, &cost, outUnc, info, est, &ev)
				f.arrived = arrived
				pp.mu.Unlock()
				ev.fire(s)
				pp.waited(req, now.Sub(arrived), cause, nil, nil)
				return f, nil, nil
			}
		}
		if c != "" {
			cause = c
		}
		if pred := pp.predict(now, w, isHead, d, blocked); pred > pp.allowance(ctx, now, arrived) {
			pp.queue.remove(w)
			pp.refused++
			pp.mu.Unlock()
			r := &Refusal{
				Reason: ReasonWaitTooLong, RetryAfter: pred,
				Message: "predicted wait " + pred.Round(time.Millisecond).String() + " (" + cause + ") for " + pp.key.Model +
					" exceeds the request's deadline or the pacer's MaxWait",
			}
			pp.waited(req, now.Sub(arrived), cause, r, nil)
			return nil, r, nil
		}
		if w.index < 0 {
			w.wake = make(chan struct{}, 1)
			pp.queue.push(w)
		}
		pp.mu.Unlock()

		var tc <-chan time.Time
		if !blocked {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			tc = timer.C
		}
		select {
		case <-tc:
		case <-w.wake:
		case <-ctx.Done():
			pp.mu.Lock()
			pp.queue.remove(w)
			pp.mu.Unlock()
			err := context.Cause(ctx)
			pp.waited(req, time.Since(arrived), cause, nil, err)
			return nil, nil, err
		}
		pp.mu.Lock()
		now = time.Now()
	}
}

// wouldLead reports whether w, not yet queued, would be the queue's head.
func (pp *pacerPart) wouldLead(w *pwaiter) bool {
	h := pp.queue.head()
	return h == nil || w.before(h)
}

// allowance returns how much longer a request that arrived at arrived may
// wait: what is left of MaxWait and of its context's deadline.
func (pp *pacerPart) allowance(ctx context.Context, now, arrived time.Time) time.Duration {
	limit := time.Duration(1<<63 - 1)
	if mw := pp.p.s.MaxWait; mw > 0 {
		limit = mw - now.Sub(arrived)
	}
	if dl, ok := ctx.Deadline(); ok {
		limit = min(limit, dl.Sub(now))
	}
	return limit
}

// delay returns how long the head of the queue, of cost c, must still wait
// and why; blocked reports that it waits for a request in flight to finish
// (the concurrency cap), which has no predictable end.
func (pp *pacerPart) delay(now time.Time, c, need *pcost, info *requestInfo) (d time.Duration, cause string, blocked bool) {
	s := &pp.p.s
	if g := pp.store.gateUntil(); g.After(now) {
		d, cause = g.Sub(now), "gate"
	}
	if pp.stagger.on && pp.stagger.next.After(now) && !pp.hasTicket(now, info) {
		if w := pp.stagger.next.Sub(now); w > d {
			d, cause = w, "stagger"
		}
	}
	// The room a request needs beyond its cost is checked against this
	// client's share of the bucket while other clients are seen draining
	// it, and at the start only while requests are in flight, whose
	// answers' reports will raise that share: with none, the share
	// believed of a first report (a quarter) would hold a large request
	// until the refill alone covered it. The room the requests in flight
	// may hold comes on top (see mayHold).
	var hold pcost
	if len(pp.flights) > 0 {
		for _, o := range [...]pdim{pdOutput, pdTokens} {
			if need[o] > c[o] {
				hold[o] = pp.mayHold(o)
			}
		}
	}
	if w, dim := pp.store.wait(now, *c, *need, hold, true, len(pp.flights) > 0); w > d {
		d, cause = w, pdimNames[dim]
		if pp.store.bucket(dim).rising(pp.store.at(now)) {
			// The refill grows while it waits: look again soon.
			d = min(d, risingRecheck)
		}
	}
	if w := pp.slow.wait(now, s.RecoveryTime); w > d {
		d, cause = w, "slow_down"
	}
	if s.MaxConcurrent > 0 && len(pp.flights) >= s.MaxConcurrent {
		blocked = true
		if d == 0 {
			cause = "concurrency"
		}
	}
	return d, cause, blocked
}

// mayHold returns what this client's requests in flight may hold of
// dimension d beyond their charge, were the server reserving their
// max_tokens, and that its last report of d cannot show. While the
// generated rule is assumed but not confirmed, a request needs room for
// its max_tokens (see learned.cost); a server that does reserve wants that
// room on top of the max_tokens of the requests it admitted before, which
// the bucket charged only their expected output: without them, a client
// whose share is a quarter of the bucket would send max_tokens worth a
// whole bucket, one request at a time. A request sent more than the
// transit time before the last report is in it (under reservation, its
// max_tokens is out of the reported remaining already); one sent later is
// not.
func (pp *pacerPart) mayHold(d pdim) float64 {
	b := pp.store.bucket(d)
	var h float64
	for _, f := range pp.flights {
		extra := float64(f.maxOut) - f.cost[pdOutput]
		if !f.outUncounted || extra <= 0 {
			continue
		}
		if b.synced && b.syncedAt.since(pp.store.at(f.sent)) > pp.transit {
			continue // in the report
		}
		h += extra
	}
	return h
}

// hasTicket reports whether info's request is the one whose own answer
// closed the gate, coming back after it opened: it goes first, without
// waiting for the staggered release (it has waited once already).
func (pp *pacerPart) hasTicket(now time.Time, info *requestInfo) bool {
	t := info.pacer.ticket
	return !t.IsZero() && t.Equal(pp.store.gateUntil()) && !now.Before(t)
}

// predict returns the predicted wait of w: for the head, its own delay (plus
// an average response time when it waits for the concurrency cap); for
// others, the time until the buckets, the gate, the slow-down cap and the
// concurrency cap let through every request ahead of it and then it.
func (pp *pacerPart) predict(now time.Time, w *pwaiter, isHead bool, d time.Duration, blocked bool) time.Duration {
	s := &pp.p.s
	lat := secondsToDuration(pp.latency)
	if isHead {
		if blocked {
			d += lat
		}
		return d
	}
	sum, n := pp.queue.ahead(w)
	sum.add(&w.cost)
	pred, _ := pp.store.wait(now, sum, sum, pcost{}, false, false)
	if g := pp.store.gateUntil(); g.After(now) {
		pred = max(pred, g.Sub(now))
	}
	if pp.stagger.on && s.GateSpacing > 0 {
		start := laterOf(laterOf(pp.stagger.next, pp.store.gateUntil()), now)
		pred = max(pred, start.Sub(now)+time.Duration(n)*s.GateSpacing)
	}
	pred = max(pred, pp.slow.waitFor(now, n+1, s.RecoveryTime))
	if s.MaxConcurrent > 0 {
		if k := n + 1 - (s.MaxConcurrent - len(pp.flights)); k > 0 {
			rounds := (k + s.MaxConcurrent - 1) / s.MaxConcurrent
			pred = max(pred, time.Duration(rounds)*lat)
		}
	}
	return pred
}

// take admits a request of cost c at now: charges the buckets and the
// slow-down cap, advances the staggered release, and records the flight.
func (pp *pacerPart) take(now time.Time, c *pcost, outUnc bool, info *requestInfo, est Estimate, ev *gateEvents) *pflight {
	s := &pp.p.s
	pp.store.take(now, *c)
	pp.slow.take(now)
	if pp.stagger.on && !pp.hasTicket(now, info) {
		if len(pp.queue) == 0 || s.GateSpacing <= 0 {
			pp.stagger.on = false
		} else {
			gap := s.GateSpacing + max(s.Jitter(s.GateSpacing), 0)
			pp.stagger.next = laterOf(pp.stagger.next, now).Add(gap)
		}
	}
	if g := pp.store.gateUntil(); !pp.gateOpenSeen && !g.IsZero() && !now.Before(g) {
		pp.gateOpenSeen = true
		ev.open = &GateEvent{Partition: pp.key, Until: g}
	}
	info.pacer.ticket = time.Time{}
	fb := info.pacer.flight
	if fb == nil || !info.pacer.flightTaken.CompareAndSwap(false, true) {
		fb = new(flightBody)
	}
	fb.pflight = pflight{
		idx: len(pp.flights), seq: info.pacer.seq, sent: now, cost: *c, outUncounted: outUnc,
		maxOut: est.MaxOutputTokens, estInput: est.InputTokens, stream: info.stream,
	}
	f := &fb.pflight
	f.body = &fb.body
	pp.flights = append(pp.flights, f)
	pp.sent++
	return f
}

// waited calls the OnWait hook for a request that waited, was refused or
// gave up. It must be called without the lock.
func (pp *pacerPart) waited(req *http.Request, d time.Duration, cause string, r *Refusal, err error) {
	if h := pp.p.s.OnWait; h != nil && (d > 0 || r != nil || err != nil) {
		h(WaitEvent{Request: req, Partition: pp.key, Waited: d, Cause: cause, Refusal: r, Err: err})
	}
}

// gateEvents collects the gate events of a locked section, to be fired
// after unlocking.
type gateEvents struct{ open, closed *GateEvent }

func (e *gateEvents) fire(s *PacerSettings) {
	if s.OnGate == nil {
		return
	}
	if e.closed != nil {
		s.OnGate(*e.closed)
	}
	if e.open != nil {
		s.OnGate(*e.open)
	}
}

// stats returns the partition's snapshot at now.
func (pp *pacerPart) stats(now time.Time) PacerStats {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	bs := func(d pdim) BucketStats {
		b := pp.store.bucket(d)
		if !b.known() {
			return BucketStats{Reported: b.reported}
		}
		at := pp.store.at(now)
		b.advance(at)
		return BucketStats{Limit: int64(b.capacity), Level: b.level, Window: b.window, RefillPerSecond: b.refill(at), Reported: b.reported}
	}
	st := PacerStats{
		Partition:       pp.key,
		Requests:        bs(pdRequests),
		RequestsPerDay:  bs(pdRequestsPerDay),
		Tokens:          bs(pdTokens),
		InputTokens:     bs(pdInput),
		OutputTokens:    bs(pdOutput),
		InFlight:        len(pp.flights),
		Queued:          len(pp.queue),
		GateUntil:       pp.store.gateUntil(),
		QuotaUntil:      pp.quotaUntil,
		OutputCharging:  pp.learn.rule,
		AvgOutputTokens: pp.learn.avgOutput,
		InputRatio:      pp.learn.inputRatio,
		Sent:            pp.sent,
		Throttled:       pp.throttled,
		Refused:         pp.refused,
		StoreErrors:     pp.storeErrors,
		StoreDeclines:   pp.declined,
	}
	if r := pp.slow.limitAt(now, pp.p.s.RecoveryTime); r > 0 && r < 1e300 {
		st.SendRate = r
	}
	return st
}

// laterOf returns the later of a and b.
func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// nowAfter returns the current time as t plus the time elapsed since t by
// the monotonic clock, and that time elapsed: time.Now with one clock read
// instead of two when t carries a monotonic reading, as every time.Now does
// (otherwise, time.Now).
func nowAfter(t time.Time) (now time.Time, elapsed time.Duration) {
	if t.IsZero() {
		now = time.Now()
		return now, now.Sub(t)
	}
	elapsed = time.Since(t)
	return t.Add(elapsed), elapsed
}
