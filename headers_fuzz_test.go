package llmhttp_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmhttp/llmhttp"
)

// hdFuzzHeader turns fuzz input into a header: one "Name: value" per line;
// names are canonicalised as net/http does, except that a name starting
// with '~' is stored raw (a hand-built, non-canonical map). Lines without a
// colon become a header with an empty value.
func hdFuzzHeader(block string) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(block, "\n") {
		name, value, _ := strings.Cut(line, ":")
		if raw, ok := strings.CutPrefix(name, "~"); ok {
			h[raw] = append(h[raw], value)
			continue
		}
		k := http.CanonicalHeaderKey(strings.TrimSpace(name))
		h[k] = append(h[k], value)
	}
	return h
}

// hdFuzzNow maps fuzz input to an instant between 1970 and about 2100.
func hdFuzzNow(sec int64, nsec uint32) time.Time {
	const span = 130 * 365 * 24 * 3600
	sec %= span
	if sec < 0 {
		sec += span
	}
	return time.Unix(sec, int64(nsec%1e9)).UTC()
}

// hdFuzzSeeds are header blocks every header fuzzer starts from.
var hdFuzzSeeds = []string{
	hdA1, hdA2, hdO1, hdO2, hdC1, hdC2, hdC3,
	hdC1 + "\nx-ratelimit-limit-tokens: -1\nx-ratelimit-reset-tokens: 0",
	"date: Thu, 21 Aug 2025 12:40:58 GMT\n" + hdA1,
	"date: Mon, 18 May 2026 11:31:55 GMT\nanthropic-ratelimit-input-tokens-remaining: 0\nanthropic-ratelimit-input-tokens-reset: 2026-05-18T11:32:18.5+00:00",
	"anthropic-fast-output-tokens-remaining: 0\nanthropic-fast-output-tokens-reset: 7.5s",
	"anthropic-priority-input-tokens-limit: 200000\nanthropic-priority-input-tokens-remaining: 0\nanthropic-priority-input-tokens-reset: 2026-05-18T11:42:18Z",
	"x-ratelimit-limit-project-tokens: 60000\nx-ratelimit-remaining-project-tokens: 0\nx-ratelimit-reset-project-tokens: 3s\nx-ratelimit-limit-tokens_usage_based: 5",
	"x-ratelimit-limit-tokens-minute: 500000\nx-ratelimit-remaining-tokens-minute: 0\nx-ratelimit-limit-req-minute: 60\nx-ratelimit-remaining-req-minute: 0",
	"ratelimitbysize-limit: 2000000\nratelimitbysize-remaining: 0\nratelimitbysize-reset: 12\nx-ratelimitbysize-limit-month: 10000000000\nx-ratelimitbysize-remaining-month: 0",
	"x-ratelimit-limit: 600\nx-ratelimit-remaining: 0\nx-ratelimit-reset: 1767225600.5\nx-tokenlimit-limit: 180000\nx-tokenlimit-remaining: 0",
	"ratelimit-limit: 100, 100;w=60\nratelimit-remaining: 0\nratelimit-reset: 17",
	`ratelimit-policy: "burst";q=100;w=60,"daily";q=1000;w=86400;qu="requests"` + "\n" + `ratelimit: "burst";r=0;t=30, "daily";r=900;t=40000`,
	`ratelimit-policy: tpm;q=30000;w=60;qu=tokens;pk=:cHJvamVjdA==:` + "\n" + `ratelimit: tpm;r=0;t=1.5;x="a\"b";y=?1;z=@1700000000`,
	"retry-after: 1e300\nretry-after-ms: NaN\nx-should-retry: TRUE",
	"retry-after: Fri, 31 Dec 9999 23:59:59 GMT",
	"~anthropic-ratelimit-requests-remaining: 0\nAnthropic-Ratelimit-Requests-Remaining: 5",
	"x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 9223372036s",
}

// hdCheckLimit checks the invariants of one parsed dimension.
func hdCheckLimit(t *testing.T, name string, l llmhttp.Limit, now time.Time) {
	t.Helper()
	if l.Limit < 0 || l.Remaining < 0 {
		t.Errorf("%s: negative count %+v", name, l)
	}
	if !l.HasRemaining && l.Remaining != 0 {
		t.Errorf("%s: Remaining without HasRemaining %+v", name, l)
	}
	if !l.Reset.IsZero() && (l.Reset.Before(now) || l.Reset.Sub(now) > 48*time.Hour) {
		t.Errorf("%s: Reset %v outside [now, now+48h] (now %v)", name, l.Reset, now)
	}
	if l.Window < 0 || l.Window > 366*24*time.Hour {
		t.Errorf("%s: Window %v", name, l.Window)
	}
	if !l.Known() && l != (llmhttp.Limit{}) {
		t.Errorf("%s: unknown but not zero %+v", name, l)
	}
}

