package llmhttp

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// This file is the budget layer's way in: per-request caps, queue
// shedding, and the admission loop that reserves a request's estimate in
// each of its budgets and decides — fit, degrade, delay, shed or refuse.

// budgetRef is one of a request's budgets.
type budgetRef struct {
	d        *budgetDef
	key      string
	cost     BudgetCounts   // what is reserved for the request
	reserved bool           // the reservation is in the store
	slots    []BudgetCounts // the window after the last reservation
	used     BudgetCounts   // its total, the reservation included
	degrade  string         // "exhausted" or "threshold" when it degrades the request
}

// budgetAdmission is a request the layer let through, for settling.
type budgetAdmission struct {
	b      *Budgets
	req    *http.Request // the caller's
	refs   []budgetRef
	names  []string
	tenant string
	est    Estimate  // as admitted (capped, degraded)
	at     time.Time // when the reservations were made
}

// Verdicts, in increasing severity: a request gets the most severe verdict
// of its budgets.
const (
	verdictOK = iota
	verdictDegrade
	verdictDelay
	verdictShed
	verdictRefuse
)

// budgetPlan is how a request is to be sent: its model replaced, its
// output capped.
type budgetPlan struct {
	model     string
	maxTokens int64 // 0: unchanged
	// byCap reports that maxTokens comes from a per-request cap
	// (TrimOutput): a request that cannot be trimmed is refused.
	byCap bool
}

// capped returns est with its output limit capped by p.
func (p *budgetPlan) capped(est Estimate) Estimate {
	if p.maxTokens > 0 && (est.MaxOutputTokens == 0 || est.MaxOutputTokens > p.maxTokens) {
		est.MaxOutputTokens = p.maxTokens
		est.OutputTokens = min(est.OutputTokens, p.maxTokens)
	}
	return est
}

// lowerMax lowers the plan's output cap to n (when n > 0).
func (p *budgetPlan) lowerMax(n int64) {
	if n > 0 && (p.maxTokens == 0 || n < p.maxTokens) {
		p.maxTokens = n
	}
}

// slotPool recycles the windows read during admission (a cache, not
// state).
var slotPool = sync.Pool{New: func() any { s := make([]BudgetCounts, 0, 128); return &s }}

// headerDegraded is the response header that says what was degraded.
const headerDegraded = "Llmhttp-Degraded"

// RoundTrip implements [http.RoundTripper].
func (t *budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := t.roundTripInfo(req, nil, time.Now())
	return resp, err
}

// roundTripInfo implements infoTripper.
func (t *budgetTransport) roundTripInfo(req *http.Request, info *requestInfo, now time.Time) (*http.Response, time.Time, error) {
	b := t.b
	var names []string
	var tenant string
	if b.s.Select != nil {
		names, tenant = b.s.Select(req)
	} else {
		names, tenant = BudgetsOf(req.Context()), TenantOf(req.Context())
	}
	refs := b.resolve(names, tenant)
	prio := PriorityOf(req.Context())
	queueLimit := 0
	if b.s.Shed.Queued != nil {
		queueLimit = b.shed.queueLimit(prio)
	}
	if len(refs) == 0 && queueLimit == 0 && b.s.OnUsage == nil {
		return sendOn(t.next, req, info, now)
	}

	info = infoFor(req, info)
	est := Estimate{InputTokens: info.inputTokens, MaxOutputTokens: info.maxTokens}
	if b.s.Estimator != nil && len(refs) > 0 {
		est = b.s.Estimator(req, est)
		est.InputTokens = max(est.InputTokens, 0)
		est.MaxOutputTokens = max(est.MaxOutputTokens, 0)
		est.OutputTokens = max(est.OutputTokens, 0)
	}

	var plan budgetPlan
	for i := range refs {
		if r := checkCaps(refs[i].d, est, &plan); r != nil {
			return b.refuse(req, refs[i].d, tenant, r), time.Time{}, nil
		}
	}
	if queueLimit > 0 {
		part := info.partition
		if b.s.Shed.Partition != nil {
			part = b.s.Shed.Partition(req)
		}
		if q := b.s.Shed.Queued(part); q >= queueLimit {
			r := &Refusal{Reason: ReasonShed, Message: strconv.Itoa(q) + " requests are queued for " + part.Model +
				"; " + prio.String() + "-priority requests are shed from " + strconv.Itoa(queueLimit)}
			var d *budgetDef
			if len(refs) > 0 {
				d = refs[0].d
			}
			return b.refuse(req, d, tenant, r), time.Time{}, nil
		}
	}

	adm := &budgetAdmission{b: b, req: req, refs: refs, names: names, tenant: tenant, est: plan.capped(est)}
	send := req
	var rw rewrite
	if len(refs) > 0 {
		var r *budgetRefusal
		var err error
		send, rw, r, err = b.admit(adm, info, prio, &plan)
		if err != nil {
			closeBody(req)
			return nil, time.Time{}, err
		}
		if r != nil {
			return b.refuse(req, r.d, tenant, r.refusal), time.Time{}, nil
		}
		if send != req {
			closeBody(req) // the degraded clone carries its own body
		}
	}
	sendInfo := info
	if send != req {
		sendInfo = infoOf(send) // the degraded clone's own
	}
	if len(refs) > 0 {
		now = time.Now() // after the admission, which may have waited
	}
	resp, done, err := sendOn(t.next, send, sendInfo, now)
	if rw.changed() && resp != nil && resp.Header != nil {
		resp.Header.Set(headerDegraded, rw.String())
	}
	b.settle(adm, resp, err)
	return resp, done, err
}

