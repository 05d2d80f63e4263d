package llmhttp

import (
	"strings"
	"time"
)

// This file reads the IETF RateLimit and RateLimit-Policy fields
// (draft-ietf-httpapi-ratelimit-headers, revisions -08 to -11):
//
//	RateLimit-Policy: "burst";q=100;w=60,"daily";q=1000;w=86400
//	RateLimit: "burst";r=0;t=30
//
// Both are RFC 9651 structured-field Lists. The parser below is the subset of
// RFC 9651 those fields use: a List of Items whose bare item is a String or
// Token (the policy name), each with Parameters. Inner lists, and any other
// syntax error, make the whole field malformed, and the draft says
// "Malformed RateLimit header fields MUST be ignored". Nothing is allocated:
// names are slices of the field value (a String keeps its escapes, which is
// fine for matching names between the two fields).

// maxRateLimitItems is how many list members are kept; later ones are parsed
// (for syntax) and dropped.
const maxRateLimitItems = 8

// maxPolicyWindow bounds an IETF policy window; a longer w is ignored.
const maxPolicyWindow = 366 * day

// rlItem is one member of a RateLimit or RateLimit-Policy list.
type rlItem struct {
	name       string        // policy name
	unit       string        // qu: quota unit; "" means requests
	q, r       int64         // quota (policy), remaining (RateLimit)
	hasQ, hasR bool          //
	w          time.Duration // window (policy); 0 if absent
	t          time.Duration // time until the quota resets (RateLimit)
	hasT       bool          //
}

// rlList is a parsed field.
type rlList struct {
	items [maxRateLimitItems]rlItem
	n     int
}

// sfParser walks one field line.
type sfParser struct {
	s string
	i int
}

// sfKind is the type of a parsed bare item.
type sfKind uint8

const (
	sfInteger sfKind = iota + 1
	sfDecimal
	sfString
	sfToken
	sfBoolean
	sfBytes
	sfDate
)

// sfValue is a parsed bare item.
type sfValue struct {
	kind sfKind
	i    int64   // Integer, Date, Boolean (0/1)
	f    float64 // Decimal (and Integer, for convenience)
	s    string  // String (raw, escapes kept), Token
}

// parseRateLimitList parses every line of a field into l. It reports false if
// the field is malformed.
func parseRateLimitList(lines []string, l *rlList) bool {
	for _, line := range lines {
		p := sfParser{s: line}
		p.skipSP()
		p.s = strings.TrimRight(p.s, " ")
		if p.eof() {
			continue // an empty line is an empty list
		}
		for {
			var it rlItem
			if !p.item(&it) {
				return false
			}
			if l.n < len(l.items) {
				l.items[l.n] = it
				l.n++
			}
			p.skipOWS()
			if p.eof() {
				break
			}
			if p.s[p.i] != ',' {
				return false
			}
			p.i++
			p.skipOWS()
			if p.eof() {
				return false // trailing comma
			}
		}
	}
	return true
}

func (p *sfParser) eof() bool { return p.i >= len(p.s) }

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// item parses a policy name and its parameters into it.
func (p *sfParser) item(it *rlItem) bool {
	v, ok := p.bareItem()
	if !ok || (v.kind != sfString && v.kind != sfToken) {
		return false
	}
	it.name = v.s
	for !p.eof() && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		key, ok := p.key()
		if !ok {
			return false
		}
		val := sfValue{kind: sfBoolean, i: 1}
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if val, ok = p.bareItem(); !ok {
				return false
			}
		}
		if !it.param(key, val) {
			return false
		}
	}
	return true
}

// param applies one parameter. A known parameter of the wrong type or sign
// makes the field malformed; unknown ones (pk, vendor comments) are skipped.
func (it *rlItem) param(key string, v sfValue) bool {
	switch key {
	case "q", "r":
		if v.kind != sfInteger || v.i < 0 {
			return false
		}
		if key == "q" {
			it.q, it.hasQ = v.i, true
		} else {
			it.r, it.hasR = v.i, true
		}
	case "w":
		if v.kind != sfInteger || v.i <= 0 {
			return false
		}
		it.w = 0 // longer than maxPolicyWindow: unknown
		if v.i <= int64(maxPolicyWindow/time.Second) {
			it.w = time.Duration(v.i) * time.Second
		}
	case "t":
		if (v.kind != sfInteger && v.kind != sfDecimal) || v.f < 0 {
			return false
		}
		it.t, it.hasT = floatToDuration(v.f, time.Second), true
	case "qu":
		if v.kind != sfString && v.kind != sfToken {
			return false
		}
		it.unit = v.s
	}
	return true
}

