package llmhttp

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PacerSettings configures a [Pacer]. The zero value is ready to use: every
// field's zero value means the documented default. NewPacer copies the
// settings; changing them afterwards has no effect.
type PacerSettings struct {
	// MaxWait is the longest a request may wait in the pacer. When the
	// predicted wait (the gate, the buckets, the requests queued ahead) is
	// longer, or longer than the time left before the request's context
	// deadline, the pacer answers at once with a local reply — status 429,
	// Llmhttp-Refusal: wait-too-long, Retry-After: the predicted wait (see
	// [Refusal]) — instead of waiting. The check is repeated whenever the
	// request looks again, so a gate closed while it waits refuses it as
	// soon as the wait no longer fits. 0 means 60 s (the retry layer's
	// default MaxRetryAfter); a negative value means no maximum: only the
	// context deadline bounds the wait.
	MaxWait time.Duration

	// MaxConcurrent caps the requests of one partition in flight; others
	// wait in the queue. A streamed response counts until its body is read
	// to the end or closed, any other until its head arrives. 0 means no
	// cap.
	MaxConcurrent int

	// Limits are rate limits known before any response, per model (the
	// partition's Model; the key "" applies to every model not listed), so
	// that the very first burst is paced: a provider's published tier
	// limits, say. Of each Limit, Limit and Window (0: a minute; the prior
	// the server's resets may overrule, see [Pacer]) are used,
	// and Remaining when HasRemaining (otherwise the bucket starts full).
	// In a partition of [LaneFast], FastInputTokens and FastOutputTokens,
	// when set, stand for the input and output tokens.
	// The server's headers take over each dimension they report. nil means
	// none: until the first response the pacer lets traffic through.
	Limits map[string]Limits
	// LimitsFunc, if set, gives the limits known up front for a partition,
	// in place of Limits. It is called once per partition, outside any
	// lock.
	LimitsFunc func(Partition) Limits

	// Estimator predicts each request's cost. nil means the pacer's own
	// estimate (see [Estimator]).
	Estimator Estimator

	// Partition names the partition of a request: the pacer keeps separate
	// buckets, gate and queue for each. nil means [DefaultPartition]
	// (scheme+host, credential fingerprint, model, lane).
	Partition func(*http.Request) Partition

	// Classifier tells what each response means (a throttle, an overload,
	// a quota…). nil means [Classify].
	Classifier Classifier

	// OutputCharging is the rule the provider charges output tokens by.
	// The default, OutputAuto, starts from the provider's documented rule —
	// OpenAI reserves max_tokens, Anthropic (2026) counts only generated
	// tokens — and switches when the headers contradict it: a reported
	// remaining higher than the reservations in flight allow means
	// nothing is reserved; a 429 with output tokens still remaining, fewer
	// than the request's max_tokens, or resets that move earlier (tokens
	// given back) mean reservations are made. Under "generated" the pacer
	// charges each request the average output it learned (capped by
	// max_tokens), and subtracts the output of requests in flight from
	// every reported remaining.
	OutputCharging OutputCharging

	// SlowDownFactor is the multiplicative decrease of the sending rate
	// after a slow_down answer ([ClassSlowDown]): 0 means 0.5
	// (llm-wire §5.2 row 11); a value ≥ 1 or negative turns it off.
	//
	// The rate cut is the partition's sending rate measured over the last
	// 5 s, and only when at least 5 requests were sent in that time: a
	// quiet partition is not slowed down. A cut never goes below 1 request
	// a second, nor below a tenth of the server's own request limit (its
	// *-limit-requests per window). Only an answer to a request sent after
	// the last cut cuts again (one decrease per round trip).
	SlowDownFactor float64
	// OverloadFactor is the decrease after an overload answer
	// ([ClassOverloaded]: 529, 503 overloaded): 0 means 0.7 (AWS adaptive
	// retry's β); a value ≥ 1 or negative turns it off.
	OverloadFactor float64
	// RecoveryTime is how long the sending rate takes to climb back
	// linearly (additive increase) from a cut to the rate before it; the
	// cap is then lifted. 0 means 1 minute.
	RecoveryTime time.Duration

	// GateSpacing is the gap between the requests released when a closed
	// gate opens, so they do not leave as a herd; the buckets may space
	// them further. 0 means 25 ms; a negative value releases them at once.
	GateSpacing time.Duration
	// Jitter returns the extra gap (≥ 0) added to each release gap. nil
	// means a uniform pick from [0, spacing/2]; return 0 for exact gaps.
	Jitter func(spacing time.Duration) time.Duration
	// UnhintedDelay is how long a 429 that gives no wait at all (no
	// Retry-After, no exhausted bucket) closes the gate. 0 means 1 s; a
	// negative value leaves the gate open.
	UnhintedDelay time.Duration

	// QuotaLatch is how long a partition's requests are refused locally
	// (status 429, Llmhttp-Refusal: quota-exhausted) after a quota answer
	// ([ClassQuota]) that says nothing of when it ends. A quota answer that
	// does (a daily bucket's reset) latches until then; a monthly spend cap
	// (Anthropic enforced_spend_limit_reached, OpenAI spend and usage
	// limits) until 00:00 UTC on the first of next month. 0 means 1
	// minute; a negative value turns the latch off.
	QuotaLatch time.Duration
	// MaxQuotaLatch, if positive, bounds every latch, so that raising a
	// spend limit takes effect without a restart.
	MaxQuotaLatch time.Duration

	// Store, if set, is the state shared with pacers in other processes
	// on the same credentials (see [PacerStore]); nil means none: each
	// Pacer paces from the headers alone, and pacers in one process should
	// share one Pacer.
	Store PacerStore
	// StoreTimeout bounds each call to Store, so that a slow or
	// unreachable store costs a request at most this long before the pacer
	// goes on without it. 0 means 50 ms.
	StoreTimeout time.Duration

	// OnWait, if set, is called after a request waited in the pacer, was
	// refused by it, or gave up waiting, from the request's goroutine and
	// outside any lock. It must be fast.
	OnWait func(WaitEvent)
	// OnGate, if set, is called when a response closes (or extends) a
	// partition's gate, and when the first request passes it after it
	// opened, outside any lock. It must be fast.
	OnGate func(GateEvent)
}

