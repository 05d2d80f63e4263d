package llmhttp

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// A Dimension is one of the rate limits the pacer keeps a bucket for.
type Dimension int

// Dimensions, in the order of [Amounts].
const (
	DimRequests       Dimension = iota // requests per window (RPM)
	DimRequestsPerDay                  // requests per day (Groq's RPD)
	DimTokens                          // combined tokens (OpenAI TPM)
	DimInputTokens                     // input tokens (Anthropic ITPM)
	DimOutputTokens                    // output tokens (Anthropic OTPM)
	NumDimensions
)

// String returns "requests", "requests_per_day", "tokens", "input_tokens" or
// "output_tokens".
func (d Dimension) String() string {
	if d >= 0 && d < NumDimensions {
		return pdimNames[d]
	}
	return "dimension(" + strconv.Itoa(int(d)) + ")"
}

// Amounts is a quantity per [Dimension]: requests or tokens.
type Amounts [NumDimensions]float64

// A BucketLimit is a shared bucket's capacity and refill rate. The zero
// BucketLimit means the dimension is not limited (not reported yet).
type BucketLimit struct {
	// Capacity is the most the bucket holds.
	Capacity float64
	// PerSecond is its refill: the limit over its window.
	PerSecond float64
}

// A PacerStore is the state that pacers in several processes using one
// credential share (design.md §8): per [Partition], a continuously
// refilling bucket for each [Dimension] and the gate. Set one in
// [PacerSettings.Store]; nil (the default) means none: each Pacer paces
// from its own view of the rate-limit headers, which is all the
// coordination processes then have. A Redis implementation (GCRA, with
// scripts for reserve, clamped refund and force-debit, and a "closed until"
// key for the gate) lives in the nested module
// github.com/llmhttp/llmhttp/redis.
//
// The pacer keeps its own buckets and gate as they are without a store,
// and uses them as the mirror of the shared ones. It calls the store from
// the request's goroutine, never while holding a lock, each call bounded by
// [PacerSettings.StoreTimeout] and the request's context:
//
//   - Reserve once per admission, after the request's turn has come in the
//     mirror (so the queue, its priorities and its concurrency cap stay
//     local, and only the head of each process's queue asks);
//   - Settle once per answer (and once more when a streamed answer ends).
//
// A call that fails or times out is skipped: the request goes on as the
// mirror decided, the answer's settlement is lost, and the failure is
// counted ([PacerStats.StoreErrors]). A store must be safe for concurrent
// use.
type PacerStore interface {
	// Reserve debits r.Cost from the shared buckets of key, which have the
	// limits r.Limits (the newest limits win: the store keeps those it was
	// last given), and returns how long from r.Now the caller must wait
	// before sending: 0 when the buckets held the cost, else the time
	// until their refill covers the debit, rounded up (a wait a
	// nanosecond short sends the request into a server bucket a fraction
	// of a token short). The debit stands (reserve-and-wait, like
	// x/time/rate's ReserveN), unless the store declines it (see
	// [Grant.Declined]): a store may keep requests from reserving far
	// ahead, and must then keep them in order itself (by
	// [Reservation.ID]), so that a large request is not starved by small
	// ones. A cost above a bucket's capacity is clamped to it. Reserve
	// also returns the levels after the debit (negative while in debt) and
	// when the shared gate opens. A caller that does not send after all
	// gives a debited cost back with Settle.
	Reserve(ctx context.Context, key Partition, r Reservation) (Grant, error)
	// Settle reconciles key's shared buckets and gate after an answer (see
	// [Settlement]).
	Settle(ctx context.Context, key Partition, s Settlement) error
}

// A Reservation asks a [PacerStore] for room for one request.
type Reservation struct {
	// Now is the pacer's clock. A store may keep its own (Redis TIME), so
	// that processes with skewed clocks agree; Grant.Wait is relative.
	Now time.Time
	// Cost is the request's cost in each dimension.
	Cost Amounts
	// Limits are the buckets' capacities and refills as this pacer knows
	// them; a zero BucketLimit leaves the dimension unlimited (or as the
	// store last knew it).
	Limits [NumDimensions]BucketLimit
	// ID identifies the request: a request declined (see [Grant.Declined])
	// asks again with the same ID, so that a store can keep its place in
	// line. It is random (64 bits) and never zero.
	ID uint64
}

