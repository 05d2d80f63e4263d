package llmhttp

import (
	"math"
	"net/http"
	"slices"
	"time"
)

// This file is the budget layer's way out: charging a request's actual
// usage when its response ends, thresholds, and the queues of requests
// waiting for room under BudgetDelay.

// outputLearnRate is the weight of a new response in a budget's average
// output per request.
const outputLearnRate = 0.1

// maxBudgetKeys is the number of budget keys (budgets × tenants) above
// which the layer forgets idle ones.
const maxBudgetKeys = 10_000

// settle accounts for an admitted request's outcome: a response with a
// body is charged its usage when the body ends; a request that got no
// answer from the provider (a transport error, an inner local reply) is
// refunded; one the provider answered with an error is refunded its
// tokens.
func (b *Budgets) settle(adm *budgetAdmission, resp *http.Response, err error) {
	switch {
	case err != nil || resp == nil:
		adm.refund(false)
	case isLocalReply(resp):
		adm.refund(false)
	case resp.StatusCode/100 != 2:
		adm.refund(true)
	default:
		TapUsage(resp, adm.charge)
	}
}

// isLocalReply reports whether resp is a local reply of an inner layer.
func isLocalReply(resp *http.Response) bool {
	_, ok := refusalOf(resp)
	return ok
}

// refund takes back the request's reservations; keepRequest keeps the
// request itself counted.
func (adm *budgetAdmission) refund(keepRequest bool) {
	b := adm.b
	if len(adm.refs) == 0 {
		return
	}
	now := time.Now()
	kept := BudgetCounts{}
	if keepRequest {
		kept.Requests = 1
	}
	adm.apply(now, func(r *budgetRef) BudgetCounts { return kept.sub(r.cost) }, nil)
	for i := range adm.refs {
		b.count(adm.refs[i].d, func(s *BudgetStats) { s.Charged = s.Charged.add(kept) })
	}
}

// charge charges the request's actual usage u, replacing its estimate.
func (adm *budgetAdmission) charge(u Usage) {
	b := adm.b
	uc := u
	if !uc.HasInput {
		uc.InputTokens = adm.est.InputTokens
	}
	in, out := uc.InputTokens, uc.OutputTokens
	if b.s.Count != nil {
		in, out = b.s.Count(uc)
	}
	actual := BudgetCounts{Requests: 1, InputTokens: max(in, 0), OutputTokens: max(out, 0)}
	now := time.Now()
	var events []ThresholdEvent
	adm.apply(now, func(r *budgetRef) BudgetCounts { return actual.sub(r.cost) }, &events)

	b.mu.Lock()
	for i := range adm.refs {
		d := adm.refs[i].d
		d.stats.Charged = d.stats.Charged.add(actual)
		if u.HasOutput {
			if d.avgOut == 0 {
				d.avgOut = max(float64(u.OutputTokens), 1)
			} else {
				d.avgOut += outputLearnRate * (float64(u.OutputTokens) - d.avgOut)
				d.avgOut = max(d.avgOut, 1)
			}
		}
	}
	b.mu.Unlock()
	b.fireThresholds(events)
	if b.s.OnUsage != nil {
		b.s.OnUsage(UsageEvent{Request: adm.req, Usage: u, Charged: actual, Budgets: adm.names, Tenant: adm.tenant})
	}
}

// apply adds delta(ref) to each of the request's budgets, in the slot of
// its reservation while that slot is in the window (otherwise its positive
// part now: the reservation has expired with its slot), and collects the
// thresholds crossed into events (when not nil).
func (adm *budgetAdmission) apply(now time.Time, delta func(*budgetRef) BudgetCounts, events *[]ThresholdEvent) {
	b := adm.b
	ctx := adm.req.Context()
	bufp := slotPool.Get().(*[]BudgetCounts)
	defer slotPool.Put(bufp)
	for i := range adm.refs {
		r := &adm.refs[i]
		dl := delta(r)
		at := adm.at
		if !r.reserved || r.d.w.Slot(at) <= r.d.w.Slot(now)-int64(r.d.w.Slots) {
			at, dl = now, dl.floor()
		}
		if dl.IsZero() {
			continue
		}
		if cap(*bufp) < r.d.w.Slots {
			*bufp = make([]BudgetCounts, 0, r.d.w.Slots)
		}
		r.slots = (*bufp)[:r.d.w.Slots]
		if b.storeAdd(ctx, r, at, now, dl) && events != nil {
			*events = append(*events, b.crossed(adm, r, now)...)
		}
		r.slots = nil
		if dl.Requests < 0 || dl.InputTokens < 0 || dl.OutputTokens < 0 {
			b.wakeKey(r.key)
		}
	}
}

