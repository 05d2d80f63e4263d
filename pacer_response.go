package llmhttp

import (
	"context"
	"net/http"
	"time"
)

// reportedGate bounds how long a 429 that reports the buckets' levels
// closes the gate.
const reportedGate = time.Second

// monthlyCodes are the error codes of spend caps that last until the next
// month (llm-wire §5.2 rows 4 and 7).
var monthlyCodes = [...]string{
	"enforced_spend_limit_reached",
	"organization_spend_limit_exceeded",
	"project_spend_limit_exceeded",
	"organization_usage_limit_exceeded",
}

// finish learns from the outcome of flight f: it settles the flight (or
// leaves a streamed response's open until its body ends), resynchronises
// the buckets from the headers, closes the gate on a server-given wait,
// cuts the sending rate on slow_down and overload, latches a quota, and
// wraps a successful response's body to learn its usage. It returns the
// time of the answer, as it read it.
func (pp *pacerPart) finish(ctx context.Context, f *pflight, info *requestInfo, resp *http.Response, err error) time.Time {
	s := &pp.p.s
	now, took := nowAfter(f.sent)
	class := s.Classifier(resp, err)
	var (
		lim      Limits
		delay    time.Duration
		hinted   bool
		status   int
		quotaEnd time.Time
		quotaWhy string
	)
	if err == nil && resp != nil {
		status = resp.StatusCode
		parseLimits(resp.Header, now, &lim)
		laneLimits(pp.key.Lane, &lim)
		if status >= 400 {
			delay, hinted = ServerDelay(resp.Header, now)
		}
		if class == ClassQuota {
			quotaEnd, quotaWhy = pp.quotaEnd(resp, now, delay, hinted)
		}
	}
	ok2xx := err == nil && resp != nil && status/100 == 2
	keep := ok2xx && f.stream && resp.Body != nil && resp.Body != http.NoBody
	var ev gateEvents

	pp.mu.Lock()
	if err == nil && resp != nil {
		pp.observeLatency(took, status/100 != 2 || f.stream)
	}
	refundedAt := pp.refundedAt
	var shared *Settlement
	if s.Store != nil {
		shared = &Settlement{Now: now}
	}
	if !keep {
		if ok2xx {
			pp.observeServed(took)
		}
		refund, debit := pp.settle(now, f, ok2xx || resp == nil, -1)
		if shared != nil {
			shared.Refund, shared.Debit = Amounts(refund), Amounts(debit)
		}
	}
	pp.sync(now, &lim, f, class, refundedAt)
	if shared != nil {
		shared.Limits = pp.limitsLocked()
		pp.reportedLocked(shared, &lim, now)
	}

	switch class {
	case ClassRateLimited, ClassSlowDown:
		pp.throttled++
	}
	if class == ClassRateLimited {
		// The pacer sent this request believing it fitted: another client
		// took the room. Cut this client's share of whatever ran out.
		for d := range pdCount {
			if rep := limitOf(&lim, d); rep.HasRemaining && float64(rep.Remaining) < f.cost[d] {
				pp.store.cut(now, d)
			}
		}
	}
	switch class {
	case ClassRateLimited, ClassSlowDown, ClassOverloaded, ClassServer, ClassTimeout:
		if !hinted && class == ClassRateLimited && s.UnhintedDelay > 0 {
			delay, hinted = s.UnhintedDelay, true
		}
		if class == ClassRateLimited && reportsLevels(&lim) {
			// The wait of a 429 is the answered request's own (the time until
			// its cost fits), and the buckets, just resynchronised from the
			// same headers, already hold every other request for its own
			// cost: the gate only stops the partition for a moment.
			delay = min(delay, reportedGate)
		}
		if hinted && delay > 0 {
			pp.closeGate(now.Add(delay), info, class, status, &ev)
		}
	}
	switch class {
	case ClassSlowDown:
		pp.slow.cut(now, f.sent, s.SlowDownFactor, pp.slowFloor(), s.RecoveryTime)
	case ClassOverloaded:
		pp.slow.cut(now, f.sent, s.OverloadFactor, pp.slowFloor(), s.RecoveryTime)
	case ClassQuota:
		if !quotaEnd.IsZero() && quotaEnd.After(pp.quotaUntil) {
			pp.quotaUntil, pp.quotaMsg = quotaEnd, quotaWhy
		}
	}
	if h := pp.queue.head(); h != nil {
		h.notify()
	}
	if shared != nil && ev.closed != nil {
		shared.GateUntil = ev.closed.Until
	}
	pp.mu.Unlock()
	ev.fire(s)
	hasBody := ok2xx && resp.Body != nil && resp.Body != http.NoBody
	if shared != nil {
		if hasBody && !keep {
			// The body's usage tells the output the store should keep
			// charged: settle once, at its end (bodyDone).
			f.later = shared
		} else {
			pp.settleShared(ctx, shared)
		}
	}

	if hasBody {
		b := f.body
		b.rc, b.pp, b.f, b.open = resp.Body, pp, f, keep
		resp.Body = b
	}
	return now
}

