package llmhttp_test

import (
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
