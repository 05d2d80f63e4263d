package llmhttp

import (
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Limit is one rate-limit dimension as a provider reported it on a response.
// The zero Limit means "not reported".
type Limit struct {
	// Limit is the bucket's capacity; 0 means not reported.
	Limit int64
	// Remaining is what is left in the bucket. It is meaningful only when
	// HasRemaining is true: 0 is a real "exhausted".
	Remaining    int64
	HasRemaining bool
	// Reset is when the bucket is fully replenished; zero means unknown.
	Reset time.Time
	// Window is the period the limit is counted over (time.Minute for a
	// per-minute limit, 24h for a per-day one); 0 means unknown, which the
	// pacer treats as a minute.
	Window time.Duration
}

// Known reports whether the response reported anything about l: a capacity,
// a remaining count or a reset.
func (l Limit) Known() bool { return l.Limit > 0 || l.HasRemaining || !l.Reset.IsZero() }

// Exhausted reports whether the response said the bucket is empty: a
// reported Remaining of 0.
func (l Limit) Exhausted() bool { return l.HasRemaining && l.Remaining == 0 }

// Limits is every rate-limit dimension a response reported. Dimensions the
// response did not report are zero.
type Limits struct {
	// Requests is the requests-per-window bucket (RPM for every provider but
	// Groq, whose request limit is per day and goes to RequestsPerDay).
	Requests Limit
	// RequestsPerDay is a per-day request bucket (Groq's RPD).
	RequestsPerDay Limit
	// Tokens is a combined-token bucket: OpenAI-style TPM (the tighter of the
	// organisation and project limits), or Anthropic's combined tokens when
	// the input/output headers are absent.
	Tokens Limit
	// InputTokens and OutputTokens are Anthropic's ITPM and OTPM buckets.
	InputTokens, OutputTokens Limit
	// PriorityInputTokens and PriorityOutputTokens are Anthropic's Priority
	// Tier buckets; FastInputTokens and FastOutputTokens its fast-mode ones.
	PriorityInputTokens, PriorityOutputTokens Limit
	FastInputTokens, FastOutputTokens         Limit
}

const (
	// maxResetAhead bounds every rate-limit reset: no provider's bucket
	// (per minute or per day) refills later than this, so a reset further
	// away, or an absolute one further in the past, is garbage and ignored.
	maxResetAhead = 48 * time.Hour
	// clockSkewTolerance is how far the Date header may be from now before
	// absolute instants in the headers are measured from Date instead of
	// now. Date has a resolution of one second and the response spent some
	// time in flight, so smaller differences are not skew.
	clockSkewTolerance = 2 * time.Second
	// perDayImpliedWindow splits per-minute from per-day x-ratelimit
	// buckets; see ParseLimits.
	perDayImpliedWindow = 30 * time.Minute
	day                 = 24 * time.Hour
	month               = 30 * day
)

// Rate-limit header dimensions. Each is carried by up to three headers: the
// capacity, the remaining count and the reset.
const (
	dimAnthRequests = iota // anthropic-ratelimit-requests-*
	dimAnthTokens          // anthropic-ratelimit-tokens-*
	dimAnthInput           // anthropic-ratelimit-input-tokens-*
	dimAnthOutput          // anthropic-ratelimit-output-tokens-*
	dimAnthPrioIn          // anthropic-priority-input-tokens-*
	dimAnthPrioOut         // anthropic-priority-output-tokens-*
	dimAnthFastIn          // anthropic-fast-input-tokens-*
	dimAnthFastOut         // anthropic-fast-output-tokens-*
	dimOAIRequests         // x-ratelimit-{limit,remaining,reset}-requests (OpenAI, Azure, Groq)
	dimOAITokens           // x-ratelimit-{limit,remaining,reset}-tokens
	dimOAIProject          // x-ratelimit-{limit,remaining,reset}-project-tokens
	dimMistralReq          // x-ratelimit-{limit,remaining}-req-minute
	dimMistralTok          // x-ratelimit-{limit,remaining}-tokens-minute
	dimBySize              // ratelimitbysize-{limit,remaining,reset} (Mistral, legacy)
	dimBySizeMinute        // x-ratelimitbysize-{limit,remaining}-minute
	dimBySizeMonth         // x-ratelimitbysize-{limit,remaining}-month
	dimGeneric             // X-RateLimit-{Limit,Remaining,Reset} (OpenRouter, Together, generic)
	dimDraft06             // RateLimit-{Limit,Remaining,Reset} (IETF drafts ≤ -06)
	dimTogetherTok         // x-tokenlimit-{limit,remaining}
	numDims
)

// Parts of a dimension.
const (
	partLimit = iota
	partRemaining
	partReset
)

// Header codes: 0 is "not a header we read"; codeDim+3·dim+part is a part
// of a dimension.
const (
	codeNone = iota
	codeDate
	codePolicy    // RateLimit-Policy
	codeRateLimit // RateLimit
	codeDim
)

func dimCode(dim, part int) int { return codeDim + 3*dim + part }

// headerCode maps a canonical header name to what it carries. A switch on
// constant strings compiles to a length-then-value binary search, so this
// costs a few comparisons per header and builds no strings.
func headerCode(k string) int {
	switch k {
	case "Date":
		return codeDate
	case "Ratelimit-Policy":
		return codePolicy
	case "Ratelimit":
		return codeRateLimit

	case "Anthropic-Ratelimit-Requests-Limit":
		return dimCode(dimAnthRequests, partLimit)
	case "Anthropic-Ratelimit-Requests-Remaining":
		return dimCode(dimAnthRequests, partRemaining)
	case "Anthropic-Ratelimit-Requests-Reset":
		return dimCode(dimAnthRequests, partReset)
	case "Anthropic-Ratelimit-Tokens-Limit":
		return dimCode(dimAnthTokens, partLimit)
	case "Anthropic-Ratelimit-Tokens-Remaining":
		return dimCode(dimAnthTokens, partRemaining)
	case "Anthropic-Ratelimit-Tokens-Reset":
		return dimCode(dimAnthTokens, partReset)
	case "Anthropic-Ratelimit-Input-Tokens-Limit":
		return dimCode(dimAnthInput, partLimit)
	case "Anthropic-Ratelimit-Input-Tokens-Remaining":
		return dimCode(dimAnthInput, partRemaining)
	case "Anthropic-Ratelimit-Input-Tokens-Reset":
		return dimCode(dimAnthInput, partReset)
	case "Anthropic-Ratelimit-Output-Tokens-Limit":
		return dimCode(dimAnthOutput, partLimit)
	case "Anthropic-Ratelimit-Output-Tokens-Remaining":
		return dimCode(dimAnthOutput, partRemaining)
	case "Anthropic-Ratelimit-Output-Tokens-Reset":
		return dimCode(dimAnthOutput, partReset)
	case "Anthropic-Priority-Input-Tokens-Limit":
		return dimCode(dimAnthPrioIn, partLimit)
	case "Anthropic-Priority-Input-Tokens-Remaining":
		return dimCode(dimAnthPrioIn, partRemaining)
	case "Anthropic-Priority-Input-Tokens-Reset":
		return dimCode(dimAnthPrioIn, partReset)
	case "Anthropic-Priority-Output-Tokens-Limit":
		return dimCode(dimAnthPrioOut, partLimit)
	case "Anthropic-Priority-Output-Tokens-Remaining":
		return dimCode(dimAnthPrioOut, partRemaining)
	case "Anthropic-Priority-Output-Tokens-Reset":
		return dimCode(dimAnthPrioOut, partReset)
	case "Anthropic-Fast-Input-Tokens-Limit":
		return dimCode(dimAnthFastIn, partLimit)
	case "Anthropic-Fast-Input-Tokens-Remaining":
		return dimCode(dimAnthFastIn, partRemaining)
	case "Anthropic-Fast-Input-Tokens-Reset":
		return dimCode(dimAnthFastIn, partReset)
	case "Anthropic-Fast-Output-Tokens-Limit":
		return dimCode(dimAnthFastOut, partLimit)
	case "Anthropic-Fast-Output-Tokens-Remaining":
		return dimCode(dimAnthFastOut, partRemaining)
	case "Anthropic-Fast-Output-Tokens-Reset":
		return dimCode(dimAnthFastOut, partReset)

	case "X-Ratelimit-Limit-Requests":
		return dimCode(dimOAIRequests, partLimit)
	case "X-Ratelimit-Remaining-Requests":
		return dimCode(dimOAIRequests, partRemaining)
	case "X-Ratelimit-Reset-Requests":
		return dimCode(dimOAIRequests, partReset)
	case "X-Ratelimit-Limit-Tokens":
		return dimCode(dimOAITokens, partLimit)
	case "X-Ratelimit-Remaining-Tokens":
		return dimCode(dimOAITokens, partRemaining)
	case "X-Ratelimit-Reset-Tokens":
		return dimCode(dimOAITokens, partReset)
	case "X-Ratelimit-Limit-Project-Tokens":
		return dimCode(dimOAIProject, partLimit)
	case "X-Ratelimit-Remaining-Project-Tokens":
		return dimCode(dimOAIProject, partRemaining)
	case "X-Ratelimit-Reset-Project-Tokens":
		return dimCode(dimOAIProject, partReset)

	case "X-Ratelimit-Limit-Req-Minute":
		return dimCode(dimMistralReq, partLimit)
	case "X-Ratelimit-Remaining-Req-Minute":
		return dimCode(dimMistralReq, partRemaining)
	case "X-Ratelimit-Limit-Tokens-Minute":
		return dimCode(dimMistralTok, partLimit)
	case "X-Ratelimit-Remaining-Tokens-Minute":
		return dimCode(dimMistralTok, partRemaining)
	case "Ratelimitbysize-Limit":
		return dimCode(dimBySize, partLimit)
	case "Ratelimitbysize-Remaining":
		return dimCode(dimBySize, partRemaining)
	case "Ratelimitbysize-Reset":
		return dimCode(dimBySize, partReset)
	case "X-Ratelimitbysize-Limit-Minute":
		return dimCode(dimBySizeMinute, partLimit)
	case "X-Ratelimitbysize-Remaining-Minute":
		return dimCode(dimBySizeMinute, partRemaining)
	case "X-Ratelimitbysize-Limit-Month":
		return dimCode(dimBySizeMonth, partLimit)
	case "X-Ratelimitbysize-Remaining-Month":
		return dimCode(dimBySizeMonth, partRemaining)

	case "X-Ratelimit-Limit":
		return dimCode(dimGeneric, partLimit)
	case "X-Ratelimit-Remaining":
		return dimCode(dimGeneric, partRemaining)
	case "X-Ratelimit-Reset":
		return dimCode(dimGeneric, partReset)
	case "Ratelimit-Limit":
		return dimCode(dimDraft06, partLimit)
	case "Ratelimit-Remaining":
		return dimCode(dimDraft06, partRemaining)
	case "Ratelimit-Reset":
		return dimCode(dimDraft06, partReset)
	case "X-Tokenlimit-Limit":
		return dimCode(dimTogetherTok, partLimit)
	case "X-Tokenlimit-Remaining":
		return dimCode(dimTogetherTok, partRemaining)
	}
	return codeNone
}

// mayBeLimitKey reports whether the canonical header name k may be one
// headerCode knows, from its first bytes: every one of those is Date or
// starts with "An" (Anthropic-…), "Ra" (Ratelimit…), "X-Ra" (X-Ratelimit…)
// or "X-T" (X-Tokenlimit-…). It turns away Content-Type, Cf-Ray,
// X-Request-Id, Retry-After and the like in a comparison or two.
func mayBeLimitKey(k string) bool {
	if len(k) < len("Date") {
		return false
	}
	switch k[0] {
	case 'A':
		return k[1] == 'n'
	case 'D':
		return len(k) == len("Date")
	case 'R':
		return k[1] == 'a'
	case 'X':
		return k[2] == 'R' && k[3] == 'a' || k[2] == 'T'
	}
	return false
}

// rawLimits holds the header values ParseLimits reads, collected in one pass
// over the header map.
type rawLimits struct {
	v         [numDims][3]string
	has       uint32 // bit i: some part of dimension i has a value
	date      string
	policy    []string // RateLimit-Policy field lines
	rateLimit []string // RateLimit field lines
}

// collect fills r from h. Like [http.Header.Get] it sees only canonical keys
// and the first value of each; the structured RateLimit fields keep every
// line, since a list may be split across lines. Most of a response's
// headers are not rate limits: mayBeLimitKey turns those away before
// headerCode.
func (r *rawLimits) collect(h http.Header) {
	for k, vv := range h {
		if len(vv) == 0 || !mayBeLimitKey(k) {
			continue
		}
		switch c := headerCode(k); c {
		case codeNone:
		case codeDate:
			r.date = vv[0]
		case codePolicy:
			r.policy = vv
		case codeRateLimit:
			r.rateLimit = vv
		default:
			c -= codeDim
			r.v[c/3][c%3] = vv[0]
			if vv[0] != "" {
				r.has |= 1 << (c / 3)
			}
		}
	}
}

// limitsParser turns header values into Limits relative to now.
type limitsParser struct {
	now    time.Time
	date   string    // the Date header, parsed on first need
	ref    time.Time // what absolute instants are measured from
	refSet bool
}

// reference returns the instant absolute times in the headers are measured
// from: now, or the response's Date when it differs from now by more than
// clockSkewTolerance. An instant t then maps to now + (t − reference), which
// cancels a skew between the server's clock and ours.
func (p *limitsParser) reference() time.Time {
	if p.refSet {
		return p.ref
	}
	p.refSet = true
	p.ref = p.now
	if s := strings.TrimSpace(p.date); s != "" {
		if d, err := parseHTTPDate(s); err == nil {
			if skew := d.Sub(p.now); skew > clockSkewTolerance || skew < -clockSkewTolerance {
				p.ref = d
			}
		}
	}
	return p.ref
}

// absolute returns how long from now the absolute instant t is, clock skew
// corrected. An instant already past gives 0; one more than maxResetAhead
// away either way is rejected.
func (p *limitsParser) absolute(t time.Time) (time.Duration, bool) {
	d := t.Sub(p.reference())
	if d > maxResetAhead || d < -maxResetAhead {
		return 0, false
	}
	return max(d, 0), true
}

// reset parses a reset value into a duration from now. It accepts an RFC 3339
// instant, a Go duration ("6m0s", "12ms"), or a decimal number of seconds;
// with epoch set, a number above 1e12 is a Unix time in milliseconds and one
// above 1e9 a Unix time in seconds (OpenRouter). Negative, non-finite and
// out-of-range values are rejected.
func (p *limitsParser) reset(s string, epoch bool) (time.Duration, bool) {
	s = trimSpace(s)
	if s == "" {
		return 0, false
	}
	if looksRFC3339(s) {
		t, ok := parseRFC3339(s)
		if !ok {
			var err error
			if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return 0, false
			}
		}
		return p.absolute(t)
	}
	if f, ok := parseDecimal(s); ok {
		switch {
		case epoch && f > 1e16: // beyond year 300000 in milliseconds
			return 0, false
		case epoch && f > 1e12:
			return p.absolute(time.UnixMilli(int64(f)))
		case epoch && f > 1e9:
			sec, frac := math.Modf(f)
			return p.absolute(time.Unix(int64(sec), int64(frac*1e9)))
		case f > maxResetAhead.Seconds():
			return 0, false
		}
		return floatToDuration(f, time.Second), true
	}
	if d, ok := parseShortDuration(s); ok {
		return d, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxResetAhead {
		return 0, false
	}
	return d, true
}

// dim parses one dimension into l, which must be zero. A negative capacity
// is a server saying it does not know (Azure's -1, sent with a placeholder 0
// remaining), so it makes the whole dimension unknown; a negative remaining
// makes only that unknown.
//
// It returns how long from now the reset is (l.Reset is now plus that), or
// 0 when there is none.
func (p *limitsParser) dim(l *Limit, raw *[3]string, window time.Duration, epoch bool) (resetIn time.Duration) {
	if v, ok := parseTrimmedInt(raw[partLimit]); ok {
		if v < 0 {
			return 0
		}
		l.Limit = v
	}
	if v, ok := parseTrimmedInt(raw[partRemaining]); ok && v >= 0 {
		l.Remaining, l.HasRemaining = v, true
	}
	if raw[partReset] != "" {
		if d, ok := p.reset(raw[partReset], epoch); ok {
			l.Reset, resetIn = p.now.Add(d), d
		}
	}
	if l.Known() {
		l.Window = window
	}
	return resetIn
}

// perDay reports whether an x-ratelimit bucket is counted per day rather than
// per minute. A bucket's reset is the time until it is full again, so when
// some of it is used, reset·limit/(limit−remaining) is the window itself:
// about 60 s for a per-minute bucket, 86 400 s for a per-day one. A bucket
// implying more than perDayImpliedWindow (30 min, midway between the two on
// a log scale) is per day; without counts to do the arithmetic, the reset
// alone must be that long. A request bucket is also per day when its reset
// is over a minute: every request costs exactly 1 at admission, so a
// per-minute request bucket is always full again within a minute. (A token
// bucket is not: OpenAI reserves max_tokens, actual use can overshoot, and a
// per-minute token bucket in debt reports remaining 0 and resets over a
// minute.) This is how Groq's requests-per-day (and OpenAI's free-tier RPD),
// which arrive under the per-minute header names, are told apart.
//
// The reset is first lowered by a second, its coarsest rounding (Azure sends
// whole seconds, OpenAI milliseconds), so that a nearly full large bucket
// whose tiny reset was rounded up is not taken for a per-day one.
//
// resetIn is what dim returned. Reset.Sub(now) is never more than it
// (it is less only when now.Add saturated), so the common reset under a
// second is decided without the subtraction.
func (p *limitsParser) perDay(l *Limit, resetIn time.Duration, requests bool) bool {
	if l.Reset.IsZero() || resetIn <= time.Second {
		return false
	}
	d := l.Reset.Sub(p.now) - time.Second
	if d <= 0 {
		return false
	}
	if requests && d > time.Minute {
		return true
	}
	implied := float64(d)
	if l.Limit > 0 && l.HasRemaining && l.Remaining < l.Limit {
		implied = implied * float64(l.Limit) / float64(l.Limit-l.Remaining)
	}
	return implied > float64(perDayImpliedWindow)
}

// parsedLimits is everything parse read: each header dimension and the IETF
// field's request, per-day request and token dimensions.
type parsedLimits struct {
	dims                      [numDims]Limit
	ietfReq, ietfDay, ietfTok Limit
}

// limitsReader parses the dimensions of one header map on demand.
type limitsReader struct {
	r rawLimits
	p limitsParser
}

// read collects h's values, relative to now.
func (lr *limitsReader) read(h http.Header, now time.Time) {
	lr.r.collect(h)
	lr.p = limitsParser{now: now, date: lr.r.date}
}

// dim parses header dimension i into l, which must be zero, and reports
// whether it is known (see Limit.Known); l stays zero when it is not. Each
// dimension must be parsed at most once. It is small enough to be inlined,
// so a dimension the response does not carry costs a bit test.
func (lr *limitsReader) dim(i int, l *Limit) bool {
	return lr.r.has&(1<<i) != 0 && lr.parseDim(i, l)
}

// parseDim is dim for a dimension the response has a value for.
func (lr *limitsReader) parseDim(i int, l *Limit) bool {
	window, epoch := time.Minute, false
	switch i {
	case dimGeneric, dimDraft06:
		window, epoch = 0, true
	case dimTogetherTok:
		window = 0
	case dimBySizeMonth:
		window = month
	}
	if i == dimDraft06 {
		// Draft-06 allowed a policy after the limit ("100, 100;w=60").
		lr.r.v[i][partLimit], _, _ = strings.Cut(lr.r.v[i][partLimit], ",")
	}
	resetIn := lr.p.dim(l, &lr.r.v[i], window, epoch)
	if (i == dimOAIRequests || i == dimOAITokens || i == dimOAIProject) && lr.p.perDay(l, resetIn, i == dimOAIRequests) {
		l.Window = day
	}
	return l.Known()
}

// hasIETF reports whether the response has an IETF RateLimit or
// RateLimit-Policy field.
func (lr *limitsReader) hasIETF() bool { return len(lr.r.rateLimit) > 0 || len(lr.r.policy) > 0 }

// ietf parses the IETF RateLimit and RateLimit-Policy fields.
func (lr *limitsReader) ietf() (req, perDay, tok Limit) {
	if lr.hasIETF() {
		return ietfLimits(lr.r.policy, lr.r.rateLimit, lr.p.now)
	}
	return Limit{}, Limit{}, Limit{}
}

// parse reads every dimension of h. Dimensions h has no header of are
// left zero.
func parse(h http.Header, now time.Time, out *parsedLimits) {
	var lr limitsReader
	lr.read(h, now)
	for has := lr.r.has; has != 0; has &= has - 1 {
		i := bits.TrailingZeros32(has)
		lr.dim(i, &out.dims[i])
	}
	out.ietfReq, out.ietfDay, out.ietfTok = lr.ietf()
}

// ParseLimits reads every rate-limit header family llmhttp knows from h. Values
// that cannot be parsed are ignored. Relative resets are taken relative to now.
//
// Like [http.Header.Get], ParseLimits sees only canonical header keys (as
// net/http stores them) and the first value of each header. It reads, per
// dimension, the first family present:
//
//   - Requests: anthropic-ratelimit-requests-*; x-ratelimit-*-requests
//     (OpenAI, Azure, Groq); Mistral's x-ratelimit-*-req-minute; the generic
//     X-RateLimit-Limit/-Remaining/-Reset (OpenRouter, Together) or the IETF
//     draft-06 RateLimit-Limit/-Remaining/-Reset; the IETF RateLimit and
//     RateLimit-Policy fields (a policy of a day or longer goes to
//     RequestsPerDay).
//   - RequestsPerDay: x-ratelimit-*-requests when they are per day (Groq;
//     see below), or an IETF policy of a day or longer.
//   - Tokens: anthropic-ratelimit-tokens-* when the input and output headers
//     are absent; the tighter (lower remaining, then later reset) of
//     x-ratelimit-*-tokens and x-ratelimit-*-project-tokens; Mistral's
//     x-ratelimit-*-tokens-minute, ratelimitbysize-*,
//     x-ratelimitbysize-*-minute or, failing those, -month; Together's
//     x-tokenlimit-*; an IETF policy whose qu names tokens.
//     x-ratelimit-*-tokens_usage_based and the query-cost headers are ignored.
//   - InputTokens, OutputTokens and the Priority and Fast ones: the Anthropic
//     headers of the same names.
//
// Counts are decimal integers; a negative limit (Azure's -1) makes its
// dimension unknown and a negative remaining makes the remaining unknown.
// Resets may be RFC 3339 instants (Anthropic), Go durations ("6m0s", "12ms"),
// decimal seconds (Azure, Mistral), or, for the generic X-RateLimit-Reset,
// Unix times in milliseconds (above 1e12) or seconds (above 1e9). A reset more
// than 48 hours away is ignored as garbage, and one already past is now. When
// the response's Date header is more than 2 seconds away from now, absolute
// resets are measured from Date, so a skewed local clock does not stretch or
// shrink them.
//
// Window is a minute for the per-minute families, 30 days for Mistral's
// monthly bucket, the policy's w for the IETF fields, and 0 (unknown) for the
// generic and Together headers. OpenAI-style x-ratelimit buckets are per
// minute unless their reset shows them to be per day: an implied window
// reset·limit/(limit−remaining) over 30 minutes (a per-minute bucket implies
// about 60 s, a per-day one 86 400 s), without counts a reset over 30
// minutes, and for requests (which cannot overdraw a per-minute bucket) any
// reset over a minute. Per-day request buckets go to RequestsPerDay; a
// per-day token bucket stays in Tokens with a 24h Window.
func ParseLimits(h http.Header, now time.Time) Limits {
	var l Limits
	parseLimits(h, now, &l)
	return l
}

// parseLimits is ParseLimits into l, which must be zero. Each dimension
// takes the first family present, so the families are parsed in that order
// and no further.
func parseLimits(h http.Header, now time.Time, l *Limits) {
	var lr limitsReader
	lr.read(h, now)

	var ietfReq, ietfDay, ietfTok Limit
	ietfDone := false
	switch {
	case lr.dim(dimAnthRequests, &l.Requests):
	case lr.dim(dimOAIRequests, &l.Requests):
		if l.Requests.Window == day {
			l.RequestsPerDay, l.Requests = l.Requests, Limit{}
		}
	case lr.dim(dimMistralReq, &l.Requests):
	case lr.dim(dimGeneric, &l.Requests):
	case lr.dim(dimDraft06, &l.Requests):
	case lr.hasIETF(): // without the fields, every IETF dimension is zero
		ietfReq, ietfDay, ietfTok = lr.ietf()
		ietfDone = true
		l.Requests, l.RequestsPerDay = ietfReq, ietfDay
	}

	lr.dim(dimAnthInput, &l.InputTokens)
	lr.dim(dimAnthOutput, &l.OutputTokens)
	if !lr.tokens(l) && lr.hasIETF() {
		if !ietfDone {
			_, _, ietfTok = lr.ietf()
		}
		l.Tokens = ietfTok
	}

	lr.dim(dimAnthPrioIn, &l.PriorityInputTokens)
	lr.dim(dimAnthPrioOut, &l.PriorityOutputTokens)
	lr.dim(dimAnthFastIn, &l.FastInputTokens)
	lr.dim(dimAnthFastOut, &l.FastOutputTokens)
}

// tokens sets l.Tokens from the first token family present and reports
// false when there is none. Anthropic's input and output tokens, parsed
// already, come first: when either is known, l.Tokens stays zero (the
// combined bucket is then not even parsed).
func (lr *limitsReader) tokens(l *Limits) bool {
	if l.InputTokens.Known() || l.OutputTokens.Known() {
		return true // Anthropic's combined tokens are left out
	}
	if lr.dim(dimAnthTokens, &l.Tokens) {
		return true
	}
	var proj Limit
	oai, project := lr.dim(dimOAITokens, &l.Tokens), lr.dim(dimOAIProject, &proj)
	if oai || project {
		tighter(&l.Tokens, &proj)
		return true
	}
	return lr.dim(dimMistralTok, &l.Tokens) || lr.dim(dimBySize, &l.Tokens) || lr.dim(dimBySizeMinute, &l.Tokens) ||
		lr.dim(dimBySizeMonth, &l.Tokens) || lr.dim(dimTogetherTok, &l.Tokens)
}

// tighter sets a to whichever of a and b leaves less room now: the lower
// remaining (the later reset on a tie); without remaining counts, the lower
// capacity. An unknown dimension never wins over a known one.
func tighter(a, b *Limit) {
	if tighterOf(a, b) {
		*a = *b
	}
}

// tighterOf reports whether b is tighter than a (see tighter).
func tighterOf(a, b *Limit) bool {
	switch {
	case !b.Known():
		return false
	case !a.Known():
		return true
	case a.HasRemaining != b.HasRemaining:
		return b.HasRemaining
	case a.HasRemaining && a.Remaining != b.Remaining:
		return b.Remaining < a.Remaining
	case a.HasRemaining:
		return b.Reset.After(a.Reset)
	}
	return b.Limit > 0 && (a.Limit == 0 || b.Limit < a.Limit)
}

// ParseRetryAfter returns the wait a response asks for: retry-after-ms
// (float milliseconds) first, then retry-after as delta-seconds or an
// HTTP-date relative to now. It reports false when neither header holds a
// usable value; it never returns a negative duration.
//
// Numbers are plain decimals (an exponent is allowed, as the SDKs'
// strconv.ParseFloat allows it); a sign, NaN, Inf, hex or anything else
// malformed is not usable, and a malformed retry-after-ms falls through to
// retry-after. An HTTP-date in the past gives 0, true; when the Date header
// is more than 2 seconds away from now the date is measured from Date,
// cancelling clock skew. A value too large for a time.Duration (such as
// "1e300") is "longer than any cap": it saturates at the largest Duration
// rather than being dropped, so a caller comparing it with its cap gives up
// instead of retrying on a backoff the server did not ask for. Callers that
// block on the result must cap it themselves.
func ParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if vv := h["Retry-After-Ms"]; len(vv) > 0 {
		if f, ok := parseDecimal(strings.TrimSpace(vv[0])); ok {
			return floatToDuration(f, time.Millisecond), true
		}
	}
	vv := h["Retry-After"]
	if len(vv) == 0 {
		return 0, false
	}
	s := strings.TrimSpace(vv[0])
	if f, ok := parseDecimal(s); ok {
		return floatToDuration(f, time.Second), true
	}
	t, err := http.ParseTime(s)
	if err != nil {
		return 0, false
	}
	ref := now
	if vv := h["Date"]; len(vv) > 0 {
		p := limitsParser{now: now, date: vv[0]}
		ref = p.reference()
	}
	return max(t.Sub(ref), 0), true
}