func hdEachLimit(l llmhttp.Limits) map[string]llmhttp.Limit {
	return map[string]llmhttp.Limit{
		"Requests": l.Requests, "RequestsPerDay": l.RequestsPerDay, "Tokens": l.Tokens,
		"InputTokens": l.InputTokens, "OutputTokens": l.OutputTokens,
		"PriorityInputTokens": l.PriorityInputTokens, "PriorityOutputTokens": l.PriorityOutputTokens,
		"FastInputTokens": l.FastInputTokens, "FastOutputTokens": l.FastOutputTokens,
	}
}

// FuzzParseLimits checks, for random headers: no panic; counts never
// negative; resets zero or within [now, now+48h]; unknown dimensions exactly
// zero; the result independent of map iteration order and of unrelated
// headers; and ServerDelay covering every exhausted bucket it reports.
func FuzzParseLimits(f *testing.F) {
	for i, s := range hdFuzzSeeds {
		f.Add(s, int64(1779104515+i), uint32(i)*123456789)
	}
	f.Fuzz(func(t *testing.T, block string, sec int64, nsec uint32) {
		h := hdFuzzHeader(block)
		now := hdFuzzNow(sec, nsec)
		got := llmhttp.ParseLimits(h, now)
		for name, l := range hdEachLimit(got) {
			hdCheckLimit(t, name, l, now)
		}
		// Map iteration order differs between calls: the result must not.
		for range 3 {
			if again := llmhttp.ParseLimits(h, now); again != got {
				t.Fatalf("ParseLimits not deterministic:\n%+v\n%+v", got, again)
			}
		}
		h2 := h.Clone()
		h2["X-Fuzz-Unrelated"] = []string{"1"}
		h2["Content-Type"] = []string{"application/json"}
		if again := llmhttp.ParseLimits(h2, now); again != got {
			t.Fatalf("an unrelated header changed ParseLimits:\n%+v\n%+v", got, again)
		}

		d, ok := llmhttp.ServerDelay(h, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ServerDelay = %v, %v", d, ok)
		}
		if _, hinted := llmhttp.ParseRetryAfter(h, now); hinted || len(h["Ratelimit"]) > 0 {
			return // an earlier step of §5.3 decides
		}
		for name, l := range hdEachLimit(got) {
			if l.Exhausted() && l.Reset.After(now) {
				if want := l.Reset.Sub(now); !ok || d < want {
					t.Fatalf("ServerDelay = %v, %v; %s is empty until %v from now", d, ok, name, want)
				}
			}
		}
	})
}

// FuzzParseRetryAfter checks: no panic; never a negative duration; false
// means 0; plain integers round-trip exactly; retry-after-ms wins when it
// parses; ServerDelay agrees; ParseShouldRetry only reports true/false.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range [][3]string{
		{"", "23", ""},
		{"6000", "6", ""},
		{"12.5", "", ""},
		{"", "1.5", ""},
		{"", "Thu, 21 Aug 2025 12:41:30 GMT", "Thu, 21 Aug 2025 12:40:58 GMT"},
		{"", "Thursday, 21-Aug-25 12:41:30 GMT", ""},
		{"", "Thu Aug 21 12:41:30 2025", ""},
		{"", "Fri, 31 Dec 9999 23:59:59 GMT", ""},
		{"-1", "-1", ""},
		{"NaN", "Inf", ""},
		{"1e400", "1e300", ""},
		{"0x10", "1_000", ""},
		{" 5 ", "\t7\t", ""},
		{"", "true", ""},
	} {
		f.Add(s[0], s[1], s[2], int64(1755780030), uint32(0))
	}
	f.Fuzz(func(t *testing.T, ms, ra, date string, sec int64, nsec uint32) {
		now := hdFuzzNow(sec, nsec)
		h := http.Header{}
		if ms != "" {
			h["Retry-After-Ms"] = []string{ms}
		}
		if ra != "" {
			h["Retry-After"] = []string{ra}
			h["X-Should-Retry"] = []string{ra}
		}
		if date != "" {
			h["Date"] = []string{date}
		}
		d, ok := llmhttp.ParseRetryAfter(h, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter = %v, %v", d, ok)
		}
		if n, err := strconv.ParseUint(ms, 10, 64); err == nil && n < 1e12 {
			if want := time.Duration(n) * time.Millisecond; d != want || !ok {
				t.Fatalf("retry-after-ms %q = %v, %v; want %v", ms, d, ok, want)
			}
		} else if n, err := strconv.ParseUint(ra, 10, 64); err == nil && n < 1e9 && ms == "" {
			if want := time.Duration(n) * time.Second; d != want || !ok {
				t.Fatalf("retry-after %q = %v, %v; want %v", ra, d, ok, want)
			}
		}
		if sd, sok := llmhttp.ServerDelay(h, now); ok && (sd != d || !sok) {
			t.Fatalf("ServerDelay = %v, %v; ParseRetryAfter = %v, true", sd, sok, d)
		}
		retry, set := llmhttp.ParseShouldRetry(h)
		v := strings.ToLower(strings.TrimSpace(ra))
		if set != (v == "true" || v == "false") || (set && retry != (v == "true")) || (!set && retry) {
			t.Fatalf("ParseShouldRetry(%q) = %v, %v", ra, retry, set)
		}
	})
}