// laneLimits narrows lim, the limits of a response or the limits given up
// front, to the pool of capacity a partition of lane draws on. In
// [LaneFast], Anthropic's fast-mode token limits (anthropic-fast-*) take
// the place of the standard input and output ones, and of the combined
// one, which is the standard pool's; the request limit stays the key's.
// A fast-mode answer without them (a model that fell back to standard
// speed) is paced on the standard limits it reports.
func laneLimits(lane string, lim *Limits) {
	if lane != LaneFast || !lim.FastInputTokens.Known() && !lim.FastOutputTokens.Known() {
		return
	}
	lim.InputTokens, lim.OutputTokens, lim.Tokens = lim.FastInputTokens, lim.FastOutputTokens, Limit{}
}

// slowFloor returns the least rate a slow-down cut may leave, in requests
// per second, beyond minSendRate: limitFloorShare of the server's request
// limit, when known.
func (pp *pacerPart) slowFloor() float64 {
	if b := pp.store.bucket(pdRequests); b.known() {
		return limitFloorShare * b.rate
	}
	return 0
}

// reportsLevels reports whether lim holds the remaining of some bucket.
func reportsLevels(lim *Limits) bool {
	for d := range pdCount {
		if limitOf(lim, d).HasRemaining {
			return true
		}
	}
	return false
}

// observeLatency learns from a response head that came d after sending.
// quick reports a head the server sends without generating anything first
// (an error, or a stream's head), whose latency bounds the time a request
// takes to reach the server; the head of a whole generated response says
// nothing about it.
func (pp *pacerPart) observeLatency(d time.Duration, quick bool) {
	d = max(d, 0)
	if quick && (!pp.hasTransit || d < pp.transit) {
		pp.transit, pp.hasTransit = min(d, maxTransit), true
	}
	if pp.latency == 0 {
		pp.latency = seconds(d)
	} else {
		pp.latency += latencyAlpha * (seconds(d) - pp.latency)
	}
}

// observeServed learns from a request served d after it was sent (its
// whole answer, for a stream).
func (pp *pacerPart) observeServed(d time.Duration) {
	if d = max(d, 0); !pp.hasServe || d < pp.minServe {
		pp.minServe, pp.hasServe = d, true
	}
}