// key parses a parameter key: lcalpha or "*", then lcalpha, DIGIT, "_", "-",
// "." or "*".
func (p *sfParser) key() (string, bool) {
	start := p.i
	if p.eof() || !(isLower(p.s[p.i]) || p.s[p.i] == '*') {
		return "", false
	}
	p.i++
	for !p.eof() {
		c := p.s[p.i]
		if !(isLower(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

// bareItem parses an Integer, Decimal, String, Token, Boolean, Byte Sequence
// or Date. Display Strings are not supported (malformed).
func (p *sfParser) bareItem() (sfValue, bool) {
	if p.eof() {
		return sfValue{}, false
	}
	switch c := p.s[p.i]; {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		start := p.i
		p.i++
		for !p.eof() && (isTchar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return sfValue{kind: sfToken, s: p.s[start:p.i]}, true
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := sfValue{kind: sfBoolean, i: int64(p.s[p.i+1] - '0')}
			p.i += 2
			return v, true
		}
		return sfValue{}, false
	case c == ':':
		p.i++
		for !p.eof() && p.s[p.i] != ':' {
			if c := p.s[p.i]; !(isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '=') {
				return sfValue{}, false
			}
			p.i++
		}
		if p.eof() {
			return sfValue{}, false
		}
		p.i++
		return sfValue{kind: sfBytes}, true
	case c == '@':
		p.i++
		v, ok := p.number()
		if !ok || v.kind != sfInteger {
			return sfValue{}, false
		}
		v.kind = sfDate
		return v, true
	}
	return sfValue{}, false
}

// number parses an RFC 9651 Integer (up to 15 digits) or Decimal (up to 12
// integer and 1 to 3 fraction digits).
func (p *sfParser) number() (sfValue, bool) {
	neg := false
	if !p.eof() && p.s[p.i] == '-' {
		neg = true
		p.i++
	}
	var ip int64
	n := 0
	for !p.eof() && isDigit(p.s[p.i]) {
		ip = ip*10 + int64(p.s[p.i]-'0')
		p.i++
		if n++; n > 15 {
			return sfValue{}, false
		}
	}
	if n == 0 {
		return sfValue{}, false
	}
	if p.eof() || p.s[p.i] != '.' {
		if neg {
			ip = -ip
		}
		return sfValue{kind: sfInteger, i: ip, f: float64(ip)}, true
	}
	if n > 12 {
		return sfValue{}, false
	}
	p.i++
	var frac, scale float64 = 0, 1
	m := 0
	for !p.eof() && isDigit(p.s[p.i]) {
		frac = frac*10 + float64(p.s[p.i]-'0')
		scale *= 10
		p.i++
		if m++; m > 3 {
			return sfValue{}, false
		}
	}
	if m == 0 {
		return sfValue{}, false
	}
	f := float64(ip) + frac/scale
	if neg {
		f = -f
	}
	return sfValue{kind: sfDecimal, f: f}, true
}

// str parses a String, returning its raw contents with escapes kept.
func (p *sfParser) str() (sfValue, bool) {
	p.i++ // opening quote
	start := p.i
	for !p.eof() {
		switch c := p.s[p.i]; {
		case c == '\\':
			if p.i+1 >= len(p.s) || (p.s[p.i+1] != '"' && p.s[p.i+1] != '\\') {
				return sfValue{}, false
			}
			p.i += 2
		case c == '"':
			v := sfValue{kind: sfString, s: p.s[start:p.i]}
			p.i++
			return v, true
		case c < 0x20 || c > 0x7e:
			return sfValue{}, false
		default:
			p.i++
		}
	}
	return sfValue{}, false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool { return isLower(c) || ('A' <= c && c <= 'Z') }

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// ietfDelay implements step 3 of ServerDelay: the largest t among the
// RateLimit items whose remaining r is 0.
func ietfDelay(lines []string) (time.Duration, bool) {
	if len(lines) == 0 {
		return 0, false
	}
	var l rlList
	if !parseRateLimitList(lines, &l) {
		return 0, false
	}
	d, ok := time.Duration(0), false
	for _, it := range l.items[:l.n] {
		if it.hasR && it.r == 0 && it.hasT && (!ok || it.t > d) {
			d, ok = it.t, true
		}
	}
	return d, ok
}

// ietfLimits maps the RateLimit-Policy and RateLimit fields to the request,
// per-day request and token dimensions. Items are matched by policy name;
// a policy's qu picks the dimension (requests by default; a unit naming
// tokens goes to tok; content-bytes, concurrent-requests and others are
// skipped), and a request policy of a day or longer goes to perDay. When
// several items land in one dimension the tighter one wins (see tighter).
// A malformed field is ignored.
func ietfLimits(policyLines, rlLines []string, now time.Time) (req, perDay, tok Limit) {
	var pol, rl rlList
	if !parseRateLimitList(policyLines, &pol) {
		pol.n = 0
	}
	if !parseRateLimitList(rlLines, &rl) {
		rl.n = 0
	}
	var used [maxRateLimitItems]bool // policies matched by a RateLimit item
	place := func(l Limit, unit string) {
		if !l.Known() {
			return
		}
		switch {
		case unit == "" || unit == "requests":
			if l.Window >= day {
				tighter(&perDay, &l)
			} else {
				tighter(&req, &l)
			}
		case strings.Contains(strings.ToLower(unit), "token"):
			tighter(&tok, &l)
		}
	}
	for _, it := range rl.items[:rl.n] {
		if !it.hasR {
			continue // r is required
		}
		l := Limit{Remaining: it.r, HasRemaining: true}
		if it.hasT && it.t <= maxResetAhead {
			l.Reset = now.Add(it.t)
		}
		unit := ""
		for j, pi := range pol.items[:pol.n] {
			if pi.name == it.name {
				used[j] = true
				if pi.hasQ {
					l.Limit = pi.q
				}
				l.Window, unit = pi.w, pi.unit
				break
			}
		}
		place(l, unit)
	}
	for j, pi := range pol.items[:pol.n] {
		if !used[j] && pi.hasQ {
			place(Limit{Limit: pi.q, Window: pi.w}, pi.unit)
		}
	}
	return req, perDay, tok
}