// FuzzServerDelay checks, for random headers: no panic; never negative;
// false means 0; deterministic; retry-after-ms and retry-after come first;
// the result does not depend on unrelated headers.
func FuzzServerDelay(f *testing.F) {
	for i, s := range hdFuzzSeeds {
		f.Add(s, int64(1779104515+i), uint32(i)*987654321)
	}
	f.Fuzz(func(t *testing.T, block string, sec int64, nsec uint32) {
		h := hdFuzzHeader(block)
		now := hdFuzzNow(sec, nsec)
		d, ok := llmhttp.ServerDelay(h, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ServerDelay = %v, %v", d, ok)
		}
		for range 3 {
			if d2, ok2 := llmhttp.ServerDelay(h, now); d2 != d || ok2 != ok {
				t.Fatalf("ServerDelay not deterministic: %v, %v then %v, %v", d, ok, d2, ok2)
			}
		}
		if rd, rok := llmhttp.ParseRetryAfter(h, now); rok && (rd != d || !ok) {
			t.Fatalf("ServerDelay = %v, %v; ParseRetryAfter = %v, true", d, ok, rd)
		}
		if !ok {
			return
		}
		h2 := h.Clone()
		h2["X-Fuzz-Unrelated"] = []string{"0"}
		if d2, ok2 := llmhttp.ServerDelay(h2, now); d2 != d || !ok2 {
			t.Fatalf("an unrelated header changed ServerDelay: %v then %v, %v", d, d2, ok2)
		}
	})
}

// hdKnownKeys returns every header key ParseLimits reads: the case labels
// of headerCode in headers.go.
func hdKnownKeys(tb testing.TB) []string {
	tb.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "headers.go", nil, 0)
	if err != nil {
		tb.Fatal(err)
	}
	var keys []string
	for _, d := range file.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "headerCode" {
			ast.Inspect(fn, func(n ast.Node) bool {
				if cc, ok := n.(*ast.CaseClause); ok {
					for _, e := range cc.List {
						k, err := strconv.Unquote(e.(*ast.BasicLit).Value)
						if err != nil {
							tb.Fatal(err)
						}
						keys = append(keys, k)
					}
				}
				return true
			})
		}
	}
	if len(keys) < 50 {
		tb.Fatalf("found %d keys in headerCode", len(keys))
	}
	return keys
}

// hdSameNows returns the instants FuzzParseLimitsSame parses h at: the one
// from the fuzz input, and, so that absolute resets land near now (within
// 48 hours either way, or just beyond) rather than decades away, one around
// the first RFC 3339 or Unix-time value of h and one around its Date.
func hdSameNows(h http.Header, sec int64, nsec uint32) []time.Time {
	nows := []time.Time{hdFuzzNow(sec, nsec)}
	const span = int64(100 * time.Hour)
	offset := time.Duration(sec%span) - 50*time.Hour + time.Duration(nsec)
	for k, vv := range h {
		if k == "Date" || len(vv) == 0 {
			continue
		}
		v := strings.TrimSpace(vv[0])
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			nows = append(nows, t.Add(offset))
			break
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 1e9 && f < 1e16 {
			t := time.Unix(int64(f), 0)
			if f > 1e12 {
				t = time.UnixMilli(int64(f))
			}
			nows = append(nows, t.Add(offset))
			break
		}
	}
	if vv := h["Date"]; len(vv) > 0 {
		if t, err := http.ParseTime(strings.TrimSpace(vv[0])); err == nil {
			nows = append(nows, t.Add(time.Duration(nsec%6000)*time.Millisecond-3*time.Second))
		}
	}
	return nows
}