// A Grant is a [PacerStore]'s answer to a [Reservation].
type Grant struct {
	// Wait is how long from Reservation.Now the caller must wait before
	// sending.
	Wait time.Duration
	// Levels are the shared buckets' levels after the debit (negative in
	// debt); Known tells which dimensions the store keeps a bucket for.
	Levels Amounts
	Known  [NumDimensions]bool
	// GateUntil is when the shared gate opens; zero or past when open.
	GateUntil time.Time
	// Declined reports that the store debited nothing: the wait would
	// have been longer than the store lets a request reserve ahead (a
	// reservation made far ahead counts every one before it at its full
	// estimated cost, max_tokens included, much of which comes back when
	// those requests end). Wait is then how long until asking again makes
	// sense, and Levels are the levels without the debit. The caller
	// waits, or gives up with a refusal when even that wait does not fit
	// its deadline, and asks again with the same Reservation.ID. The zero
	// value, false, means the debit stands.
	Declined bool
}

// A Settlement reconciles a [PacerStore]'s buckets and gate after an
// answer.
type Settlement struct {
	// Now is the pacer's clock.
	Now time.Time
	// Limits are as in [Reservation].
	Limits [NumDimensions]BucketLimit
	// Refund is given back: the unused part of a reservation (max_tokens
	// reserved, fewer generated), or the whole cost of a request the server
	// did not serve or the caller did not send. The store clamps it so that
	// no bucket rises above its capacity (GCRA: the arrival time never
	// moves before now) — a refund is never credit for later.
	Refund Amounts
	// Debit is charged without admission check (force-debit): output
	// beyond the estimate. It may leave a bucket in debt, which holds back
	// the next reservations of every process.
	Debit Amounts
	// Reported are the server's remaining counts, less what this process
	// has in flight that they cannot include, for the dimensions Known
	// marks: a shared level above a report is lowered to it (the server's
	// word wins); one below it stays (other processes' reservations may not
	// have reached the server yet).
	Reported      Amounts
	ReportedKnown [NumDimensions]bool
	// GateUntil, when not zero, closes the shared gate until then (a 429's
	// Retry-After); the store never shortens a closed gate.
	GateUntil time.Time
}

// defaultStoreTimeout is PacerSettings.StoreTimeout's default.
const defaultStoreTimeout = 50 * time.Millisecond

// storeCtx returns the context of a store call for a request of context
// ctx: bounded by the store timeout, and not cancelled by the request's
// own end for a settlement (detached), which must reach the store even
// when the caller has gone.
func (p *Pacer) storeCtx(ctx context.Context, detached bool) (context.Context, context.CancelFunc) {
	if detached {
		ctx = context.WithoutCancel(ctx)
	}
	return context.WithTimeout(ctx, p.s.StoreTimeout)
}

// limitsLocked returns the buckets' limits, for a store call. The caller
// holds pp.mu.
func (pp *pacerPart) limitsLocked() (l [NumDimensions]BucketLimit) {
	for d := range pdCount {
		if b := pp.store.bucket(d); b.known() {
			l[d] = BucketLimit{Capacity: b.capacity, PerSecond: b.rate}
		}
	}
	return l
}

// sharedLine keeps in order the requests of a partition that the store
// declined: only the head asks the store again, when the store said to;
// the others wait their turn here, so that under overload a process keeps
// one request asking however many wait (one Redis round trip per
// admission, not one per request per horizon), and sends them in the
// order they came. Its fields are guarded by pacerPart.mu.
type sharedLine struct {
	busy    bool      // the head is waiting to ask again
	next    time.Time // when the head asks again
	waiters []*lineWaiter
}

// A lineWaiter is a request in a sharedLine behind its head.
type lineWaiter struct {
	turn   chan struct{} // closed when it becomes the head
	handed bool          // it is the head (turn closed)
}