// closeBody closes req's body, if it has one.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// resolve returns the budgets of a request named names, of tenant: the
// named ones (unknown names ignored, each once), then those marked All.
func (b *Budgets) resolve(names []string, tenant string) []budgetRef {
	if len(names) == 0 && len(b.all) == 0 {
		return nil
	}
	refs := make([]budgetRef, 0, len(names)+len(b.all))
	add := func(d *budgetDef) {
		for i := range refs {
			if refs[i].d == d {
				return
			}
		}
		refs = append(refs, budgetRef{d: d, key: d.key(tenant)})
	}
	for _, n := range names {
		if d := b.defs[n]; d != nil {
			add(d)
		}
	}
	for _, d := range b.all {
		add(d)
	}
	return refs
}

// budgetRefusal is a refusal and the budget that made it.
type budgetRefusal struct {
	d       *budgetDef
	refusal *Refusal
}

// refuse answers req with r's local reply, after counting it and calling
// OnRefuse; d is the budget that refused it (nil for queue shedding of a
// request without budgets).
func (b *Budgets) refuse(req *http.Request, d *budgetDef, tenant string, r *Refusal) *http.Response {
	closeBody(req)
	name := ""
	if d != nil {
		name = d.name
		b.count(d, func(s *BudgetStats) {
			switch r.Reason {
			case ReasonShed:
				s.Shed++
			case ReasonTooLarge:
				s.TooLarge++
			default:
				s.Refused++
			}
		})
	}
	if b.s.OnRefuse != nil {
		b.s.OnRefuse(RefuseEvent{Request: req, Budget: name, Tenant: tenant, Refusal: r})
	}
	return r.Response(req)
}

// count updates d's stats.
func (b *Budgets) count(d *budgetDef, f func(*BudgetStats)) {
	b.mu.Lock()
	f(&d.stats)
	b.mu.Unlock()
}

// checkCaps applies d's per-request caps to est: a refusal when est is over
// them, or an output cap added to plan (TrimOutput).
func checkCaps(d *budgetDef, est Estimate, plan *budgetPlan) *Refusal {
	bu := &d.b
	if bu.MaxInputTokens > 0 && est.InputTokens > bu.MaxInputTokens {
		return &Refusal{Reason: ReasonTooLarge, Message: "estimated " + strconv.FormatInt(est.InputTokens, 10) +
			" input tokens exceed the per-request cap of " + strconv.FormatInt(bu.MaxInputTokens, 10) +
			" of budget " + strconv.Quote(d.name)}
	}
	if bu.MaxOutputTokens <= 0 {
		return nil
	}
	switch {
	case bu.TrimOutput && (est.MaxOutputTokens == 0 || est.MaxOutputTokens > bu.MaxOutputTokens):
		plan.lowerMax(bu.MaxOutputTokens)
		plan.byCap = true
	case est.MaxOutputTokens > bu.MaxOutputTokens:
		return &Refusal{Reason: ReasonTooLarge, Message: "max_tokens " + strconv.FormatInt(est.MaxOutputTokens, 10) +
			" exceeds the per-request cap of " + strconv.FormatInt(bu.MaxOutputTokens, 10) +
			" of budget " + strconv.Quote(d.name)}
	}
	return nil
}

// expectedOutput returns the output d expects of a request of estimate
// est: the estimator's figure, else the average d learned, else
// max_tokens, else a default guess; never more than max_tokens. Called
// with b.mu held.
func (d *budgetDef) expectedOutput(est Estimate) int64 {
	out := est.OutputTokens
	if out <= 0 {
		switch {
		case d.avgOut > 0:
			out = int64(d.avgOut + 0.5)
		case est.MaxOutputTokens > 0:
			out = est.MaxOutputTokens
		default:
			out = defaultOutputGuess
		}
	}
	if est.MaxOutputTokens > 0 {
		out = min(out, est.MaxOutputTokens)
	}
	return max(out, 0)
}