// admitted records an admitted request: its count, and the thresholds its
// reservations reached.
func (b *Budgets) admitted(adm *budgetAdmission) {
	now := time.Now()
	var events []ThresholdEvent
	for i := range adm.refs {
		r := &adm.refs[i]
		b.count(r.d, func(s *BudgetStats) { s.Admitted++ })
		if r.reserved {
			events = append(events, b.crossed(adm, r, now)...)
		}
	}
	b.fireThresholds(events)
}

// crossed returns the thresholds of r's budget that its use (ref.used)
// reaches and that have not fired in the current window, marking them
// fired.
func (b *Budgets) crossed(adm *budgetAdmission, r *budgetRef, now time.Time) []ThresholdEvent {
	d := r.d
	if len(d.thresholds) == 0 || !d.limitsSet() {
		return nil
	}
	frac := d.fraction(r.used)
	if frac < d.thresholds[0] {
		return nil
	}
	cur := d.w.Slot(now)
	tenant := ""
	if d.b.PerTenant {
		tenant = adm.tenant
	}
	var events []ThresholdEvent
	b.mu.Lock()
	k := b.keyState(r.key, d.w, cur)
	if len(k.fired) != len(d.thresholds) {
		k.fired = make([]int64, len(d.thresholds))
		for i := range k.fired {
			k.fired[i] = math.MinInt64 / 2
		}
	}
	for i, th := range d.thresholds {
		if frac >= th && k.fired[i] <= cur-int64(d.w.Slots) {
			k.fired[i] = cur
			events = append(events, ThresholdEvent{Budget: d.name, Tenant: tenant, Threshold: th,
				Fraction: frac, Used: r.used, Request: adm.req})
		}
	}
	b.mu.Unlock()
	return events
}

// fireThresholds calls OnThreshold with each event.
func (b *Budgets) fireThresholds(events []ThresholdEvent) {
	if b.s.OnThreshold == nil {
		return
	}
	for _, e := range events {
		b.s.OnThreshold(e)
	}
}

// keyState returns the state of a store key, creating it; b.mu is held.
func (b *Budgets) keyState(key string, w BudgetWindow, cur int64) *budgetKey {
	k := b.keys[key]
	if k == nil {
		b.sweepKeys()
		k = &budgetKey{w: w}
		b.keys[key] = k
	}
	k.touched = max(k.touched, cur)
	return k
}

// sweepKeys is called before a key is added: once that would make more
// than maxBudgetKeys, it forgets the keys that have no waiter and were not
// used within their window; b.mu is held.
func (b *Budgets) sweepKeys() {
	if b.sweepAt < maxBudgetKeys {
		b.sweepAt = maxBudgetKeys
	}
	if len(b.keys) < b.sweepAt {
		return
	}
	now := time.Now()
	for key, k := range b.keys {
		if len(k.waiters) == 0 && k.touched <= k.w.Slot(now)-int64(k.w.Slots) {
			delete(b.keys, key)
		}
	}
	b.sweepAt = max(maxBudgetKeys, 2*len(b.keys))
}

// budgetWaiter is a request waiting for room in a budget (BudgetDelay).
type budgetWaiter struct {
	key  string
	prio Priority
	seq  uint64
	wake chan struct{} // buffered 1: "look again"
}

// before reports whether a goes before b: higher priority, then arrival.
func (a *budgetWaiter) before(b *budgetWaiter) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	return a.seq < b.seq
}

func (a *budgetWaiter) notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// enqueue adds a waiter of priority prio to key's queue.
func (b *Budgets) enqueue(key string, w BudgetWindow, prio Priority) *budgetWaiter {
	wt := &budgetWaiter{key: key, prio: prio, seq: b.seq.Add(1), wake: make(chan struct{}, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.keyState(key, w, w.Slot(time.Now()))
	i, _ := slices.BinarySearchFunc(k.waiters, wt, func(x, t *budgetWaiter) int {
		if x.before(t) {
			return -1
		}
		return 1
	})
	k.waiters = slices.Insert(k.waiters, i, wt)
	return wt
}

// isHead reports whether w is first in its queue.
func (b *Budgets) isHead(w *budgetWaiter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.keys[w.key]
	return k != nil && len(k.waiters) > 0 && k.waiters[0] == w
}

// dequeue takes w out of its queue, waking the next one when w was first.
func (b *Budgets) dequeue(w *budgetWaiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.keys[w.key]
	if k == nil {
		return
	}
	i := slices.Index(k.waiters, w)
	if i < 0 {
		return
	}
	k.waiters = slices.Delete(k.waiters, i, i+1)
	if i == 0 && len(k.waiters) > 0 {
		k.waiters[0].notify()
	}
}

// wakeKey wakes the first waiter of key: room was given back.
func (b *Budgets) wakeKey(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k := b.keys[key]; k != nil && len(k.waiters) > 0 {
		k.waiters[0].notify()
	}
}