// settle ends flight f: it leaves the flights and, when the request was
// served (or may have been), its output reservation is refunded down to the
// output expected (or actual, when known); when the server answered with an
// error, every token it was charged is refunded (only the request counts).
//
// It returns what the shared store (if any) should be given back and
// charged more: the same refund, and once the actual output is known, the
// difference between it and the output charged.
func (pp *pacerPart) settle(now time.Time, f *pflight, served bool, actual int64) (refund, debit pcost) {
	if f.idx < 0 {
		return refund, debit
	}
	last := len(pp.flights) - 1
	pp.flights[f.idx] = pp.flights[last]
	pp.flights[f.idx].idx = f.idx
	pp.flights[last] = nil
	pp.flights = pp.flights[:last]
	f.idx = -1

	var back pcost
	switch {
	case !served:
		back[pdInput], back[pdOutput], back[pdTokens] = f.cost[pdInput], f.cost[pdOutput], f.cost[pdTokens]
	case !f.outUncounted:
		out := float64(actual)
		if actual < 0 {
			out = pp.learn.expectedOutput(Estimate{MaxOutputTokens: f.maxOut})
			if pp.learn.avgOutput == 0 {
				out = f.cost[pdOutput] // nothing learned yet: refund nothing
			}
		}
		if r := f.cost[pdOutput] - out; r > 0 {
			back[pdOutput], back[pdTokens] = r, r
		}
	}
	if served && (back[pdOutput] > 0 || back[pdTokens] > 0) {
		// The server gave back an unused reservation too (an answer it did
		// not serve was never charged).
		pp.refundedAt = now
	}
	pp.store.give(now, back)
	refund = back
	if served && actual >= 0 {
		// The local buckets follow the headers; the shared ones learn the
		// truth here.
		switch d := float64(actual) - f.cost[pdOutput]; {
		case d > 0:
			debit[pdOutput], debit[pdTokens] = d, d
			refund[pdOutput], refund[pdTokens] = 0, 0
		case d < 0:
			refund[pdOutput], refund[pdTokens] = -d, -d
		}
	}
	return refund, debit
}

// uncounted returns the cost of the requests in flight that a report made
// now cannot include: all of it for a request sent within the transit time
// (it may not have reached the server), and the output of one whose output
// is counted only when generated. With shared, only of the requests the
// shared store reserved: a report to it leaves out the others, as its
// levels do.
func (pp *pacerPart) uncounted(now time.Time, shared bool) (u pcost) {
	for _, f := range pp.flights {
		if shared && f.pending {
			continue // not in the shared buckets either
		}
		if now.Sub(f.sent) <= pp.transit {
			u.add(&f.cost)
			continue
		}
		if f.outUncounted {
			u[pdOutput] += f.cost[pdOutput]
			u[pdTokens] += f.cost[pdOutput]
		}
	}
	return u
}

// sync resynchronises the buckets from lim, and checks what lim says about
// the output charging rule.
func (pp *pacerPart) sync(now time.Time, lim *Limits, f *pflight, class Class, refundedAt time.Time) {
	var r report
	known := false
	for d := range pdCount {
		if rep := limitOf(lim, d); rep.Known() {
			r.reps[d], known = rep, true
			r.round[d] = roundingOf(pp.provider, d)
			if !rep.Reset.IsZero() {
				r.resetIn[d] = rep.Reset.Sub(now)
				r.grain[d] = resetGrain(pp.provider, r.resetIn[d])
			}
		}
	}
	if !known {
		return
	}
	r.uncounted = pp.uncounted(now, false)
	if pp.hasTransit {
		r.lag = pp.transit
	}
	if pp.provider == ProviderAnthropic {
		r.skew = absoluteSkew
	}
	pp.store.sync(now, &r)
	pp.inferCharging(now, lim, f, class, refundedAt)
}