// costs sets each ref's cost for a request of estimate est.
func (b *Budgets) costs(refs []budgetRef, est Estimate, out []BudgetCounts) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range refs {
		out[i] = BudgetCounts{Requests: 1, InputTokens: est.InputTokens, OutputTokens: refs[i].d.expectedOutput(est)}
	}
}

// storeAdd adds delta to ref's budget at at and reads its window into
// ref.slots and ref.used. A failure is reported and leaves them zero (the
// request is let through uncharged).
func (b *Budgets) storeAdd(ctx context.Context, ref *budgetRef, at, now time.Time, delta BudgetCounts) bool {
	err := b.store.Add(context.WithoutCancel(ctx), ref.key, ref.d.w, at, now, delta, ref.slots)
	if err != nil {
		if b.s.OnStoreError != nil {
			b.s.OnStoreError(err)
		}
		clear(ref.slots)
		ref.used = BudgetCounts{}
		return false
	}
	var used BudgetCounts
	for _, s := range ref.slots {
		used = used.add(s)
	}
	ref.used = used.floor()
	return true
}

// undo takes back every reservation of refs made at at. It wakes no
// waiter: the room it gives back was not there before the reservation.
func (b *Budgets) undo(ctx context.Context, refs []budgetRef, at time.Time) {
	now := time.Now()
	for i := range refs {
		r := &refs[i]
		if !r.reserved {
			continue
		}
		r.reserved = false
		b.storeAdd(ctx, r, at, now, BudgetCounts{}.sub(r.cost))
	}
}

// admit reserves the request's estimate in each of its budgets and decides
// what becomes of it, waiting (under BudgetDelay) as long as it is told to.
// It returns a refusal; or the context's error when the request gave up
// waiting; or the request to send (see finalize), its reservations made.
func (b *Budgets) admit(adm *budgetAdmission, info *requestInfo, prio Priority, plan *budgetPlan) (*http.Request, rewrite, *budgetRefusal, error) {
	ctx := adm.req.Context()
	refs := adm.refs
	n := 0
	for i := range refs {
		n += refs[i].d.w.Slots
	}
	bufp := slotPool.Get().(*[]BudgetCounts)
	if cap(*bufp) < n {
		*bufp = make([]BudgetCounts, 0, n)
	}
	buf := (*bufp)[:n]
	for i := range refs {
		k := refs[i].d.w.Slots
		refs[i].slots, buf = buf[:k:k], buf[k:]
	}
	costs := make([]BudgetCounts, len(refs))
	var w *budgetWaiter
	defer func() {
		if w != nil {
			b.dequeue(w)
		}
		for i := range refs {
			refs[i].slots = nil
		}
		slotPool.Put(bufp)
	}()

	arrived := time.Now()
	delayed := false
	for {
		if ctx.Err() != nil {
			return nil, rewrite{}, nil, context.Cause(ctx)
		}
		now := time.Now()
		if w != nil && !b.isHead(w) {
			// Others wait ahead of it: look again when they are gone, or
			// when its time is up.
			left := b.allowance(ctx, refs, now, arrived)
			if left <= 0 {
				return nil, rewrite{}, b.delayRefusal(refs[0].d, 0), nil
			}
			if err := sleepWake(ctx, w.wake, left); err != nil {
				return nil, rewrite{}, nil, err
			}
			continue
		}

		b.costs(refs, adm.est, costs)
		for i := range refs {
			refs[i].cost = costs[i]
			refs[i].reserved = b.storeAdd(ctx, &refs[i], now, now, costs[i])
		}
		adm.at = now
		v, at, wait := b.judge(refs, prio, now)

		switch v {
		case verdictShed, verdictRefuse:
			b.undo(ctx, refs, now)
			return nil, rewrite{}, b.budgetRefused(refs[at].d, v, prio, wait), nil
		case verdictDelay:
			b.undo(ctx, refs, now)
			if wait > b.allowance(ctx, refs, now, arrived) {
				return nil, rewrite{}, b.delayRefusal(refs[at].d, wait), nil
			}
			if w == nil {
				w = b.enqueue(refs[at].key, refs[at].d.w, prio)
			}
			if !delayed {
				delayed = true
				b.count(refs[at].d, func(s *BudgetStats) { s.Delayed++ })
			}
			if err := sleepWake(ctx, w.wake, wait); err != nil {
				return nil, rewrite{}, nil, err
			}
			continue
		}
		send, rw, r := b.finalize(adm, info, plan)
		return send, rw, r, nil
	}
}