// hdSameCheck fails t unless ParseLimits and ServerDelay give exactly what
// the reference implementation gives for h at now.
func hdSameCheck(t *testing.T, h http.Header, now time.Time) {
	t.Helper()
	if got, want := llmhttp.ParseLimits(h, now), llmhttp.RefParseLimits(h, now); got != want {
		t.Fatalf("ParseLimits at %v differs from the reference:\n got %+v\nwant %+v", now, got, want)
	}
	d, ok := llmhttp.ServerDelay(h, now)
	if rd, rok := llmhttp.RefServerDelay(h, now); d != rd || ok != rok {
		t.Fatalf("ServerDelay at %v = %v, %v; the reference gives %v, %v", now, d, ok, rd, rok)
	}
}

// hdSameSeeds are header blocks of every value shape the fast paths of
// ParseLimits handle, and of near misses they must leave to the general
// parsers.
var hdSameSeeds = []string{
	"anthropic-ratelimit-requests-reset: 2025-08-21T12:40:59.123456789Z\nanthropic-ratelimit-requests-remaining: 0",
	"anthropic-ratelimit-requests-reset: 2025-08-21T12:40:59.1234567891Z\nanthropic-ratelimit-requests-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21T14:40:59+02:00\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21T10:40:59.5-02:00\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21t12:40:59z\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21T12:40:59,5Z\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2024-02-29T23:59:59Z\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-02-29T23:59:59Z\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21T24:00:00Z\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21T12:40:60Z\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21T12:40:59+24:00\nanthropic-ratelimit-tokens-remaining: 0",
	"anthropic-ratelimit-tokens-reset: 2025-08-21T2:40:59.5Z\nanthropic-ratelimit-tokens-remaining: 0",
	"date: Thu, 21 Aug 2025 12:40:58 GMT\nanthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z\nanthropic-ratelimit-requests-remaining: 0",
	"date: thu, 21 aug 2025 12:40:58 GMT\nanthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z\nanthropic-ratelimit-requests-remaining: 0",
	"date: Thu, 21 Aug 2025 12:40:58.5 GMT\nanthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z\nanthropic-ratelimit-requests-remaining: 0",
	"date: Thu, 21 Aug 2025 2:40:58 GMT\nanthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z\nanthropic-ratelimit-requests-remaining: 0",
	"date: Fri, 29 Feb 2025 12:40:58 GMT\nanthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z\nanthropic-ratelimit-requests-remaining: 0",
	"date: Thursday, 21-Aug-25 12:40:58 GMT\nanthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z\nanthropic-ratelimit-requests-remaining: 0",
	"date: Thu Aug 21 12:40:58 2025\nx-ratelimit-reset: 1755780060\nx-ratelimit-remaining: 0",
	"x-ratelimit-reset-requests: 2m59.56s\nx-ratelimit-remaining-requests: 0\nx-ratelimit-reset-tokens: 7.66s\nx-ratelimit-remaining-tokens: 0",
	"x-ratelimit-reset-requests: 1h2m3.123456789s\nx-ratelimit-reset-tokens: 1.0000000001s\nx-ratelimit-remaining-tokens: 0",
	"x-ratelimit-reset-requests: .5s\nx-ratelimit-reset-tokens: 5.s\nx-ratelimit-remaining-tokens: 0",
	"x-ratelimit-reset-requests: 0.001ms\nx-ratelimit-reset-tokens: 47h59m59.999999999s\nx-ratelimit-remaining-tokens: 0",
	"x-ratelimit-reset-requests: 48h0.000000001s\nx-ratelimit-reset-tokens: 1.5h\nx-ratelimit-remaining-tokens: 0",
	"x-ratelimit-reset-requests: 1µs\nx-ratelimit-reset-tokens: +1s\nx-ratelimit-remaining-tokens: 0",
	"x-ratelimit-reset: 1755780060123\nx-ratelimit-remaining: 0\nx-ratelimit-limit: 10",
	"Anthropic-Ratelimit-Requests-Remainin: 0\nX-Ratelimit-Remaining-Request: 0\nRatelimit-Remainingg: 0\nDat: x",
	"Content-Type: application/json\nX-Ratelimit-Limit-Requests: 10000\nX-Ratelimit-Remaining-Requests: 9999\nX-Ratelimit-Reset-Requests: 6ms\nX-Ratelimit-Limit-Tokens: 30000000\nX-Ratelimit-Remaining-Tokens: 29999000\nX-Ratelimit-Reset-Tokens: 2ms",
}

