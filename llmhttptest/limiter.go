package llmhttptest

import (
	"math"
	"time"
)

// key names a limiter partition: providers limit per credential and per
// model, and the two dialects keep separate state.
type key struct {
	provider   Provider
	credential string
	model      string
}

// partition is the rate-limit state of one (provider, credential, model).
// The handler's mutex guards it.
type partition struct {
	provider Provider
	model    string
	limits   Limits // resolved; 0 means unlimited
	charge   Charge
	// req, in, out and tok are the RPM, ITPM, OTPM and TPM buckets, fin and
	// fout the fast-mode ITPM and OTPM ones; nil when the limit is off or
	// does not apply to the provider.
	req, in, out, tok *bucket
	fin, fout         *bucket
	stats             PartitionStats
}

func newPartition(p Provider, model string, l Limits, ch Charge, window time.Duration, now time.Time) *partition {
	pt := &partition{provider: p, model: model, limits: l, charge: ch}
	mk := func(c int64) *bucket {
		if c <= 0 {
			return nil
		}
		return newBucket(c, window, now)
	}
	pt.req = mk(l.RPM)
	if p == Anthropic {
		pt.in, pt.out = mk(l.ITPM), mk(l.OTPM)
		pt.fin, pt.fout = mk(l.FastITPM), mk(l.FastOTPM)
	} else {
		pt.tok = mk(l.TPM)
	}
	pt.stats.ByStatus = map[int]int64{}
	return pt
}

// dim is one limit a request was measured against.
type dim int

const (
	dimRequests dim = iota
	dimInput
	dimOutput
	dimTokens
)

// rejection says why a request was not admitted.
type rejection struct {
	dim       dim           // the dimension with the longest wait
	wait      time.Duration // until the request would be admitted; MaxInt64: never
	never     bool          // the request is larger than the bucket's capacity
	limit     int64         // that dimension's capacity
	used      int64         // capacity − level, at the time of the check
	requested int64         // what the request needed from it
}

// admission is what an admitted request holds until it settles.
type admission struct {
	input   int64 // input tokens charged
	reserve int64 // output tokens reserved (ChargeReserved)
	fast    bool  // charged to the fast-mode buckets
}

// hasFast reports whether p has fast-mode limits of its own.
func (p *partition) hasFast() bool { return p.fin != nil || p.fout != nil }

// tokenBuckets returns the input and output buckets a request draws on:
// the fast-mode ones for a fast request when p has them.
func (p *partition) tokenBuckets(fast bool) (in, out *bucket) {
	if fast && p.hasFast() {
		return p.fin, p.fout
	}
	return p.in, p.out
}

// admit checks whether a request of input tokens with maxTokens (in fast
// mode when fast) may start at now, and charges it if so. On rejection
// nothing is charged, except one request when chargeRejected is set.
func (p *partition) admit(input, maxTokens int64, fast, chargeRejected bool, now time.Time) (admission, *rejection) {
	fast = fast && p.hasFast()
	in, out := p.tokenBuckets(fast)
	var reserve int64
	if p.charge == ChargeReserved {
		reserve = maxTokens
	}
	type need struct {
		d dim
		b *bucket
		n int64 // tokens the request needs present
	}
	needs := []need{{dimRequests, p.req, 1}}
	if p.provider == Anthropic {
		outNeed := reserve
		if p.charge == ChargeGenerated {
			outNeed = 1 // the output bucket must not be empty
		}
		needs = append(needs, need{dimInput, in, input}, need{dimOutput, out, outNeed})
	} else {
		needs = append(needs, need{dimTokens, p.tok, input + reserve})
	}
	var rej *rejection
	for _, nd := range needs {
		if nd.b == nil || nd.n <= 0 {
			continue
		}
		never := nd.n > nd.b.capacity
		wait := nd.b.until(nd.n, now)
		if wait == 0 {
			continue
		}
		if rej == nil || (never && !rej.never) || (never == rej.never && wait > rej.wait) {
			rej = &rejection{
				dim: nd.d, wait: wait, never: never, limit: nd.b.capacity,
				used: nd.b.capacity - max(nd.b.level(now), 0), requested: nd.n,
			}
		}
	}
	if rej != nil {
		if chargeRejected && p.req != nil {
			p.req.take(1, now)
		}
		return admission{}, rej
	}
	if p.req != nil {
		p.req.take(1, now)
	}
	if in != nil {
		in.take(input, now)
	}
	if out != nil {
		out.take(reserve, now)
	}
	if p.tok != nil {
		p.tok.take(input+reserve, now)
	}
	p.stats.InputTokens += input
	return admission{input: input, reserve: reserve, fast: fast}, nil
}

// settle charges the output tokens a request generated, net of what it
// reserved: a reservation larger than the output is refunded.
func (p *partition) settle(a admission, output int64, now time.Time) {
	_, ob := p.tokenBuckets(a.fast)
	if p.provider != Anthropic {
		ob = p.tok
	}
	if ob != nil {
		if d := output - a.reserve; d > 0 {
			ob.take(d, now)
		} else if d < 0 {
			ob.give(-d, now)
		}
	}
	p.stats.OutputTokens += output
}

// retryAfterSeconds returns a wait in the whole seconds of a Retry-After
// header: rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	if d >= math.MaxInt64-time.Second {
		return math.MaxInt64 / int64(time.Second)
	}
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