// judge decides, from the reservations just made at now, what becomes of
// the request: the most severe verdict of its budgets, the index of the
// budget that gave it, and for a delay, a refusal or a shed the wait until
// the request would fit.
func (b *Budgets) judge(refs []budgetRef, prio Priority, now time.Time) (verdict, at int, wait time.Duration) {
	shedAt := b.shed.fraction(prio)
	for i := range refs {
		r := &refs[i]
		r.degrade = ""
		if !r.reserved || !r.d.limitsSet() {
			continue
		}
		d := r.d
		before := r.used.sub(r.cost).floor()
		v := verdictOK
		scale := 1.0
		switch {
		case !d.fits(before, r.cost, 1):
			switch {
			case d.b.Policy == BudgetDegrade:
				v, r.degrade = verdictDegrade, "exhausted"
			case d.b.Policy == BudgetDelay && prio <= d.b.DelayUpTo:
				v = verdictDelay
			default:
				v = verdictRefuse
			}
		case shedAt > 0 && !d.fits(before, r.cost, shedAt):
			v, scale = verdictShed, shedAt
			if d.b.Policy == BudgetDelay && prio <= d.b.DelayUpTo {
				v = verdictDelay
			}
		case d.b.DegradeAt > 0 && d.fraction(before.add(r.cost)) >= d.b.DegradeAt:
			v, r.degrade = verdictDegrade, "threshold"
		}
		var wt time.Duration
		if v >= verdictDelay {
			last := &r.slots[len(r.slots)-1]
			*last = last.sub(r.cost) // the window without this request
			wt = d.fitWait(r.slots, now, r.cost, scale)
		}
		switch {
		case v > verdict:
			verdict, at, wait = v, i, wt
		case v == verdict:
			wait = max(wait, wt)
		}
	}
	return verdict, at, wait
}

// budgetRefused returns the refusal for a request that d refuses (verdict
// refuse) or sheds, and that would fit after wait.
func (b *Budgets) budgetRefused(d *budgetDef, verdict int, prio Priority, wait time.Duration) *budgetRefusal {
	r := &Refusal{Reason: ReasonBudgetExhausted, RetryAfter: wait,
		Message: "budget " + strconv.Quote(d.name) + " is spent for this window (" + d.describe() + ")"}
	if verdict == verdictShed {
		r.Reason = ReasonShed
		r.Message = "budget " + strconv.Quote(d.name) + " is nearly spent (" + d.describe() + "); " +
			prio.String() + "-priority requests are shed from " + strconv.FormatFloat(100*b.shed.fraction(prio), 'g', 4, 64) + " %"
	}
	return &budgetRefusal{d: d, refusal: r}
}

// delayRefusal returns the refusal for a request whose wait for d does not
// fit its deadline, MaxDelay or WithMaxWait.
func (b *Budgets) delayRefusal(d *budgetDef, wait time.Duration) *budgetRefusal {
	return &budgetRefusal{d: d, refusal: &Refusal{Reason: ReasonBudgetExhausted, RetryAfter: wait,
		Message: "budget " + strconv.Quote(d.name) + " is spent for this window (" + d.describe() +
			"), and the wait for room exceeds the request's deadline or maximum delay"}}
}

// describe returns d's limits, as in "10000 tokens, 50 requests per 24h0m0s".
func (d *budgetDef) describe() string {
	s := ""
	add := func(n int64, what string) {
		if n > 0 {
			if s != "" {
				s += ", "
			}
			s += strconv.FormatInt(n, 10) + " " + what
		}
	}
	add(d.b.Tokens, "tokens")
	add(d.b.InputTokens, "input tokens")
	add(d.b.OutputTokens, "output tokens")
	add(d.b.Requests, "requests")
	return s + " per " + d.b.Window.String()
}

// allowance returns how much longer a request that arrived at arrived may
// wait: what is left of its budgets' MaxDelay, of WithMaxWait and of its
// context's deadline.
func (b *Budgets) allowance(ctx context.Context, refs []budgetRef, now, arrived time.Time) time.Duration {
	left := time.Duration(1<<63 - 1)
	for i := range refs {
		if d := &refs[i].d.b; d.Policy == BudgetDelay && d.MaxDelay > 0 {
			left = min(left, d.MaxDelay-now.Sub(arrived))
		}
	}
	if mw, ok := maxWaitOf(ctx); ok {
		left = min(left, mw-now.Sub(arrived))
	}
	if dl, ok := ctx.Deadline(); ok {
		left = min(left, dl.Sub(now))
	}
	return left
}

