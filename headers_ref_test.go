package llmhttp

// This file is the reference implementation of ParseLimits and ServerDelay:
// the parts of headers.go as of commit 8a1ad9a that were tuned for speed
// afterwards, copied with every name they declare prefixed "ref"
// (RefParseLimits and RefServerDelay are exported for the external tests).
// FuzzParseLimitsSame checks that the tuned parser gives the same results as
// this one for every header block. It shares with the code under test only
// what the tuning left as it was: the Limit, Limits and parsedLimits types,
// headerCode, tighter, floatToDuration, looksRFC3339, trimSpace,
// parsedLimits.exhaustedUntil and the IETF field parser (headers_ietf.go).
// Do not edit it except to follow a deliberate change of behaviour.

import (
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// refRawLimits holds the header values ParseLimits reads, collected in one pass
// over the header map.
type refRawLimits struct {
	v         [numDims][3]string
	has       uint32 // bit i: some part of dimension i has a value
	date      string
	policy    []string // RateLimit-Policy field lines
	rateLimit []string // RateLimit field lines
}

// collect fills r from h. Like [http.Header.Get] it sees only canonical keys
// and the first value of each; the structured RateLimit fields keep every
// line, since a list may be split across lines.
func (r *refRawLimits) collect(h http.Header) {
	for k, vv := range h {
		if len(vv) == 0 {
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

// refLimitsParser turns header values into Limits relative to now.
type refLimitsParser struct {
	now    time.Time
	date   string    // the Date header, parsed on first need
	ref    time.Time // what absolute instants are measured from
	refSet bool
}

// reference returns the instant absolute times in the headers are measured
// from: now, or the response's Date when it differs from now by more than
// clockSkewTolerance. An instant t then maps to now + (t − reference), which
// cancels a skew between the server's clock and ours.
func (p *refLimitsParser) reference() time.Time {
	if p.refSet {
		return p.ref
	}
	p.refSet = true
	p.ref = p.now
	if s := strings.TrimSpace(p.date); s != "" {
		if d, err := http.ParseTime(s); err == nil {
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
func (p *refLimitsParser) absolute(t time.Time) (time.Duration, bool) {
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
func (p *refLimitsParser) reset(s string, epoch bool) (time.Duration, bool) {
	s = trimSpace(s)
	if s == "" {
		return 0, false
	}
	if looksRFC3339(s) {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, false
		}
		return p.absolute(t)
	}
	if f, ok := refParseDecimal(s); ok {
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
	if d, ok := refParseWholeDuration(s); ok {
		return d, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxResetAhead {
		return 0, false
	}
	return d, true
}

// refParseWholeDuration parses the common shape of a Go duration in a reset
// ("6ms", "1s", "6m0s", "1h2m3s"): whole numbers of h, m, s and ms, adding
// up to at most maxResetAhead. It reports false for anything else (a
// fraction, another unit, a sign, a longer duration), which
// [time.ParseDuration] then parses; what it accepts it parses to the same
// value.
func refParseWholeDuration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var d time.Duration
	for s != "" {
		i := 0
		var n int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i == 6 {
				return 0, false // 10⁶ hours would overflow below
			}
			n = n*10 + int64(s[i]-'0')
			i++
		}
		if i == 0 {
			return 0, false
		}
		s = s[i:]
		var unit time.Duration
		switch {
		case len(s) >= 2 && s[0] == 'm' && s[1] == 's':
			unit, s = time.Millisecond, s[2:]
		case len(s) >= 1 && s[0] == 's':
			unit, s = time.Second, s[1:]
		case len(s) >= 1 && s[0] == 'm':
			unit, s = time.Minute, s[1:]
		case len(s) >= 1 && s[0] == 'h':
			unit, s = time.Hour, s[1:]
		default:
			return 0, false
		}
		if d += time.Duration(n) * unit; d > maxResetAhead {
			return 0, false
		}
	}
	return d, true
}

// dim parses one dimension into l, which must be zero. A negative capacity
// is a server saying it does not know (Azure's -1, sent with a placeholder 0
// remaining), so it makes the whole dimension unknown; a negative remaining
// makes only that unknown.
func (p *refLimitsParser) dim(l *Limit, raw *[3]string, window time.Duration, epoch bool) {
	if s := trimSpace(raw[partLimit]); s != "" {
		v, ok := refParseInt(s)
		if ok && v < 0 {
			return
		}
		if ok {
			l.Limit = v
		}
	}
	if v, ok := refParseInt(trimSpace(raw[partRemaining])); ok && v >= 0 {
		l.Remaining, l.HasRemaining = v, true
	}
	if raw[partReset] != "" {
		if d, ok := p.reset(raw[partReset], epoch); ok {
			l.Reset = p.now.Add(d)
		}
	}
	if l.Known() {
		l.Window = window
	}
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
func (p *refLimitsParser) perDay(l *Limit, requests bool) bool {
	if l.Reset.IsZero() {
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

// refLimitsReader parses the dimensions of one header map on demand.
type refLimitsReader struct {
	r refRawLimits
	p refLimitsParser
}

// read collects h's values, relative to now.
func (lr *refLimitsReader) read(h http.Header, now time.Time) {
	lr.r.collect(h)
	lr.p = refLimitsParser{now: now, date: lr.r.date}
}

// dim parses header dimension i into l, which must be zero, and reports
// whether it is known (see Limit.Known); l stays zero when it is not. Each
// dimension must be parsed at most once.
func (lr *refLimitsReader) dim(i int, l *Limit) bool {
	if lr.r.has&(1<<i) == 0 {
		return false
	}
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
	lr.p.dim(l, &lr.r.v[i], window, epoch)
	if (i == dimOAIRequests || i == dimOAITokens || i == dimOAIProject) && lr.p.perDay(l, i == dimOAIRequests) {
		l.Window = day
	}
	return l.Known()
}

// ietf parses the IETF RateLimit and RateLimit-Policy fields.
func (lr *refLimitsReader) ietf() (req, perDay, tok Limit) {
	if len(lr.r.rateLimit) > 0 || len(lr.r.policy) > 0 {
		return ietfLimits(lr.r.policy, lr.r.rateLimit, lr.p.now)
	}
	return Limit{}, Limit{}, Limit{}
}

// refParse reads every dimension of h. Dimensions h has no header of are
// left zero.
func refParse(h http.Header, now time.Time, out *parsedLimits) {
	var lr refLimitsReader
	lr.read(h, now)
	for has := lr.r.has; has != 0; has &= has - 1 {
		i := bits.TrailingZeros32(has)
		lr.dim(i, &out.dims[i])
	}
	out.ietfReq, out.ietfDay, out.ietfTok = lr.ietf()
}

// RefParseLimits is the reference ParseLimits.
func RefParseLimits(h http.Header, now time.Time) Limits {
	var l Limits
	refParseLimits(h, now, &l)
	return l
}

// refParseLimits is ParseLimits into l, which must be zero. Each dimension
// takes the first family present, so the families are parsed in that order
// and no further.
func refParseLimits(h http.Header, now time.Time, l *Limits) {
	var lr refLimitsReader
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
	default:
		ietfReq, ietfDay, ietfTok = lr.ietf()
		ietfDone = true
		l.Requests, l.RequestsPerDay = ietfReq, ietfDay
	}

	lr.dim(dimAnthInput, &l.InputTokens)
	lr.dim(dimAnthOutput, &l.OutputTokens)
	if !lr.tokens(l) {
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

// tokens sets l.Tokens from the first token family present, the Anthropic
// input and output tokens parsed already, and reports false when there is
// none.
func (lr *refLimitsReader) tokens(l *Limits) bool {
	var anthTok Limit
	if lr.dim(dimAnthTokens, &anthTok) || l.InputTokens.Known() || l.OutputTokens.Known() {
		if !l.InputTokens.Known() && !l.OutputTokens.Known() {
			l.Tokens = anthTok
		}
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

// refParseRetryAfter returns the wait a response asks for: retry-after-ms
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
func refParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if vv := h["Retry-After-Ms"]; len(vv) > 0 {
		if f, ok := refParseDecimal(strings.TrimSpace(vv[0])); ok {
			return floatToDuration(f, time.Millisecond), true
		}
	}
	vv := h["Retry-After"]
	if len(vv) == 0 {
		return 0, false
	}
	s := strings.TrimSpace(vv[0])
	if f, ok := refParseDecimal(s); ok {
		return floatToDuration(f, time.Second), true
	}
	t, err := http.ParseTime(s)
	if err != nil {
		return 0, false
	}
	ref := now
	if vv := h["Date"]; len(vv) > 0 {
		p := refLimitsParser{now: now, date: vv[0]}
		ref = p.reference()
	}
	return max(t.Sub(ref), 0), true
}

// RefServerDelay is the reference ServerDelay.
func RefServerDelay(h http.Header, now time.Time) (time.Duration, bool) {
	if d, ok := refParseRetryAfter(h, now); ok {
		return d, true
	}
	if d, ok := ietfDelay(h["Ratelimit"]); ok {
		return d, true
	}
	var pl parsedLimits
	refParse(h, now, &pl)
	return pl.exhaustedUntil(now)
}

// refParseInt parses an optionally negative decimal integer without building an
// error on failure.
func refParseInt(s string) (int64, bool) {
	neg := false
	if s != "" && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		// Eighteen digits cannot overflow: only longer numbers are checked.
		if len(s) > 18 && v > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// refParseDecimal parses a non-negative decimal number: digits with an optional
// fraction and exponent ("6", "7.66", ".5", "1e3"). Signs, NaN, Inf, hex and
// underscores are rejected. A number too large for a float64 is +Inf.
func refParseDecimal(s string) (float64, bool) {
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