// Defaults of PacerSettings.
const (
	defaultMaxWait        = 60 * time.Second
	defaultSlowDownFactor = 0.5
	defaultOverloadFactor = 0.7
	defaultRecoveryTime   = time.Minute
	defaultGateSpacing    = 25 * time.Millisecond
	defaultUnhintedDelay  = time.Second
	defaultQuotaLatch     = time.Minute
)

// withDefaults returns s with its zero fields set to their defaults.
func (s PacerSettings) withDefaults() PacerSettings {
	if s.MaxWait == 0 {
		s.MaxWait = defaultMaxWait
	}
	if s.Classifier == nil {
		s.Classifier = Classify
	}
	if s.SlowDownFactor == 0 {
		s.SlowDownFactor = defaultSlowDownFactor
	}
	if s.OverloadFactor == 0 {
		s.OverloadFactor = defaultOverloadFactor
	}
	if s.RecoveryTime <= 0 {
		s.RecoveryTime = defaultRecoveryTime
	}
	if s.GateSpacing == 0 {
		s.GateSpacing = defaultGateSpacing
	}
	if s.Jitter == nil {
		s.Jitter = func(d time.Duration) time.Duration {
			if d <= 1 {
				return 0
			}
			return rand.N(d/2 + 1)
		}
	}
	if s.UnhintedDelay == 0 {
		s.UnhintedDelay = defaultUnhintedDelay
	}
	if s.QuotaLatch == 0 {
		s.QuotaLatch = defaultQuotaLatch
	}
	if s.StoreTimeout <= 0 {
		s.StoreTimeout = defaultStoreTimeout
	}
	return s
}

// WaitEvent describes a request that waited in the pacer, for
// [PacerSettings.OnWait].
type WaitEvent struct {
	// Request is the request. Do not modify it.
	Request *http.Request
	// Partition is the request's partition.
	Partition Partition
	// Waited is how long it waited.
	Waited time.Duration
	// Cause is what held it last: "gate", "stagger" (the staggered release
	// after the gate opened), a bucket ("requests", "requests_per_day",
	// "tokens", "input_tokens", "output_tokens"), "slow_down",
	// "concurrency", "queue" (requests ahead of it), or "quota".
	Cause string
	// Refusal is the pacer's refusal when it answered the request itself;
	// nil otherwise.
	Refusal *Refusal
	// Err is the context's error when the request gave up waiting.
	Err error
}

// GateEvent describes a partition's gate closing or opening, for
// [PacerSettings.OnGate].
type GateEvent struct {
	// Partition is the gate's partition.
	Partition Partition
	// Closed is true when a response closed or extended the gate, false
	// when the first request passed it after it opened.
	Closed bool
	// Until is when the gate opens.
	Until time.Time
	// Class and Status are those of the response that closed the gate.
	Class  Class
	Status int
}