// sleepWake waits for d, a wake-up or the end of ctx, whichever comes
// first; only the last is an error.
func sleepWake(ctx context.Context, wake <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return nil
}

// finalize degrades the admitted request as its budgets and caps say: it
// returns the request to send (a rewritten clone, or req itself) and what
// was rewritten, and adjusts the reservations to the degraded estimate. A
// request that must be degraded or trimmed and cannot be, or whose
// degraded estimate overdraws a budget by more than its MaxOverdraft, is
// refused; its reservations are taken back.
func (b *Budgets) finalize(adm *budgetAdmission, info *requestInfo, plan *budgetPlan) (*http.Request, rewrite, *budgetRefusal) {
	refs := adm.refs
	req := adm.req
	required := -1
	reason := ""
	degraders := 0
	for i := range refs {
		r := &refs[i]
		if r.degrade == "" {
			continue
		}
		degraders++
		if r.degrade == "exhausted" && required < 0 {
			required = i
		}
		if reason == "" {
			reason = r.degrade
		}
		if plan.model == "" {
			plan.model = r.d.b.Degrade.Model
		}
		plan.lowerMax(r.d.b.Degrade.MaxTokens)
	}
	if plan.model == "" && plan.maxTokens == 0 {
		b.admitted(adm)
		return req, rewrite{}, nil
	}
	fail := func(r *budgetRefusal) (*http.Request, rewrite, *budgetRefusal) {
		b.undo(req.Context(), refs, adm.at)
		return nil, rewrite{}, r
	}

	send, rw, ok := rewriteRequest(req, info, plan.model, plan.maxTokens)
	if !ok {
		switch {
		case plan.byCap:
			return fail(&budgetRefusal{d: refs[0].d, refusal: &Refusal{Reason: ReasonTooLarge,
				Message: "the request's max_tokens is over a per-request cap, and its body cannot be rewritten"}})
		case required >= 0:
			d := refs[required].d
			return fail(&budgetRefusal{d: d, refusal: &Refusal{Reason: ReasonBudgetExhausted,
				Message: "budget " + strconv.Quote(d.name) + " is spent for this window (" + d.describe() +
					"), and the request cannot be degraded (its body cannot be rewritten)"}})
		}
		b.admitted(adm)
		return req, rewrite{}, nil // degrading early is best effort
	}

	// The degraded request's estimate and costs.
	adm.est = plan.capped(adm.est)
	costs := make([]BudgetCounts, len(refs))
	b.costs(refs, adm.est, costs)
	now := time.Now()
	for i := range refs {
		r := &refs[i]
		if r.degrade == "exhausted" && r.d.b.MaxOverdraft > 0 &&
			!r.d.fits(r.used.sub(r.cost).floor(), costs[i], 1+r.d.b.MaxOverdraft) {
			d := r.d
			last := &r.slots[len(r.slots)-1]
			*last = last.sub(r.cost) // the window without this request
			return fail(&budgetRefusal{d: d, refusal: &Refusal{Reason: ReasonBudgetExhausted,
				RetryAfter: d.fitWait(r.slots, now, costs[i], 1),
				Message: "budget " + strconv.Quote(d.name) + " is spent for this window (" + d.describe() +
					"), past the overdraft allowed to degraded requests"}})
		}
	}
	for i := range refs {
		r := &refs[i]
		if r.reserved && costs[i] != r.cost {
			b.storeAdd(req.Context(), r, adm.at, now, costs[i].sub(r.cost))
			if costs[i].Tokens() < r.cost.Tokens() {
				b.wakeKey(r.key)
			}
		}
		r.cost = costs[i]
	}
	b.admitted(adm)
	if !rw.changed() {
		return req, rw, nil
	}
	name := ""
	if degraders > 0 {
		for i := range refs {
			if refs[i].degrade != "" {
				if name == "" {
					name = refs[i].d.name
				}
				b.count(refs[i].d, func(s *BudgetStats) { s.Degraded++ })
			}
		}
	} else {
		reason = "cap"
		for i := range refs {
			if refs[i].d.b.MaxOutputTokens > 0 && refs[i].d.b.TrimOutput {
				name = refs[i].d.name
				b.count(refs[i].d, func(s *BudgetStats) { s.Degraded++ })
				break
			}
		}
	}
	if b.s.OnDegrade != nil {
		b.s.OnDegrade(DegradeEvent{Request: req, Budget: name, Tenant: adm.tenant, Reason: reason,
			FromModel: rw.fromModel, Model: rw.model, FromMaxTokens: rw.fromMax, MaxTokens: rw.maxTokens})
	}
	return send, rw, nil
}