// ParseShouldRetry reads the x-should-retry header the official SDKs honour:
// set reports whether it holds "true" or "false"; anything else is unset.
// Surrounding whitespace and letter case are ignored.
func ParseShouldRetry(h http.Header) (retry, set bool) {
	vv := h["X-Should-Retry"]
	if len(vv) == 0 {
		return false, false
	}
	switch s := strings.TrimSpace(vv[0]); {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// ServerDelay returns the wait the server asks for, in the order of llm-wire
// §5.3: retry-after-ms, retry-after, the IETF RateLimit field's t for an
// exhausted quota, then the reset of an exhausted bucket in the provider's
// rate-limit headers. It reports false when the response gives no hint.
//
// The first two are [ParseRetryAfter]. For the IETF field, the largest t of
// the items with r=0 is used (a malformed field is ignored; a t too large
// for a Duration saturates, as in ParseRetryAfter). For the buckets, every
// dimension [ParseLimits] reads (including the Anthropic combined-token
// bucket it leaves out of Limits.Tokens) that reports a remaining of 0 and a
// reset counts, and the latest reset wins: the request cannot succeed before
// every empty bucket has refilled. Resets are clock-skew corrected as
// ParseLimits describes. A reset already past is no hint (false), so the
// caller backs off instead of retrying at once. The result is never negative.
func ServerDelay(h http.Header, now time.Time) (time.Duration, bool) {
	if d, ok := ParseRetryAfter(h, now); ok {
		return d, true
	}
	if d, ok := ietfDelay(h["Ratelimit"]); ok {
		return d, true
	}
	var pl parsedLimits
	parse(h, now, &pl)
	return pl.exhaustedUntil(now)
}

// exhaustedUntil returns how long from now until the latest reset of an
// exhausted dimension of pl, and false when none is exhausted or the
// latest such reset is not after now.
func (pl *parsedLimits) exhaustedUntil(now time.Time) (time.Duration, bool) {
	var latest time.Time
	consider := func(l Limit) {
		if l.Exhausted() && l.Reset.After(latest) {
			latest = l.Reset
		}
	}
	for _, l := range pl.dims {
		consider(l)
	}
	consider(pl.ietfReq)
	consider(pl.ietfDay)
	consider(pl.ietfTok)
	if latest.IsZero() {
		return 0, false
	}
	if d := latest.Sub(now); d > 0 {
		return d, true
	}
	return 0, false
}

// trimSpace is strings.TrimSpace, without a call for the common value that
// starts and ends with a printable ASCII byte.
func trimSpace(s string) string {
	if s != "" && s[0] > ' ' && s[0] < 0x80 && s[len(s)-1] > ' ' && s[len(s)-1] < 0x80 {
		return s
	}
	return strings.TrimSpace(s)
}

// parseTrimmedInt is parseInt of s with surrounding white space trimmed.
func parseTrimmedInt(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	if v, ok := parseInt(s); ok {
		return v, true // nothing to trim
	}
	return parseInt(strings.TrimSpace(s))
}

// parseInt parses an optionally negative decimal integer without building an
// error on failure.
func parseInt(s string) (int64, bool) {
	neg := false
	if s != "" && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var u uint64 // nineteen digits fit: 10¹⁹ − 1 < 2⁶⁴
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		u = u*10 + uint64(c)
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	v := int64(u)
	if neg {
		v = -v
	}
	return v, true
}

// parseDecimal parses a non-negative decimal number: digits with an optional
// fraction and exponent ("6", "7.66", ".5", "1e3"). Signs, NaN, Inf, hex and
// underscores are rejected. A number too large for a float64 is +Inf.
func parseDecimal(s string) (float64, bool) {
	if s == "" || !isDigit(s[len(s)-1]) && s[len(s)-1] != '.' {
		return 0, false // a quick no for durations ("6ms") and dates
	}
	i, digits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 1) {
		return 0, false
	}
	return f, true
}

// floatToDuration converts a non-negative count of units to a Duration,
// rounded to the nanosecond and saturating at the largest Duration instead of
// wrapping around.
func floatToDuration(f float64, unit time.Duration) time.Duration {
	v := f * float64(unit)
	if !(v < float64(math.MaxInt64)) { // also catches +Inf
		return math.MaxInt64
	}
	if !(v > 0) { // also catches NaN
		return 0
	}
	return time.Duration(math.Round(v))
}
