package llmhttptest

import (
	"net/http"
	"strconv"
	"time"
)

// setLimitHeaders writes p's rate-limit headers as at now, in the
// provider's real formats (llm-wire.md §1.1, §2.1, §5.6):
//
//   - Anthropic: anthropic-ratelimit-{requests,input-tokens,output-tokens,
//     tokens}-{limit,remaining,reset}. Resets are RFC 3339 timestamps in UTC
//     of the moment the bucket is full again, rounded up to the second;
//     token remainders are rounded to the nearest [Config.TokenRounding]
//     (1000 by default), as Anthropic documents. The tokens-* family is the
//     input and output buckets together: limit ITPM+OTPM, remaining the sum
//     of both remainders, reset when both are full.
//   - OpenAI: x-ratelimit-{limit,remaining,reset}-{requests,tokens}, exact
//     counts, resets as Go durations until the bucket is full again, rounded
//     up to the millisecond ("6m0s", "12ms", "0s").
//
// An answer to a request in fast mode (fast) also reports the fast-mode
// buckets, as anthropic-fast-{input,output}-tokens-{limit,remaining,reset}
// in the same formats.
//
// A remainder is never negative (a bucket in debt reports 0). Limits that
// are off send no header. Date is stamped at the same instant, as a real
// server writes it with the headers: a client that measures resets from Date
// (to cancel clock skew) must not see them shifted by the generation time.
func (h *Handler) setLimitHeaders(hd http.Header, p *partition, fast bool, now time.Time) {
	hd.Set("Date", now.UTC().Format(http.TimeFormat))
	if p.provider == Anthropic {
		rnd := h.cfg.TokenRounding
		if rnd == 0 {
			rnd = defaultRounding
		}
		set := func(name string, b *bucket, round bool) {
			if b == nil {
				return
			}
			rem := max(b.level(now), 0)
			if round {
				rem = roundTo(rem, rnd)
			}
			hd.Set(name+"-limit", strconv.FormatInt(b.capacity, 10))
			hd.Set(name+"-remaining", strconv.FormatInt(rem, 10))
			hd.Set(name+"-reset", rfc3339Reset(now, b.untilFull(now)))
		}
		set("anthropic-ratelimit-requests", p.req, false)
		set("anthropic-ratelimit-input-tokens", p.in, true)
		set("anthropic-ratelimit-output-tokens", p.out, true)
		if fast {
			set("anthropic-fast-input-tokens", p.fin, true)
			set("anthropic-fast-output-tokens", p.fout, true)
		}
		if p.in != nil && p.out != nil {
			rem := roundTo(max(p.in.level(now), 0)+max(p.out.level(now), 0), rnd)
			hd.Set("anthropic-ratelimit-tokens-limit", strconv.FormatInt(p.in.capacity+p.out.capacity, 10))
			hd.Set("anthropic-ratelimit-tokens-remaining", strconv.FormatInt(rem, 10))
			hd.Set("anthropic-ratelimit-tokens-reset", rfc3339Reset(now, max(p.in.untilFull(now), p.out.untilFull(now))))
		}
		return
	}
	set := func(name string, b *bucket) {
		if b == nil {
			return
		}
		hd.Set("x-ratelimit-limit-"+name, strconv.FormatInt(b.capacity, 10))
		hd.Set("x-ratelimit-remaining-"+name, strconv.FormatInt(max(b.level(now), 0), 10))
		hd.Set("x-ratelimit-reset-"+name, durationReset(b.untilFull(now)))
	}
	set("requests", p.req)
	set("tokens", p.tok)
}

// roundTo rounds v ≥ 0 to the nearest multiple of g, halves up; g < 0
// leaves v exact.
func roundTo(v, g int64) int64 {
	if g <= 1 {
		return v
	}
	return (v + g/2) / g * g
}

// rfc3339Reset returns now+d, rounded up to the whole second, as an RFC 3339
// UTC timestamp ("2025-08-21T12:40:59Z").
func rfc3339Reset(now time.Time, d time.Duration) string {
	t := now.Add(d).UTC()
	if r := t.Truncate(time.Second); r.Before(t) {
		t = r.Add(time.Second)
	}
	return t.Format(time.RFC3339)
}

// durationReset returns d rounded up to the millisecond in Go's duration
// syntax, as OpenAI sends it ("1s", "6m0s", "12ms", "0s").
func durationReset(d time.Duration) string {
	if r := d.Truncate(time.Millisecond); r < d {
		d = r + time.Millisecond
	}
	return d.String()
}