// inferCharging updates the assumed output charging rule from a report
// (OutputAuto only); refundedAt is when an earlier response last refunded
// output. See PacerSettings.OutputCharging.
func (pp *pacerPart) inferCharging(now time.Time, lim *Limits, f *pflight, class Class, refundedAt time.Time) {
	l := &pp.learn
	if !l.auto {
		return
	}
	d := pdOutput
	rep := lim.OutputTokens
	if !rep.Known() {
		d, rep = pdTokens, lim.Tokens
	}
	if !rep.HasRemaining || rep.Limit <= 0 {
		return
	}
	slack := roundingOf(pp.provider, d)
	// Other clients' refunds raise the remaining too: a contended or shared
	// bucket cannot refute reservation.
	if b := pp.store.bucket(d); (l.rule == OutputReserved || !l.confirmed) && !b.shared && !b.isContended(pp.store.at(now)) {
		// Under reservation the remaining excludes the max_tokens of every
		// request in flight the server has admitted, less what the bucket
		// refilled since the oldest of them was admitted. A remaining
		// higher than that refutes reservation (or confirms generation).
		// Only requests sent after the last refund count: a request that
		// ended since one of them was sent gave back its unused
		// reservation, which the report includes. One request old enough
		// to have ended at the server already may have given back its
		// reservation, its answer still on the way (crossing); and the
		// answer's own request, if served, did.
		var reserved, crossing float64
		oldest := now
		for _, o := range pp.flights {
			age := now.Sub(o.sent)
			if age < pp.transit || !o.sent.After(refundedAt) {
				continue
			}
			var res, out float64
			if o.outUncounted {
				out = float64(o.maxOut)
				res = out
				if d == pdTokens {
					res += o.cost[pdInput]
				}
			} else {
				out = o.cost[pdOutput]
				res = o.cost[d]
			}
			if pp.hasServe && age >= pp.minServe-pp.transit {
				crossing = max(crossing, out)
			}
			reserved += res
			if o.sent.Before(oldest) {
				oldest = o.sent
			}
		}
		if b := pp.store.bucket(d); b.known() {
			reserved -= b.fastestRate() * seconds(now.Sub(oldest))
		}
		reserved -= crossing
		if f != nil && class == ClassOK {
			// The answer's own request, served, gave back what it did not
			// use of its reservation just before the report was made.
			reserved -= float64(f.maxOut)
		}
		if reserved >= 2*slack {
			if float64(rep.Remaining) > float64(rep.Limit)-reserved+slack {
				if l.refuted++; l.refuted >= refuteAfter {
					l.rule, l.refuted, l.confirmed = OutputGenerated, 0, true
				}
			} else {
				l.refuted = 0
			}
		}
	}
	// The resets are followed only while the generated rule is assumed
	// unconfirmed: the state a partition starts in and, once left, never
	// comes back to.
	if l.rule == OutputGenerated && !l.confirmed && l.full.refunded(&rep, now, pp.resetTolerance(rep.Reset.Sub(now))) {
		// Output given back: the server reserved more than was generated.
		if l.refunds++; l.refunds >= refundsAfter {
			l.rule, l.refuted, l.ambiguous, l.refunds = OutputReserved, 0, 0, 0
			return
		}
	}
	switch l.rule {
	case OutputGenerated:
		// A 429 on output, while every other dimension had room: with
		// output still left, though less than the request's max_tokens,
		// the server wanted max_tokens reserved; with none left (Anthropic
		// rounds below 500 to 0) it may be a reservation or a debt of
		// generated output, and a second such 429 decides.
		if class != ClassRateLimited || f == nil || f.maxOut <= 0 {
			return
		}
		var in float64
		if d == pdTokens {
			in = f.cost[pdInput]
		}
		r := float64(rep.Remaining)
		if r >= in+float64(f.maxOut) || (r > 0 && r < in+1) {
			return
		}
		for o := range pdCount {
			if o == d || o == pdTokens && d == pdOutput {
				continue
			}
			if or := limitOf(lim, o); or.HasRemaining && float64(or.Remaining) < f.cost[o]-roundingOf(pp.provider, o)/2 {
				return // another dimension explains the 429
			}
		}
		if r <= 0 {
			if l.ambiguous++; l.ambiguous < ambiguousAfter {
				return
			}
		}
		l.rule, l.refuted, l.ambiguous = OutputReserved, 0, 0
	}
}