// Pacer paces requests per partition (scheme+host, credential, model, and
// lane: Anthropic's fast mode has token limits of its own, see [LaneFast]) so
// that they reach the provider at the rate its rate-limit headers allow,
// and almost never hear 429 (design.md §4). For each partition it keeps:
//
//   - buckets for requests, requests per day, input, output and combined
//     tokens, like the provider's own, whose capacity comes from the
//     *-limit headers and whose level is resynchronised from *-remaining
//     (cross-checked with *-reset) on every response, 2xx and 429 alike,
//     less the cost of requests still in flight that the report cannot
//     include. The refill is limit/window, the window learned from the
//     resets — a bucket that holds remaining is full again
//     (limit − remaining)·window/limit later, which is what *-reset says —
//     with the headers' own window (a minute) as the prior, kept until the
//     resets rule it out (see windowTrack);
//   - a gate, closed by a 429 (or any answer with a server-given wait)
//     until then, so that every caller of the partition waits behind it,
//     and reopened with the waiters released one by one;
//   - a queue, ordered by [Priority] and then arrival, with an optional
//     concurrency cap;
//   - a sending-rate cap that slow_down and overload answers lower and
//     time raises again (AIMD);
//   - a quota latch after a billing or spend-cap answer.
//
// Pacers in several processes on one key see each other only through the
// headers: each measures what the reports show beyond its own charges as
// the others' consumption and refills its buckets for what is left; while
// a bucket is contended it keeps a margin and its share follows AIMD, so
// the shares converge. A store shared between the processes
// ([PacerSettings.Store], design.md §8) coordinates them exactly instead.
//
// A request whose predicted wait is longer than its context deadline or
// MaxWait is answered at once with a local 429 (a [Refusal]). Each request
// is charged an estimate before it is sent (see [Estimate]); what the
// responses' usage shows is learned for the next ones.
//
// There are no goroutines: state advances lazily from the time of each call
// and waits are timers raced against the request's context, so a Pacer
// needs no Close and runs on testing/synctest's fake clock. A Pacer is safe
// for concurrent use by multiple goroutines; share one between transports
// that use the same credentials.
type Pacer struct {
	s     PacerSettings
	seq   atomic.Uint64
	mu    sync.RWMutex
	parts map[Partition]*pacerPart
}

// NewPacer returns a Pacer configured by s.
func NewPacer(s PacerSettings) *Pacer {
	return &Pacer{s: s.withDefaults(), parts: make(map[Partition]*pacerPart)}
}

// Wrap returns next behind the pacer; p.Wrap is a [Middleware]. The
// returned RoundTripper forwards CloseIdleConnections to next. If next is
// nil, [http.DefaultTransport] is used.
func (p *Pacer) Wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &pacerTransport{p: p, next: next}
}

// pacerTransport is the RoundTripper Wrap returns.
type pacerTransport struct {
	p    *Pacer
	next http.RoundTripper
}

var (
	_ http.RoundTripper = (*pacerTransport)(nil)
	_ closeIdler        = (*pacerTransport)(nil)
	_ infoTripper       = (*pacerTransport)(nil)
)

// CloseIdleConnections forwards to the next RoundTripper.
func (t *pacerTransport) CloseIdleConnections() { closeIdle(t.next) }

// RoundTrip implements [http.RoundTripper]: it waits for the request's turn,
// sends it, and learns from the response.
func (t *pacerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := t.roundTripInfo(req, nil, time.Now())
	return resp, err
}

// roundTripInfo implements infoTripper. done is when the answer came, as
// the reconciliation read it.
func (t *pacerTransport) roundTripInfo(req *http.Request, info *requestInfo, now time.Time) (*http.Response, time.Time, error) {
	p := t.p
	info = infoFor(req, info)
	var pp *pacerPart
	if p.s.Partition != nil {
		pp = p.partition(p.s.Partition(req), info.provider)
	} else {
		pp = p.partitionOf(info)
	}
	est := Estimate{InputTokens: info.inputTokens, MaxOutputTokens: info.maxTokens}
	if p.s.Estimator != nil {
		// A custom estimator may be costly (a tokenizer, a count_tokens
		// call): it runs once per request, its result kept for the retries.
		if memo, ok := pp.memoEstimate(info); ok {
			est = memo
		} else {
			est = p.s.Estimator(req, est)
			est.InputTokens = max(est.InputTokens, 0)
			est.MaxOutputTokens = max(est.MaxOutputTokens, 0)
			est.OutputTokens = max(est.OutputTokens, 0)
		}
	}
	f, refusal, err := pp.admit(req, info, est, now)
	if f == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		if refusal != nil {
			return refusal.Response(req), time.Time{}, nil
		}
		return nil, time.Time{}, err
	}
	if p.s.Store != nil {
		if refusal, err := pp.reserveShared(req, f); refusal != nil || err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			if refusal != nil {
				return refusal.Response(req), time.Time{}, nil
			}
			return nil, time.Time{}, err
		}
	}
	sent := f.sent // when admitted
	if p.s.Store != nil {
		sent = time.Now() // after the store's answer
	}
	resp, _, err := sendOn(t.next, req, info, sent)
	done := pp.finish(req.Context(), f, info, resp, err)
	return resp, done, err
}

