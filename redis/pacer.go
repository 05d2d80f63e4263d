package redis

import (
	"context"
	"time"

	"github.com/llmhttp/llmhttp"
)

// reportGain is the share of the difference believed when the server
// reports more than the shared level, beyond the young debits: other
// pacers read the same report.
const reportGain = 0.5

// pacerStore is the [llmhttp.PacerStore] of a Store.
type pacerStore struct {
	st      *Store
	keys    keyCache
	tickets tickets
}

var _ llmhttp.PacerStore = (*pacerStore)(nil)

// Pacer returns the store as an [llmhttp.PacerStore], for
// [llmhttp.PacerSettings.Store]: pacers in every process using it share,
// per partition, their buckets and their gate, so that together they send
// what the provider allows the credential, and one process's 429 holds back
// all of them.
//
// Each bucket is a GCRA state in the format of
// github.com/go-redis/redis_rate/v10. Its script cannot reserve (it only
// admits or refuses, so waiting means polling, and small requests starve a
// large one), clamp a refund, force a debit or touch more than one bucket
// per round trip; two small scripts do what the pacer needs in one round
// trip each. Reserve debits every dimension at once, after the gate, and
// returns the wait — unless that wait is beyond the horizon (see
// Settings.Horizon): then it debits nothing, queues a ticket that later
// reservations leave room for, and says when to come back. Settle refunds
// (never above the capacity), force-debits output beyond the estimate,
// closes the gate (never shortening it), and resynchronises the buckets
// from the server's report: a lower report wins at once, a higher one is
// believed in part beyond the reservations the server cannot have counted
// yet (see Settings.CountLag), so the shared level converges on the
// server's even when other clients use the key, or a refund was lost. The
// clock is Redis's (TIME), so processes whose clocks disagree still agree.
// A redis_rate Limiter may take from the same buckets (see
// [Store.BucketKey]).
//
// While Redis is out of use (see [Store]), Reserve and Settle fail at once,
// and the pacer paces from its own view of the rate-limit headers, as it
// does without a store.
func (st *Store) Pacer() llmhttp.PacerStore { return &st.pacer }

// reservePolicy is how Reserve treats long waits, and Settle high reports.
type reservePolicy struct {
	horizon  time.Duration // ≤ 0: every reservation stands
	countLag time.Duration
	gain     float64 // of a higher report, beyond the young debits
}

// policy returns the store's policy. Without declines (a negative
// Horizon) a reservation may wait far longer than CountLag, so a higher
// report is not believed at all.
func (p *pacerStore) policy() reservePolicy {
	if p.st.s.Horizon < 0 {
		return reservePolicy{countLag: p.st.s.CountLag}
	}
	// A reservation may wait a horizon before it is even sent: it is young
	// that much longer.
	return reservePolicy{horizon: p.st.s.Horizon, countLag: p.st.s.CountLag + p.st.s.Horizon, gain: reportGain}
}

// Reserve implements [llmhttp.PacerStore].
func (p *pacerStore) Reserve(ctx context.Context, key llmhttp.Partition, r llmhttp.Reservation) (llmhttp.Grant, error) {
	g, reserved, err := p.reserve(ctx, key, r, p.policy())
	g.Declined = err == nil && !reserved
	return g, err
}

// reserve runs reserve.lua; reserved reports that the cost was debited.
func (p *pacerStore) reserve(ctx context.Context, key llmhttp.Partition, r llmhttp.Reservation, pol reservePolicy) (g llmhttp.Grant, reserved bool, err error) {
	const n = llmhttp.NumDimensions
	var args [3*n + 4]any
	for d := range n {
		args[d] = r.Cost[d]
		args[n+d] = r.Limits[d].Capacity
		args[2*n+d] = r.Limits[d].PerSecond
	}
	args[3*n] = limitsTTL
	args[3*n+1] = pol.horizon.Seconds()
	args[3*n+2] = pol.countLag.Seconds()
	tk := ticketKey{p: key, id: r.ID}
	if r.ID == 0 {
		tk.c = r.Cost
	}
	had := int64(0)
	if pol.horizon > 0 {
		had = p.tickets.take(tk, time.Now())
	}
	args[3*n+3] = had
	keys := p.keys.keys(key)
	var res []int64
	err = p.st.call(ctx, func(ctx context.Context) error {
		var err error
		res, err = reserveScript.Run(ctx, p.st.rdb, keys[:], args[:]...).Int64Slice()
		return err
	})
	if err != nil {
		return g, false, err
	}
	if len(res) != 5+int(n) {
		return g, false, errReply
	}
	g.Wait = time.Duration(max(res[0], 0)) * time.Microsecond
	reserved = res[3] == 1
	if pol.horizon > 0 && (had != 0 || !reserved) {
		// The queue keeps a ticket until a while after its holder should
		// be back (reserve.lua); forget it a little earlier here.
		p.tickets.done(tk, had, reserved, res[4], time.Now().Add(g.Wait+2*pol.horizon))
	}
	if res[1] > 0 {
		g.GateUntil = r.Now.Add(time.Duration(res[1]) * time.Microsecond)
	}
	for d := range n {
		if res[2]&(1<<d) != 0 {
			g.Known[d] = true
			g.Levels[d] = float64(res[5+d]) / 1000
		}
	}
	return g, reserved, nil
}

// Settle implements [llmhttp.PacerStore].
func (p *pacerStore) Settle(ctx context.Context, key llmhttp.Partition, s llmhttp.Settlement) error {
	return p.settle(ctx, key, s, p.policy())
}

// settle runs settle.lua.
func (p *pacerStore) settle(ctx context.Context, key llmhttp.Partition, s llmhttp.Settlement, pol reservePolicy) error {
	const n = llmhttp.NumDimensions
	var args [5*n + 5]any
	bits := 0
	for d := range n {
		args[d] = s.Refund[d]
		args[n+d] = s.Debit[d]
		args[2*n+d] = s.Reported[d]
		if s.ReportedKnown[d] {
			bits |= 1 << d
		}
		args[3*n+1+d] = s.Limits[d].Capacity
		args[4*n+1+d] = s.Limits[d].PerSecond
	}
	args[3*n] = bits
	var closeFor float64
	if !s.GateUntil.IsZero() {
		closeFor = s.GateUntil.Sub(s.Now).Seconds()
	}
	args[5*n+1] = closeFor
	args[5*n+2] = limitsTTL
	args[5*n+3] = pol.countLag.Seconds()
	args[5*n+4] = pol.gain
	keys := p.keys.keys(key)
	return p.st.call(ctx, func(ctx context.Context) error {
		return settleScript.Run(ctx, p.st.rdb, keys[:], args[:]...).Err()
	})
}