// resetTolerance returns how far apart two reports may put one instant,
// for a reset resetIn from now: the resolution of the reset, the clock
// skew allowed with a server that sends absolute resets, and how long
// before its arrival the server may have made the report. (Resets measured
// from the Date header of a server whose clock is off by more than
// clockSkewTolerance jitter by Date's second too: a refund seen there by
// mistake is refuted like any wrong assumption of reservation.)
func (pp *pacerPart) resetTolerance(resetIn time.Duration) time.Duration {
	tol := resetGrain(pp.provider, resetIn)
	if pp.provider == ProviderAnthropic {
		tol += absoluteSkew
	}
	if pp.hasTransit {
		tol += pp.transit
	}
	return tol
}

// fullTrack follows when a bucket's reports say it is full again, to tell
// whether the server gives tokens back.
//
// A token bucket that is only charged and refilled is full again no sooner
// than it last said: a charge puts that instant later, the refill brings
// the level towards it without moving it. So a report whose reset is
// earlier than the last one's, by more than the reports' errors, shows
// tokens given back between the two: the unused part of a reservation,
// which a server that counts only the tokens generated never makes. This
// holds whatever the bucket's window, and whatever other clients of the key
// do (their charges only put the instant later): it tells the rule without
// a 429, which the room kept for max_tokens while the rule is unknown
// (learned.cost) mostly prevents.
type fullTrack struct {
	at    time.Time // the last report's reset
	limit int64     // and its limit
}

// refunded records report rep, made at about now, and reports whether its
// reset is earlier than the last report's by more than tol.
func (t *fullTrack) refunded(rep *Limit, now time.Time, tol time.Duration) bool {
	if rep.Reset.IsZero() || rep.Limit <= 0 {
		return false
	}
	last, same := t.at, t.limit == rep.Limit
	// A reset already past is a full bucket: full from now on.
	t.at, t.limit = laterOf(rep.Reset, now), rep.Limit
	return same && !last.IsZero() && t.at.Before(last.Add(-tol))
}

// closeGate closes the gate until t, after a response of class and status
// to info's request, and gives that request the ticket to go first when it
// comes back after the gate opens.
func (pp *pacerPart) closeGate(t time.Time, info *requestInfo, class Class, status int, ev *gateEvents) {
	s := &pp.p.s
	changed := pp.store.closeGate(t)
	if changed || t.Equal(pp.store.gateUntil()) {
		info.pacer.ticket = t
	}
	if !changed {
		return
	}
	pp.gateOpenSeen = false
	if s.GateSpacing > 0 {
		pp.stagger.on = true
		pp.stagger.next = laterOf(pp.stagger.next, t)
	}
	ev.closed = &GateEvent{Partition: pp.key, Closed: true, Until: t, Class: class, Status: status}
}

// quotaEnd returns until when a quota answer latches the partition, and
// why; zero when the latch is off.
func (pp *pacerPart) quotaEnd(resp *http.Response, now time.Time, delay time.Duration, hinted bool) (time.Time, string) {
	s := &pp.p.s
	if s.QuotaLatch < 0 {
		return time.Time{}, ""
	}
	var end time.Time
	why := "the provider reported the quota of this credential exhausted for " + pp.key.Model
	switch {
	case hinted && delay > 0:
		end = now.Add(delay)
	case isMonthlyCap(resp):
		end = nextMonthUTC(now)
		why = "the provider reported a monthly spend limit reached for " + pp.key.Model
	default:
		end = now.Add(s.QuotaLatch)
	}
	if s.MaxQuotaLatch > 0 && end.Sub(now) > s.MaxQuotaLatch {
		end = now.Add(s.MaxQuotaLatch)
	}
	return end, why
}

// isMonthlyCap reports whether resp is a monthly spend or usage cap.
func isMonthlyCap(resp *http.Response) bool {
	b := peekErrorBody(resp)
	for _, c := range monthlyCodes {
		if b.errorCode == c || b.code == c || b.typ == c {
			return true
		}
	}
	return false
}

// nextMonthUTC returns 00:00 UTC on the first day of the month after now's.
func nextMonthUTC(now time.Time) time.Time {
	u := now.UTC()
	return time.Date(u.Year(), u.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}