// FuzzParseLimitsSame checks that ParseLimits and ServerDelay, tuned for
// speed, give exactly the results of the reference implementation in
// headers_ref_test.go for random header blocks.
func FuzzParseLimitsSame(f *testing.F) {
	at := int64(1755780058) // 2025-08-21T12:40:58Z, the fixtures' Date
	for i, s := range append(hdFuzzSeeds, hdSameSeeds...) {
		f.Add(s, at+int64(i), uint32(i)*123456789)
	}
	for i, k := range hdKnownKeys(f) {
		f.Add(k+": 5", at, uint32(i))
	}
	f.Fuzz(func(t *testing.T, block string, sec int64, nsec uint32) {
		h := hdFuzzHeader(block)
		for _, now := range hdSameNows(h, sec, nsec) {
			hdSameCheck(t, h, now)
		}
	})
}

// TestParseLimitsSameEveryKey checks every key the reference reads, alone,
// with values of each kind, against the reference, and that each one is
// read: a fast filter of keys must not drop any.
func TestParseLimitsSameEveryKey(t *testing.T) {
	now := time.Date(2025, 8, 21, 12, 40, 58, 5e8, time.UTC)
	// Instants a fuzzer does not reach: with a monotonic reading, the zero
	// Time, and the last minute before time.Time's seconds saturate (a
	// reset added to it is clamped).
	const unixToInternal = (1969*365 + 1969/4 - 1969/100 + 1969/400) * 24 * 3600
	odd := []time.Time{time.Now(), {}, time.Unix(math.MaxInt64-unixToInternal-60, 0)}
	for _, k := range hdKnownKeys(t) {
		for _, v := range []string{"5", "0", "-1", " 7 ", "\u00a07\u00a0", "12ms", "7.66s", "2m", "1755780060", "2025-08-21T12:40:59Z", "Thu, 21 Aug 2025 12:40:50 GMT", `"a";r=0;t=3`, `"a";q=9;w=60`} {
			h := http.Header{k: {v}}
			hdSameCheck(t, h, now)
			for _, now := range odd {
				hdSameCheck(t, http.Header{k: {v}, "Content-Type": {"text/plain"}}, now)
			}
			h["Date"] = []string{"Thu, 21 Aug 2025 12:40:50 GMT"}
			hdSameCheck(t, h, now)
			hdSameCheck(t, http.Header{strings.ToLower(k): {v}}, now)
		}
		switch k {
		case "Date", "Ratelimit", "Ratelimit-Policy":
		default:
			if llmhttp.ParseLimits(http.Header{k: {"5"}}, now) == (llmhttp.Limits{}) {
				t.Errorf("%s: 5 is not read", k)
			}
		}
	}
}

// FuzzResetSame is FuzzParseLimitsSame for one value at a time, where the
// fast paths of ParseLimits are: it is used as every kind of reset (an
// Anthropic one, the generic one that may be a Unix time, an OpenAI one
// whose length decides per minute or per day) and, in a second header, as
// the Date the absolute ones are measured from.
func FuzzResetSame(f *testing.F) {
	for _, v := range []string{
		"6ms", "7.66s", "2m59.56s", "1h2m3.123456789s", ".5s", "5.s", "1.0000000001s", "1µs", "+1s", "0",
		"2025-08-21T12:40:59Z", "2025-08-21T12:40:59.123456789+02:00", "2025-08-21t12:40:59z",
		"2024-02-29T00:00:00Z", "2025-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "2025-08-21T12:40:59,5Z",
		"Thu, 21 Aug 2025 12:40:58 GMT", "Fri, 29 Feb 2024 23:59:59 GMT", "thu, 21 aug 2025 12:40:58 GMT",
		"1755780060", "1755780060123", "59.5", "1e3",
	} {
		f.Add(v, int64(1755780058), uint32(0))
	}
	f.Fuzz(func(t *testing.T, v string, sec int64, nsec uint32) {
		h := http.Header{
			"Anthropic-Ratelimit-Requests-Remaining": {"0"},
			"Anthropic-Ratelimit-Requests-Reset":     {v},
			"X-Ratelimit-Limit":                      {"10"},
			"X-Ratelimit-Reset":                      {v},
			"X-Ratelimit-Limit-Tokens":               {"100"},
			"X-Ratelimit-Remaining-Tokens":           {"99"},
			"X-Ratelimit-Reset-Tokens":               {v},
		}
		for _, now := range hdSameNows(h, sec, nsec) {
			hdSameCheck(t, h, now)
			d := http.Header{"Date": {v}, "Anthropic-Ratelimit-Requests-Reset": {"2025-08-21T12:40:59Z"}}
			for _, now := range append(hdSameNows(d, sec, nsec), now) {
				hdSameCheck(t, d, now)
			}
		}
	})
}