// partitionOf returns the state of info's partition, creating it on first
// use.
func (p *Pacer) partitionOf(info *requestInfo) *pacerPart {
	r := info.ref
	if pp := r.pacer.Load(); pp != nil && pp.p == p {
		return pp
	}
	pp := p.partition(info.partition, info.provider)
	r.pacer.Store(pp)
	return pp
}

// partition returns the state of partition key, creating it on first use.
func (p *Pacer) partition(key Partition, provider Provider) *pacerPart {
	p.mu.RLock()
	pp := p.parts[key]
	p.mu.RUnlock()
	if pp != nil {
		return pp
	}
	var upfront Limits
	if p.s.LimitsFunc != nil {
		upfront = p.s.LimitsFunc(key)
	} else if l, ok := p.s.Limits[key.Model]; ok {
		upfront = l
	} else {
		upfront = p.s.Limits[""]
	}
	laneLimits(key.Lane, &upfront)
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp := p.parts[key]; pp != nil {
		return pp
	}
	pp = newPacerPart(p, key, provider, &upfront, time.Now())
	p.parts[key] = pp
	return pp
}

// Stats returns a snapshot of every partition's state, sorted by partition.
func (p *Pacer) Stats() []PacerStats {
	p.mu.RLock()
	parts := make([]*pacerPart, 0, len(p.parts))
	for _, pp := range p.parts {
		parts = append(parts, pp)
	}
	p.mu.RUnlock()
	now := time.Now()
	out := make([]PacerStats, 0, len(parts))
	for _, pp := range parts {
		out = append(out, pp.stats(now))
	}
	slices.SortFunc(out, func(a, b PacerStats) int {
		switch as, bs := a.Partition.String(), b.Partition.String(); {
		case as < bs:
			return -1
		case as > bs:
			return 1
		}
		return 0
	})
	return out
}

// PartitionStats returns the snapshot of one partition, and false when the
// pacer has not seen it.
func (p *Pacer) PartitionStats(key Partition) (PacerStats, bool) {
	p.mu.RLock()
	pp := p.parts[key]
	p.mu.RUnlock()
	if pp == nil {
		return PacerStats{}, false
	}
	return pp.stats(time.Now()), true
}

// PacerStats is a snapshot of one partition's pacing state.
type PacerStats struct {
	// Partition is the partition.
	Partition Partition
	// Requests, RequestsPerDay, Tokens, InputTokens and OutputTokens are
	// the buckets; an unknown one has Limit 0.
	Requests, RequestsPerDay, Tokens, InputTokens, OutputTokens BucketStats
	// InFlight is the number of requests sent and not finished; Queued the
	// number waiting.
	InFlight, Queued int
	// GateUntil is when the gate opens; zero or past when it is open.
	GateUntil time.Time
	// QuotaUntil is when the quota latch ends; zero or past when none.
	QuotaUntil time.Time
	// SendRate is the slow-down cap on the sending rate, in requests per
	// second; 0 when there is none.
	SendRate float64
	// OutputCharging is the output charging rule currently assumed.
	OutputCharging OutputCharging
	// AvgOutputTokens is the average output per request learned from
	// responses' usage; 0 before any.
	AvgOutputTokens float64
	// InputRatio is the learned correction of the input estimate
	// (counted / estimated); 1 before any usage was seen.
	InputRatio float64
	// Sent counts requests sent; Throttled responses classified
	// rate-limited or slow-down; Refused local refusals.
	Sent, Throttled, Refused int64
	// StoreErrors counts calls to PacerSettings.Store that failed or timed
	// out (the pacer went on without the store); StoreDeclines the
	// reservations the store declined (see [Grant.Declined]), each asked
	// again later.
	StoreErrors, StoreDeclines int64
}

// BucketStats is a snapshot of one bucket.
type BucketStats struct {
	// Limit is the capacity; 0 when unknown.
	Limit int64
	// Level is what the pacer believes is left now, after what it charged
	// for requests in flight (it may be negative).
	Level float64
	// Window is the time the bucket takes to refill completely: the
	// window of the headers (a minute for every per-minute family) or of
	// the limits given up front, unless the server's resets show another
	// (see [Pacer]).
	Window time.Duration
	// RefillPerSecond is the refill rate this pacer uses: the limit per
	// window, less what other clients of the key were seen to consume.
	RefillPerSecond float64
	// Reported is the last report from the server (zero when none).
	Reported Limit
}