// joinLine waits, behind the head of the partition's line, for flight f's
// turn to ask the store; the caller holds pp.mu, which joinLine releases.
// It returns with f at the head of the line, or with a refusal (the line's
// wait does not fit the request's deadline or MaxWait) or the context's
// error, f then settled here.
func (pp *pacerPart) joinLine(req *http.Request, f *pflight, t **time.Timer) (*Refusal, error) {
	ctx := req.Context()
	now := time.Now()
	allow := pp.allowance(ctx, now, f.arrived)
	refuse := func(wait time.Duration) *Refusal {
		pp.refused++
		pp.mu.Unlock()
		pp.unsend(f, ctx, false)
		rf := pp.sharedRefusal(wait)
		pp.waited(req, time.Since(f.arrived), "shared", rf, nil)
		return rf
	}
	if wait := pp.line.next.Sub(now); wait > allow {
		return refuse(wait), nil
	}
	w := &lineWaiter{turn: make(chan struct{})}
	pp.line.waiters = append(pp.line.waiters, w)
	pp.mu.Unlock()

	var expired <-chan time.Time
	if allow < time.Duration(1<<63-1) {
		resetTimer(t, allow)
		expired = (*t).C
	}
	var err error
	select {
	case <-w.turn:
		return nil, nil
	case <-expired:
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	pp.mu.Lock()
	if w.handed {
		// Its turn came as it gave up: the next one's turn.
		pp.passLineLocked()
	} else {
		pp.line.waiters = slices.DeleteFunc(pp.line.waiters, func(x *lineWaiter) bool { return x == w })
	}
	if err == nil {
		return refuse(max(time.Until(pp.line.next), 0)), nil
	}
	pp.mu.Unlock()
	pp.unsend(f, ctx, false)
	pp.waited(req, time.Since(f.arrived), "shared", nil, err)
	return nil, err
}

// sharedRefusal returns the refusal of a request whose wait for the shared
// store does not fit its deadline or MaxWait.
func (pp *pacerPart) sharedRefusal(wait time.Duration) *Refusal {
	return &Refusal{
		Reason: ReasonWaitTooLong, RetryAfter: wait,
		Message: "predicted wait " + wait.Round(time.Millisecond).String() +
			" (shared store) for " + pp.key.Model + " exceeds the request's deadline or the pacer's MaxWait",
	}
}

// passLineLocked gives the head of the line to the next waiter, or frees
// it. The caller holds pp.mu and was the head.
func (pp *pacerPart) passLineLocked() {
	if len(pp.line.waiters) == 0 {
		pp.line.busy = false
		return
	}
	w := pp.line.waiters[0]
	pp.line.waiters[0] = nil
	pp.line.waiters = pp.line.waiters[1:]
	w.handed = true
	close(w.turn)
}

// resetTimer sets *t to fire after d, creating it on first use.
func resetTimer(t **time.Timer, d time.Duration) {
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
}

// reserveShared reserves flight f's cost in the shared store, after the
// mirror admitted it, and waits as long as the store says, and for the
// shared gate (closed by another process's 429). A reservation the store
// declines is asked again when the store says, at the head of the
// partition's line (see [sharedLine]); while the line is taken, a request
// joins it without asking. It returns a refusal (the wait does not fit the
// request's deadline or MaxWait) or the context's error, after which the
// caller must not send; f is then settled here. A store failure is counted
// and ignored: the request goes as the mirror decided.
func (pp *pacerPart) reserveShared(req *http.Request, f *pflight) (*Refusal, error) {
	st, arrived := pp.p.s.Store, f.arrived
	ctx := req.Context()
	id := rand.Uint64() | 1 // never zero
	var (
		t      *time.Timer
		waited bool
		head   bool // f is the head of the line
	)
	defer func() {
		if t != nil {
			t.Stop()
		}
		if head {
			pp.mu.Lock()
			pp.passLineLocked()
			pp.mu.Unlock()
		}
	}()
	pp.mu.Lock()
	f.pending = true
	if pp.line.busy {
		if rf, err := pp.joinLine(req, f, &t); rf != nil || err != nil {
			return rf, err
		}
		head, waited = true, true
	} else {
		pp.mu.Unlock()
	}
	for {
		pp.mu.Lock()
		r := Reservation{Now: time.Now(), Cost: Amounts(f.cost), Limits: pp.limitsLocked(), ID: id}
		pp.mu.Unlock()

		cctx, cancel := pp.p.storeCtx(ctx, false)
		g, err := st.Reserve(cctx, pp.key, r)
		cancel()
		if err != nil {
			if err := context.Cause(ctx); err != nil {
				// The request's own end, not the store's failure.
				pp.unsend(f, ctx, false)
				pp.waited(req, time.Since(arrived), "shared", nil, err)
				return nil, err
			}
			pp.mu.Lock()
			pp.storeErrors++
			f.pending = false // sent as if reserved
			pp.mu.Unlock()
			return nil, nil
		}

		var ev gateEvents
		pp.mu.Lock()
		now := time.Now()
		for d := range pdCount {
			if g.Known[d] {
				if b := pp.store.bucket(d); b.known() {
					b.advance(pp.store.at(now))
					b.level = min(b.level, g.Levels[d])
				}
			}
		}
		if g.GateUntil.After(now) && pp.store.closeGate(g.GateUntil) {
			pp.gateOpenSeen = false
			ev.closed = &GateEvent{Partition: pp.key, Closed: true, Until: g.GateUntil}
		}
		wait := g.Wait - now.Sub(r.Now)
		if g.GateUntil.After(now) {
			wait = max(wait, g.GateUntil.Sub(now))
		}
		if g.Declined {
			pp.declined++
			if !head && pp.line.busy {
				// Another request of this process is asking already.
				if rf, err := pp.joinLine(req, f, &t); rf != nil || err != nil {
					ev.fire(&pp.p.s)
					return rf, err
				}
				ev.fire(&pp.p.s)
				head, waited = true, true
				continue
			}
			head, pp.line.busy = true, true
			pp.line.next = now.Add(wait)
		} else {
			f.pending = false
			if head {
				// Reserved: the next in line may ask now.
				head = false
				pp.passLineLocked()
			}
		}
		if wait > 0 {
			if allow := pp.allowance(ctx, now, arrived); wait > allow {
				pp.refused++
				pp.mu.Unlock()
				ev.fire(&pp.p.s)
				pp.unsend(f, ctx, !g.Declined)
				rf := pp.sharedRefusal(wait)
				pp.waited(req, now.Sub(arrived), "shared", rf, nil)
				return rf, nil
			}
		}
		pp.mu.Unlock()
		ev.fire(&pp.p.s)
		if wait > 0 {
			waited = true
			resetTimer(&t, wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				pp.unsend(f, ctx, !g.Declined)
				err := context.Cause(ctx)
				pp.waited(req, time.Since(arrived), "shared", nil, err)
				return nil, err
			}
		}
		if g.Declined {
			continue
		}
		if waited {
			pp.mu.Lock()
			f.sent = time.Now()
			pp.mu.Unlock()
			pp.waited(req, time.Since(arrived), "shared", nil, nil)
		}
		return nil, nil
	}
}

// unsend settles flight f, admitted but not sent after all, locally and,
// when its cost stands there (reserved), in the shared store.
func (pp *pacerPart) unsend(f *pflight, ctx context.Context, reserved bool) {
	pp.mu.Lock()
	s := Settlement{Now: time.Now(), Refund: Amounts(f.cost), Limits: pp.limitsLocked()}
	pp.settle(s.Now, f, false, -1)
	// A request never sent is no request either.
	pp.store.give(s.Now, pcost{pdRequests: f.cost[pdRequests], pdRequestsPerDay: f.cost[pdRequestsPerDay]})
	pp.sent--
	if h := pp.queue.head(); h != nil {
		h.notify()
	}
	pp.mu.Unlock()
	if reserved {
		pp.settleShared(ctx, &s)
	}
}

// settleShared sends a settlement to the shared store, if any, counting a
// failure.
func (pp *pacerPart) settleShared(ctx context.Context, s *Settlement) {
	st := pp.p.s.Store
	if st == nil || s.empty() {
		return
	}
	cctx, cancel := pp.p.storeCtx(ctx, true)
	err := st.Settle(cctx, pp.key, *s)
	cancel()
	if err != nil {
		pp.mu.Lock()
		pp.storeErrors++
		pp.mu.Unlock()
	}
}

// empty reports whether s changes nothing.
func (s *Settlement) empty() bool {
	for d := range NumDimensions {
		if s.Refund[d] > 0 || s.Debit[d] > 0 || s.ReportedKnown[d] {
			return false
		}
	}
	return s.GateUntil.IsZero()
}

// reportedLocked fills s's Reported from lim: the lowest level each
// remaining allows (within its rounding), less the cost in flight that the
// report cannot include. The caller holds pp.mu.
func (pp *pacerPart) reportedLocked(s *Settlement, lim *Limits, now time.Time) {
	var u pcost
	computed := false
	for d := range pdCount {
		rep := limitOf(lim, d)
		if !rep.HasRemaining || !pp.store.bucket(d).known() {
			continue
		}
		if !computed {
			u, computed = pp.uncounted(now, true), true
		}
		// The lowest the truth can be: Anthropic rounds to the thousand.
		low := float64(rep.Remaining)
		if r := roundingOf(pp.provider, d); r > 1 {
			low -= r / 2
		}
		s.Reported[d] = math.Max(low-u[d], -float64(rep.Limit))
		s.ReportedKnown[d] = true
	}
}
