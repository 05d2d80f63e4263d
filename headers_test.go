package llmhttp_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// hdHeader builds a header from "Name: value" lines the way net/http does:
// names are canonicalised, values keep their surrounding spaces (a test of
// whitespace tolerance writes them on purpose), repeated names add values.
func hdHeader(block string) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(block, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			panic("hdHeader: no colon in " + line)
		}
		value = strings.TrimPrefix(value, " ")
		h.Add(strings.TrimSpace(name), value)
	}
	return h
}

// hdL builds a Limit; remaining < 0 means "not reported".
func hdL(limit, remaining int64, reset time.Time, window time.Duration) llmhttp.Limit {
	l := llmhttp.Limit{Limit: limit, Reset: reset, Window: window}
	if remaining >= 0 {
		l.Remaining, l.HasRemaining = remaining, true
	}
	return l
}

// hdNorm makes Limits comparable with ==: UTC, no monotonic reading.
func hdNorm(l llmhttp.Limits) llmhttp.Limits {
	v := reflect.ValueOf(&l).Elem()
	for i := range v.NumField() {
		f := v.Field(i).Addr().Interface().(*llmhttp.Limit)
		if !f.Reset.IsZero() {
			f.Reset = f.Reset.UTC().Round(0)
		}
	}
	return l
}

func hdCheckLimits(t *testing.T, got, want llmhttp.Limits) {
	t.Helper()
	got, want = hdNorm(got), hdNorm(want)
	if got == want {
		return
	}
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); g != w {
			t.Errorf("Limits.%s = %+v, want %+v", gv.Type().Field(i).Name, g, w)
		}
	}
}

func hdTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	hdT0 = time.Date(2026, 5, 18, 11, 41, 55, 0, time.UTC)
	hdNo time.Time // no reset
)

const (
	hdMin = time.Minute
	hdDay = 24 * time.Hour
)

// Fixture headers from llm-wire §5.6. hdA1 and hdO1 are the captured sets;
// the benchmarks use them with the rest of a real response's headers.
const (
	hdA1 = `content-type: application/json
request-id: req_011CSLsW7mFqvHHnzrKdKjAE
anthropic-organization-id: 36562039-1ae4-48e6-ae28-1e517e3d2d12
anthropic-ratelimit-requests-limit: 1000
anthropic-ratelimit-requests-remaining: 999
anthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z
anthropic-ratelimit-input-tokens-limit: 80000
anthropic-ratelimit-input-tokens-remaining: 80000
anthropic-ratelimit-input-tokens-reset: 2025-08-21T12:40:59Z
anthropic-ratelimit-output-tokens-limit: 16000
anthropic-ratelimit-output-tokens-remaining: 16000
anthropic-ratelimit-output-tokens-reset: 2025-08-21T12:41:00Z
anthropic-ratelimit-tokens-limit: 96000
anthropic-ratelimit-tokens-remaining: 96000
anthropic-ratelimit-tokens-reset: 2025-08-21T12:40:59Z`
	hdA2 = `retry-after: 23
x-should-retry: true
request-id: req_011CSHoEeqs5C35K2UUqR7Fy
anthropic-ratelimit-requests-limit: 1000
anthropic-ratelimit-requests-remaining: 994
anthropic-ratelimit-input-tokens-limit: 450000
anthropic-ratelimit-input-tokens-remaining: 0
anthropic-ratelimit-input-tokens-reset: 2026-05-18T11:42:18Z
anthropic-ratelimit-output-tokens-remaining: 14000`
	hdO1 = `x-request-id: req_deaa3616cbd15d33b4db96b3ba74d2b4
openai-processing-ms: 1032
x-ratelimit-limit-requests: 5000
x-ratelimit-limit-tokens: 160000
x-ratelimit-remaining-requests: 4999
x-ratelimit-remaining-tokens: 159976
x-ratelimit-reset-requests: 12ms
x-ratelimit-reset-tokens: 9ms`
	hdO2 = `retry-after: 4
x-ratelimit-remaining-tokens: 0
x-ratelimit-reset-tokens: 3.89s`
	hdC1 = `retry-after: 6
retry-after-ms: 6000
x-ratelimit-remaining-requests: 12
x-ratelimit-remaining-tokens: 0
apim-request-id: 5e1c2b4e-0000-4000-8000-000000000000`
	hdC2 = `retry-after: 2
x-ratelimit-limit-requests: 14400
x-ratelimit-remaining-requests: 14370
x-ratelimit-reset-requests: 2m59.56s
x-ratelimit-limit-tokens: 18000
x-ratelimit-remaining-tokens: 0
x-ratelimit-reset-tokens: 7.66s`
	hdC3 = `Retry-After: 60
X-RateLimit-Limit: 20
X-RateLimit-Remaining: 0
X-RateLimit-Reset: 1767225600000`
)

// withoutLines drops the header lines whose names (case-insensitive) are
// given, to test what the remaining hints say on their own.
func withoutLines(block string, names ...string) string {
	var out []string
	for _, line := range strings.Split(block, "\n") {
		name, _, _ := strings.Cut(line, ":")
		keep := true
		for _, n := range names {
			if strings.EqualFold(strings.TrimSpace(name), n) {
				keep = false
			}
		}
		if keep {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

type hdCase struct {
	name    string
	header  string
	now     time.Time
	limits  llmhttp.Limits
	retry   time.Duration // ParseRetryAfter
	retryOK bool
	delay   time.Duration // ServerDelay
	delayOK bool
}

func hdRun(t *testing.T, cases []hdCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := hdHeader(tc.header)
			now := tc.now
			if now.IsZero() {
				now = hdT0
			}
			hdCheckLimits(t, llmhttp.ParseLimits(h, now), tc.limits)
			if d, ok := llmhttp.ParseRetryAfter(h, now); d != tc.retry || ok != tc.retryOK {
				t.Errorf("ParseRetryAfter = %v, %v; want %v, %v", d, ok, tc.retry, tc.retryOK)
			}
			if d, ok := llmhttp.ServerDelay(h, now); d != tc.delay || ok != tc.delayOK {
				t.Errorf("ServerDelay = %v, %v; want %v, %v", d, ok, tc.delay, tc.delayOK)
			}
		})
	}
}

// TestHeaderFixtures covers every fixture of llm-wire §5.6 and its variants.
func TestHeaderFixtures(t *testing.T) {
	a1Now := hdTime("2025-08-21T12:40:30Z")
	orNow := hdTime("2025-12-31T23:58:00Z") // two minutes before C3's reset
	hdRun(t, []hdCase{
		{
			name:   "A1 Anthropic 200",
			header: hdA1,
			now:    a1Now,
			limits: llmhttp.Limits{
				Requests:     hdL(1000, 999, hdTime("2025-08-21T12:40:59Z"), hdMin),
				InputTokens:  hdL(80000, 80000, hdTime("2025-08-21T12:40:59Z"), hdMin),
				OutputTokens: hdL(16000, 16000, hdTime("2025-08-21T12:41:00Z"), hdMin),
				// The combined bucket is left out: input and output are present.
			},
		},
		{
			name:   "A2 Anthropic 429 ITPM",
			header: hdA2,
			limits: llmhttp.Limits{
				Requests:     hdL(1000, 994, hdNo, hdMin),
				InputTokens:  hdL(450000, 0, hdTime("2026-05-18T11:42:18Z"), hdMin),
				OutputTokens: hdL(0, 14000, hdNo, hdMin),
			},
			retry: 23 * time.Second, retryOK: true,
			delay: 23 * time.Second, delayOK: true,
		},
		{
			name:   "A2 without retry-after: the empty input bucket's reset",
			header: withoutLines(hdA2, "retry-after"),
			limits: llmhttp.Limits{
				Requests:     hdL(1000, 994, hdNo, hdMin),
				InputTokens:  hdL(450000, 0, hdTime("2026-05-18T11:42:18Z"), hdMin),
				OutputTokens: hdL(0, 14000, hdNo, hdMin),
			},
			delay: 23 * time.Second, delayOK: true,
		},
		{name: "A3 Anthropic spend cap: no hint", header: "request-id: req_018EeWyXxfu5pfWkrYcMdjWG"},
		{name: "A4 Anthropic 529", header: "request-id: req_01"},
		{name: "A5 Anthropic stream", header: "content-type: text/event-stream\nrequest-id: req_01"},
		{name: "A6 Anthropic 400 usage limits", header: "content-type: application/json"},
		{name: "A7 413 from Cloudflare", header: "content-type: text/html\nserver: cloudflare"},
		{
			name:   "O1 OpenAI 200",
			header: hdO1,
			limits: llmhttp.Limits{
				Requests: hdL(5000, 4999, hdT0.Add(12*time.Millisecond), hdMin),
				Tokens:   hdL(160000, 159976, hdT0.Add(9*time.Millisecond), hdMin),
			},
		},
		{
			name:   "O2 OpenAI 429 TPM: the header wins over the body's 3.89s",
			header: hdO2,
			limits: llmhttp.Limits{Tokens: hdL(0, 0, hdT0.Add(3890*time.Millisecond), hdMin)},
			retry:  4 * time.Second, retryOK: true,
			delay: 4 * time.Second, delayOK: true,
		},
		{
			name:   "O2 without retry-after: the token reset",
			header: withoutLines(hdO2, "retry-after"),
			limits: llmhttp.Limits{Tokens: hdL(0, 0, hdT0.Add(3890*time.Millisecond), hdMin)},
			delay:  3890 * time.Millisecond, delayOK: true,
		},
		{name: "O3 OpenAI quota", header: "content-type: application/json"},
		{name: "O4 OpenAI slow_down", header: "retry-after: 10", retry: 10 * time.Second, retryOK: true, delay: 10 * time.Second, delayOK: true},
		{name: "O5 OpenAI 503", header: "retry-after: 2", retry: 2 * time.Second, retryOK: true, delay: 2 * time.Second, delayOK: true},
		{name: "O6 OpenAI request too large", header: "content-type: application/json"},
		{
			name:   "C1 Azure 429",
			header: hdC1,
			limits: llmhttp.Limits{
				Requests: hdL(0, 12, hdNo, hdMin),
				Tokens:   hdL(0, 0, hdNo, hdMin),
			},
			retry: 6 * time.Second, retryOK: true,
			delay: 6 * time.Second, delayOK: true,
		},
		{
			name:   "C1 Azure retry-after-ms wins over retry-after",
			header: "retry-after: 6\nretry-after-ms: 5500.5",
			retry:  5500500 * time.Microsecond, retryOK: true,
			delay: 5500500 * time.Microsecond, delayOK: true,
		},
		{
			name:   "C1 variant Azure Responses -1 and 0: tokens unknown",
			header: hdC1 + "\nx-ratelimit-limit-tokens: -1\nx-ratelimit-reset-tokens: 0",
			limits: llmhttp.Limits{Requests: hdL(0, 12, hdNo, hdMin)},
			retry:  6 * time.Second, retryOK: true,
			delay: 6 * time.Second, delayOK: true,
		},
		{
			name:   "C1 variant without retry-after: an empty bucket without reset is no hint",
			header: withoutLines(hdC1+"\nx-ratelimit-limit-tokens: -1\nx-ratelimit-reset-tokens: 0", "retry-after", "retry-after-ms"),
			limits: llmhttp.Limits{Requests: hdL(0, 12, hdNo, hdMin)},
		},
		{
			name:   "C2 Groq 429 per minute: requests are per day",
			header: hdC2,
			limits: llmhttp.Limits{
				RequestsPerDay: hdL(14400, 14370, hdT0.Add(179560*time.Millisecond), hdDay),
				Tokens:         hdL(18000, 0, hdT0.Add(7660*time.Millisecond), hdMin),
			},
			retry: 2 * time.Second, retryOK: true,
			delay: 2 * time.Second, delayOK: true,
		},
		{
			name:   "C2 without retry-after: the token reset",
			header: withoutLines(hdC2, "retry-after"),
			limits: llmhttp.Limits{
				RequestsPerDay: hdL(14400, 14370, hdT0.Add(179560*time.Millisecond), hdDay),
				Tokens:         hdL(18000, 0, hdT0.Add(7660*time.Millisecond), hdMin),
			},
			delay: 7660 * time.Millisecond, delayOK: true,
		},
		{
			name:   "C2 variant Groq requests-per-day exhausted",
			header: strings.Replace(hdC2, "remaining-requests: 14370", "remaining-requests: 0", 1),
			limits: llmhttp.Limits{
				RequestsPerDay: hdL(14400, 0, hdT0.Add(179560*time.Millisecond), hdDay),
				Tokens:         hdL(18000, 0, hdT0.Add(7660*time.Millisecond), hdMin),
			},
			retry: 2 * time.Second, retryOK: true,
			delay: 2 * time.Second, delayOK: true, // retry-after comes first (§5.3)
		},
		{
			name:   "C2 variant without retry-after: blocked until the daily reset",
			header: withoutLines(strings.Replace(hdC2, "remaining-requests: 14370", "remaining-requests: 0", 1), "retry-after"),
			limits: llmhttp.Limits{
				RequestsPerDay: hdL(14400, 0, hdT0.Add(179560*time.Millisecond), hdDay),
				Tokens:         hdL(18000, 0, hdT0.Add(7660*time.Millisecond), hdMin),
			},
			delay: 179560 * time.Millisecond, delayOK: true, // the later of the two empty buckets
		},
		{name: "C3 OpenRouter 402", header: "content-type: application/json"},
		{
			name:   "C3 OpenRouter 429, reset in epoch ms",
			header: hdC3,
			now:    orNow,
			limits: llmhttp.Limits{Requests: hdL(20, 0, hdTime("2026-01-01T00:00:00Z"), 0)},
			retry:  60 * time.Second, retryOK: true,
			delay: 60 * time.Second, delayOK: true,
		},
		{
			name:   "C3 without Retry-After: the reset",
			header: withoutLines(hdC3, "retry-after"),
			now:    orNow,
			limits: llmhttp.Limits{Requests: hdL(20, 0, hdTime("2026-01-01T00:00:00Z"), 0)},
			delay:  2 * time.Minute, delayOK: true,
		},
		{
			name:   "C3 variant reset in epoch seconds",
			header: withoutLines(hdC3, "retry-after", "x-ratelimit-reset") + "\nX-RateLimit-Reset: 1767225600",
			now:    orNow,
			limits: llmhttp.Limits{Requests: hdL(20, 0, hdTime("2026-01-01T00:00:00Z"), 0)},
			delay:  2 * time.Minute, delayOK: true,
		},
		{
			name:   "C3 variant reset in delta seconds",
			header: withoutLines(hdC3, "retry-after", "x-ratelimit-reset") + "\nX-RateLimit-Reset: 30",
			now:    orNow,
			limits: llmhttp.Limits{Requests: hdL(20, 0, orNow.Add(30*time.Second), 0)},
			delay:  30 * time.Second, delayOK: true,
		},
		{name: "C3 OpenRouter 200 error body", header: "content-type: application/json"},
		{name: "C4 DeepSeek", header: "content-type: application/json"},
		{name: "C5 Gemini compat 429: no header", header: "content-type: application/json"},
		{name: "C6 Mistral 429", header: "retry-after: 5", retry: 5 * time.Second, retryOK: true, delay: 5 * time.Second, delayOK: true},
	})
}

// TestParseLimitsFamilies has a row for each rate-limit line of llm-wire
// §5.4 and the choices ParseLimits makes between families.
func TestParseLimitsFamilies(t *testing.T) {
	r1 := hdT0.Add(30 * time.Second)
	r1s := r1.Format(time.RFC3339)
	hdRun(t, []hdCase{
		{
			name:   "anthropic combined tokens when input/output are absent",
			header: "anthropic-ratelimit-tokens-limit: 96000\nanthropic-ratelimit-tokens-remaining: 95000\nanthropic-ratelimit-tokens-reset: " + r1s,
			limits: llmhttp.Limits{Tokens: hdL(96000, 95000, r1, hdMin)},
		},
		{
			name:   "anthropic combined tokens are not mixed into input/output",
			header: "anthropic-ratelimit-tokens-limit: 96000\nanthropic-ratelimit-output-tokens-limit: 16000",
			limits: llmhttp.Limits{OutputTokens: hdL(16000, -1, hdNo, hdMin)},
		},
		{
			name:   "anthropic exhausted combined bucket still gives a delay",
			header: "anthropic-ratelimit-tokens-remaining: 0\nanthropic-ratelimit-tokens-reset: " + r1s + "\nanthropic-ratelimit-input-tokens-remaining: 5000",
			limits: llmhttp.Limits{InputTokens: hdL(0, 5000, hdNo, hdMin)},
			delay:  30 * time.Second, delayOK: true,
		},
		{
			name: "anthropic priority tier",
			header: "anthropic-priority-input-tokens-limit: 200000\nanthropic-priority-input-tokens-remaining: 199000\nanthropic-priority-input-tokens-reset: " + r1s +
				"\nanthropic-priority-output-tokens-limit: 40000\nanthropic-priority-output-tokens-remaining: 0\nanthropic-priority-output-tokens-reset: " + hdT0.Add(45*time.Second).Format(time.RFC3339),
			limits: llmhttp.Limits{
				PriorityInputTokens:  hdL(200000, 199000, r1, hdMin),
				PriorityOutputTokens: hdL(40000, 0, hdT0.Add(45*time.Second), hdMin),
			},
			delay: 45 * time.Second, delayOK: true,
		},
		{
			name: "anthropic fast mode, RFC 3339 and duration resets",
			header: "anthropic-fast-input-tokens-limit: 100000\nanthropic-fast-input-tokens-remaining: 50000\nanthropic-fast-input-tokens-reset: " + r1s +
				"\nanthropic-fast-output-tokens-limit: 8000\nanthropic-fast-output-tokens-remaining: 7000\nanthropic-fast-output-tokens-reset: 7.5s",
			limits: llmhttp.Limits{
				FastInputTokens:  hdL(100000, 50000, r1, hdMin),
				FastOutputTokens: hdL(8000, 7000, hdT0.Add(7500*time.Millisecond), hdMin),
			},
		},
		{
			name:   "anthropic RFC 3339 with fraction and offset",
			header: "anthropic-ratelimit-requests-remaining: 3\nanthropic-ratelimit-requests-reset: 2026-05-18T13:42:00.25+02:00",
			limits: llmhttp.Limits{Requests: hdL(0, 3, hdT0.Add(5250*time.Millisecond), hdMin)},
		},
		{
			name:   "anthropic reset already past is now",
			header: "anthropic-ratelimit-requests-remaining: 0\nanthropic-ratelimit-requests-reset: " + hdT0.Add(-3*time.Second).Format(time.RFC3339),
			limits: llmhttp.Limits{Requests: hdL(0, 0, hdT0, hdMin)},
			// A reset already past is no hint: back off rather than retry at once.
		},
		{
			name:   "anthropic reset absurdly far is ignored",
			header: "anthropic-ratelimit-requests-remaining: 0\nanthropic-ratelimit-requests-reset: 2126-05-18T11:42:18Z",
			limits: llmhttp.Limits{Requests: hdL(0, 0, hdNo, hdMin)},
		},
		{
			name:   "anthropic reset years ago is ignored",
			header: "anthropic-ratelimit-requests-limit: 50\nanthropic-ratelimit-requests-reset: 1999-01-01T00:00:00Z",
			limits: llmhttp.Limits{Requests: hdL(50, -1, hdNo, hdMin)},
		},
		{
			name: "clock skew: Date 10 minutes behind now, resets measured from Date",
			header: "date: " + hdT0.Add(-10*time.Minute).Format(http.TimeFormat) +
				"\nanthropic-ratelimit-input-tokens-remaining: 0\nanthropic-ratelimit-input-tokens-reset: " + hdT0.Add(-10*time.Minute+20*time.Second).Format(time.RFC3339),
			limits: llmhttp.Limits{InputTokens: hdL(0, 0, hdT0.Add(20*time.Second), hdMin)},
			delay:  20 * time.Second, delayOK: true,
		},
		{
			name: "clock skew: Date an hour ahead of now",
			header: "date: " + hdT0.Add(time.Hour).Format(http.TimeFormat) +
				"\nanthropic-ratelimit-input-tokens-remaining: 0\nanthropic-ratelimit-input-tokens-reset: " + hdT0.Add(time.Hour+20*time.Second).Format(time.RFC3339),
			limits: llmhttp.Limits{InputTokens: hdL(0, 0, hdT0.Add(20*time.Second), hdMin)},
			delay:  20 * time.Second, delayOK: true,
		},
		{
			name: "Date within Date's resolution is not skew",
			header: "date: " + hdT0.Add(-time.Second).Format(http.TimeFormat) +
				"\nanthropic-ratelimit-input-tokens-remaining: 0\nanthropic-ratelimit-input-tokens-reset: " + hdT0.Add(20*time.Second).Format(time.RFC3339),
			limits: llmhttp.Limits{InputTokens: hdL(0, 0, hdT0.Add(20*time.Second), hdMin)},
			delay:  20 * time.Second, delayOK: true,
		},
		{
			name:   "unparseable Date is ignored",
			header: "date: yesterday\nanthropic-ratelimit-input-tokens-remaining: 0\nanthropic-ratelimit-input-tokens-reset: " + r1s,
			limits: llmhttp.Limits{InputTokens: hdL(0, 0, r1, hdMin)},
			delay:  30 * time.Second, delayOK: true,
		},
		{
			name:   "Date does not move relative resets",
			header: "date: " + hdT0.Add(-time.Hour).Format(http.TimeFormat) + "\nx-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 5s",
			limits: llmhttp.Limits{Tokens: hdL(0, 0, hdT0.Add(5*time.Second), hdMin)},
			delay:  5 * time.Second, delayOK: true,
		},
		{
			name:   "openai Go durations",
			header: "x-ratelimit-limit-requests: 60\nx-ratelimit-remaining-requests: 59\nx-ratelimit-reset-requests: 1s\nx-ratelimit-limit-tokens: 150000\nx-ratelimit-remaining-tokens: 149984\nx-ratelimit-reset-tokens: 6m0s",
			limits: llmhttp.Limits{
				Requests: hdL(60, 59, hdT0.Add(time.Second), hdMin),
				// A token bucket that takes 6 minutes to refill is not per minute.
				Tokens: hdL(150000, 149984, hdT0.Add(6*time.Minute), hdDay),
			},
		},
		{
			name:   "openai duration with hours",
			header: "x-ratelimit-reset-tokens: 1h2m3.5s\nx-ratelimit-remaining-tokens: 0",
			limits: llmhttp.Limits{Tokens: hdL(0, 0, hdT0.Add(time.Hour+2*time.Minute+3500*time.Millisecond), hdDay)},
			delay:  time.Hour + 2*time.Minute + 3500*time.Millisecond, delayOK: true,
		},
		{
			name:   "azure bare integer seconds",
			header: "x-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 45",
			limits: llmhttp.Limits{Tokens: hdL(0, 0, hdT0.Add(45*time.Second), hdMin)},
			delay:  45 * time.Second, delayOK: true,
		},
		{
			name:   "bare float seconds",
			header: "x-ratelimit-remaining-tokens: 10\nx-ratelimit-reset-tokens: 7.66",
			limits: llmhttp.Limits{Tokens: hdL(0, 10, hdT0.Add(7660*time.Millisecond), hdMin)},
		},
		{
			name:   "azure negative remaining is unknown, the limit stays",
			header: "x-ratelimit-limit-requests: 100\nx-ratelimit-remaining-requests: -1",
			limits: llmhttp.Limits{Requests: hdL(100, -1, hdNo, hdMin)},
		},
		{
			name:   "negative reset is unknown",
			header: "x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: -5s",
			limits: llmhttp.Limits{Requests: hdL(0, 0, hdNo, hdMin)},
		},
		{
			name:   "groq near a full day bucket: the implied window tells",
			header: "x-ratelimit-limit-requests: 14400\nx-ratelimit-remaining-requests: 14399\nx-ratelimit-reset-requests: 6s",
			limits: llmhttp.Limits{RequestsPerDay: hdL(14400, 14399, hdT0.Add(6*time.Second), hdDay)},
		},
		{
			name:   "per-day reset without counts",
			header: "x-ratelimit-reset-requests: 45m\nx-ratelimit-remaining-requests: 3",
			limits: llmhttp.Limits{RequestsPerDay: hdL(0, 3, hdT0.Add(45*time.Minute), hdDay)},
		},
		{
			name:   "request reset over a minute without counts",
			header: "x-ratelimit-reset-requests: 1m30s\nx-ratelimit-remaining-requests: 3",
			limits: llmhttp.Limits{RequestsPerDay: hdL(0, 3, hdT0.Add(90*time.Second), hdDay)},
		},
		{
			name:   "a full-minute request reset in whole seconds stays per minute",
			header: "x-ratelimit-limit-requests: 60\nx-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 60",
			limits: llmhttp.Limits{Requests: hdL(60, 0, hdT0.Add(time.Minute), hdMin)},
			delay:  time.Minute, delayOK: true,
		},
		{
			name:   "a per-minute bucket in debt stays per minute",
			header: "x-ratelimit-limit-tokens: 30000\nx-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 2m30s",
			limits: llmhttp.Limits{Tokens: hdL(30000, 0, hdT0.Add(150*time.Second), hdMin)},
			delay:  150 * time.Second, delayOK: true,
		},
		{
			name:   "a large bucket's rounded-up reset stays per minute",
			header: "x-ratelimit-limit-tokens: 10000000\nx-ratelimit-remaining-tokens: 9999999\nx-ratelimit-reset-tokens: 1ms\nx-ratelimit-limit-requests: 10000\nx-ratelimit-remaining-requests: 9999\nx-ratelimit-reset-requests: 1",
			limits: llmhttp.Limits{
				Requests: hdL(10000, 9999, hdT0.Add(time.Second), hdMin),
				Tokens:   hdL(10000000, 9999999, hdT0.Add(time.Millisecond), hdMin),
			},
		},
		{
			name:   "a full minute bucket stays per minute",
			header: "x-ratelimit-limit-requests: 500\nx-ratelimit-remaining-requests: 500\nx-ratelimit-reset-requests: 0s",
			limits: llmhttp.Limits{Requests: hdL(500, 500, hdT0, hdMin)},
		},
		{
			name:   "openai project tokens tighter than the organisation",
			header: hdO1 + "\nx-ratelimit-limit-project-tokens: 60000\nx-ratelimit-remaining-project-tokens: 57000\nx-ratelimit-reset-project-tokens: 3s",
			limits: llmhttp.Limits{
				Requests: hdL(5000, 4999, hdT0.Add(12*time.Millisecond), hdMin),
				Tokens:   hdL(60000, 57000, hdT0.Add(3*time.Second), hdMin),
			},
		},
		{
			name:   "openai organisation tighter than the project",
			header: "x-ratelimit-limit-tokens: 30000\nx-ratelimit-remaining-tokens: 1000\nx-ratelimit-reset-tokens: 58s\nx-ratelimit-limit-project-tokens: 60000\nx-ratelimit-remaining-project-tokens: 57000\nx-ratelimit-reset-project-tokens: 3s",
			limits: llmhttp.Limits{Tokens: hdL(30000, 1000, hdT0.Add(58*time.Second), hdMin)},
		},
		{
			name:   "openai project tokens alone",
			header: "x-ratelimit-limit-project-tokens: 60000\nx-ratelimit-remaining-project-tokens: 0\nx-ratelimit-reset-project-tokens: 3s",
			limits: llmhttp.Limits{Tokens: hdL(60000, 0, hdT0.Add(3*time.Second), hdMin)},
			delay:  3 * time.Second, delayOK: true,
		},
		{
			name:   "openai equal remaining: the later reset",
			header: "x-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 2s\nx-ratelimit-remaining-project-tokens: 0\nx-ratelimit-reset-project-tokens: 9s",
			limits: llmhttp.Limits{Tokens: hdL(0, 0, hdT0.Add(9*time.Second), hdMin)},
			delay:  9 * time.Second, delayOK: true,
		},
		{
			name:   "openai usage-based tokens are ignored",
			header: hdO1 + "\nx-ratelimit-limit-tokens_usage_based: 1\nx-ratelimit-remaining-tokens_usage_based: 0\nx-ratelimit-reset-tokens_usage_based: 40s",
			limits: llmhttp.Limits{
				Requests: hdL(5000, 4999, hdT0.Add(12*time.Millisecond), hdMin),
				Tokens:   hdL(160000, 159976, hdT0.Add(9*time.Millisecond), hdMin),
			},
		},
		{
			name:   "mistral new headers",
			header: "x-ratelimit-limit-tokens-minute: 500000\nx-ratelimit-remaining-tokens-minute: 499000\nx-ratelimit-tokens-query-cost: 1000\nx-ratelimit-limit-req-minute: 60\nx-ratelimit-remaining-req-minute: 59",
			limits: llmhttp.Limits{
				Requests: hdL(60, 59, hdNo, hdMin),
				Tokens:   hdL(500000, 499000, hdNo, hdMin),
			},
		},
		{
			name:   "mistral legacy ratelimitbysize with reset seconds",
			header: "ratelimitbysize-limit: 2000000\nratelimitbysize-remaining: 0\nratelimitbysize-reset: 12\nratelimitbysize-query-cost: 480\nx-ratelimitbysize-limit-minute: 2000000\nx-ratelimitbysize-remaining-minute: 0\nx-ratelimitbysize-limit-month: 10000000000\nx-ratelimitbysize-remaining-month: 9999000000",
			limits: llmhttp.Limits{Tokens: hdL(2000000, 0, hdT0.Add(12*time.Second), hdMin)},
			delay:  12 * time.Second, delayOK: true,
		},
		{
			name:   "mistral legacy per-minute headers alone",
			header: "x-ratelimitbysize-limit-minute: 2000000\nx-ratelimitbysize-remaining-minute: 1500000\nx-ratelimitbysize-limit-month: 10000000000\nx-ratelimitbysize-remaining-month: 9999000000",
			limits: llmhttp.Limits{Tokens: hdL(2000000, 1500000, hdNo, hdMin)},
		},
		{
			name:   "mistral legacy monthly headers alone",
			header: "x-ratelimitbysize-limit-month: 10000000000\nx-ratelimitbysize-remaining-month: 9999000000",
			limits: llmhttp.Limits{Tokens: hdL(10000000000, 9999000000, hdNo, 30*hdDay)},
		},
		{
			name:   "together request and token limits",
			header: "x-ratelimit-limit: 600\nx-ratelimit-remaining: 599\nx-ratelimit-reset: 1\nx-tokenlimit-limit: 180000\nx-tokenlimit-remaining: 179000",
			limits: llmhttp.Limits{
				Requests: hdL(600, 599, hdT0.Add(time.Second), 0),
				Tokens:   hdL(180000, 179000, hdNo, 0),
			},
		},
		{
			name:   "generic X-RateLimit yields to a provider's request headers",
			header: "x-ratelimit-limit: 20\nx-ratelimit-remaining: 0\nanthropic-ratelimit-requests-limit: 50\nanthropic-ratelimit-requests-remaining: 49",
			limits: llmhttp.Limits{Requests: hdL(50, 49, hdNo, hdMin)},
		},
		{
			name:   "generic X-RateLimit yields to Groq's per-day requests",
			header: "x-ratelimit-limit: 20\nx-ratelimit-remaining: 19\nx-ratelimit-limit-requests: 14400\nx-ratelimit-remaining-requests: 14000\nx-ratelimit-reset-requests: 2h",
			limits: llmhttp.Limits{RequestsPerDay: hdL(14400, 14000, hdT0.Add(2*time.Hour), hdDay)},
		},
		{
			name:   "generic reset epoch far in the past is ignored",
			header: "x-ratelimit-limit: 20\nx-ratelimit-remaining: 0\nx-ratelimit-reset: 1000000001",
			limits: llmhttp.Limits{Requests: hdL(20, 0, hdNo, 0)},
		},
		{
			name:   "IETF draft-06 trio",
			header: "ratelimit-limit: 100, 100;w=60\nratelimit-remaining: 0\nratelimit-reset: 17",
			limits: llmhttp.Limits{Requests: hdL(100, 0, hdT0.Add(17*time.Second), 0)},
			delay:  17 * time.Second, delayOK: true,
		},
		{
			name:   "IETF policy and remaining",
			header: `ratelimit-policy: "default";q=100;w=60` + "\n" + `ratelimit: "default";r=50;t=30`,
			limits: llmhttp.Limits{Requests: hdL(100, 50, r1, hdMin)},
		},
		{
			name:   "IETF exhausted quota: t is the delay",
			header: `ratelimit-policy: "default";q=100;w=60` + "\n" + `ratelimit: "default";r=0;t=10`,
			limits: llmhttp.Limits{Requests: hdL(100, 0, hdT0.Add(10*time.Second), hdMin)},
			delay:  10 * time.Second, delayOK: true,
		},
		{
			name:   "IETF burst and daily policies",
			header: `ratelimit-policy: "burst";q=100;w=60,"daily";q=1000;w=86400` + "\n" + `ratelimit: "burst";r=0;t=30, "daily";r=900;t=40000`,
			limits: llmhttp.Limits{
				Requests:       hdL(100, 0, r1, hdMin),
				RequestsPerDay: hdL(1000, 900, hdT0.Add(40000*time.Second), hdDay),
			},
			delay: 30 * time.Second, delayOK: true,
		},
		{
			name:   "IETF fields split over lines, token names, unknown parameters",
			header: "ratelimit-policy: burst;q=100;w=60;pk=:cHJvamVjdA==:\nratelimit-policy: daily;q=1000;w=86400\nratelimit: burst;r=40;t=30;comment=\"x\";flag, daily;r=900",
			limits: llmhttp.Limits{
				Requests:       hdL(100, 40, r1, hdMin),
				RequestsPerDay: hdL(1000, 900, hdNo, hdDay),
			},
		},
		{
			name:   "IETF token policy",
			header: `ratelimit-policy: "tpm";q=30000;w=60;qu="tokens", "rpm";q=500;w=60` + "\n" + `ratelimit: "tpm";r=2000;t=12, "rpm";r=499;t=1`,
			limits: llmhttp.Limits{
				Requests: hdL(500, 499, hdT0.Add(time.Second), hdMin),
				Tokens:   hdL(30000, 2000, hdT0.Add(12*time.Second), hdMin),
			},
		},
		{
			name:   "IETF two request policies: the lower remaining",
			header: `ratelimit-policy: "a";q=100;w=10, "b";q=1000;w=60` + "\n" + `ratelimit: "b";r=20;t=30, "a";r=90;t=1`,
			limits: llmhttp.Limits{Requests: hdL(1000, 20, r1, hdMin)},
		},
		{
			name:   "IETF content-bytes and concurrency policies are not request rates",
			header: `ratelimit-policy: "bytes";q=1000000;qu="content-bytes", "conc";q=5;qu="concurrent-requests"`,
		},
		{
			name:   "IETF policy without RateLimit",
			header: `ratelimit-policy: "default";q=100;w=60`,
			limits: llmhttp.Limits{Requests: hdL(100, -1, hdNo, hdMin)},
		},
		{
			name:   "IETF RateLimit without policy",
			header: `ratelimit: "default";r=3;t=2`,
			limits: llmhttp.Limits{Requests: hdL(0, 3, hdT0.Add(2*time.Second), 0)},
		},
		{
			name:   "IETF decimal t",
			header: `ratelimit: "default";r=0;t=1.5`,
			limits: llmhttp.Limits{Requests: hdL(0, 0, hdT0.Add(1500*time.Millisecond), 0)},
			delay:  1500 * time.Millisecond, delayOK: true,
		},
		{
			name:   "IETF r=0 without t gives no delay",
			header: `ratelimit: "default";r=0`,
			limits: llmhttp.Limits{Requests: hdL(0, 0, hdNo, 0)},
		},
		{
			name:   "IETF yields to a provider family",
			header: "x-ratelimit-limit-requests: 60\nx-ratelimit-remaining-requests: 59\n" + `ratelimit: "default";r=0;t=10`,
			limits: llmhttp.Limits{Requests: hdL(60, 59, hdNo, hdMin)},
			delay:  10 * time.Second, delayOK: true, // §5.3 step 3 still reads it
		},
		{
			name:   "Retry-After takes precedence over IETF RateLimit",
			header: "retry-after: 3\n" + `ratelimit: "default";r=0;t=10`,
			limits: llmhttp.Limits{Requests: hdL(0, 0, hdT0.Add(10*time.Second), 0)},
			retry:  3 * time.Second, retryOK: true,
			delay: 3 * time.Second, delayOK: true,
		},
		{
			name:   "IETF RateLimit takes precedence over bucket resets",
			header: "x-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 40s\n" + `ratelimit: "default";r=0;t=10`,
			limits: llmhttp.Limits{
				Requests: hdL(0, 0, hdT0.Add(10*time.Second), 0),
				Tokens:   hdL(0, 0, hdT0.Add(40*time.Second), hdMin),
			},
			delay: 10 * time.Second, delayOK: true,
		},
	})
}

// TestParseIETFMalformed checks that a malformed RateLimit or
// RateLimit-Policy field is ignored as a whole (draft: "MUST be ignored").
func TestParseIETFMalformed(t *testing.T) {
	for _, v := range []string{
		`"default";r=0;t=10,`,              // trailing comma
		`"default";r=0;t=10,,"b";r=1`,      // empty member
		`"default";r=-1;t=10`,              // negative remaining
		`"default";r=0;t=-10`,              // negative t
		`"default";r=0.5;t=10`,             // decimal remaining
		`"default";r="0";t=10`,             // string remaining
		`"default" ;r=0;t=10`,              // space before a parameter
		`"default";R=0;t=10`,               // upper-case key
		`"default";r=0;t=10 x`,             // garbage after an item
		`("a" "b");r=0;t=10`,               // inner list
		`"unterminated;r=0;t=10`,           // open string
		`"bad\escape";r=0;t=10`,            // bad escape
		`7;r=0;t=10`,                       // a number as the name
		`"default";r=0;t=1234567890123456`, // Integer over 15 digits
		`"default";r=0;t=1.2345`,           // Decimal over 3 fraction digits
		`"default";r=0;t=10;pk=:abc`,       // open byte sequence
		`"default";r=0;t=10;f=?2`,          // bad boolean
		"\"caf\u00e9\";r=0;t=10",           // non-ASCII
		`"default";r=0;t=10;d=@`,           // empty date (a fuzz crasher)
		`@`,                                // a bare empty date
		`"default";r=0;t=10;d=@1.5`,        // decimal date
		`"default";r=0;t=10;d=-`,           // lone minus
		`"default";r=0;t=1.`,               // no fraction digits
		`limit=100, remaining=0, reset=10`, // draft-07 dictionary
	} {
		t.Run(v, func(t *testing.T) {
			h := http.Header{"Ratelimit": {v}, "Ratelimit-Policy": {v}}
			hdCheckLimits(t, llmhttp.ParseLimits(h, hdT0), llmhttp.Limits{})
			if d, ok := llmhttp.ServerDelay(h, hdT0); ok {
				t.Errorf("ServerDelay = %v, true; want false", d)
			}
		})
	}
}

// TestParseLimitsRobustness covers llm-wire §5.7: whitespace, case, garbage.
func TestParseLimitsRobustness(t *testing.T) {
	r1 := hdT0.Add(30 * time.Second)
	hdRun(t, []hdCase{
		{
			name:   "header names in any case",
			header: "ANTHROPIC-RATELIMIT-REQUESTS-LIMIT: 10\nx-RateLimit-Remaining-Tokens: 5\nRetry-After-MS: 100",
			limits: llmhttp.Limits{Requests: hdL(10, -1, hdNo, hdMin), Tokens: hdL(0, 5, hdNo, hdMin)},
			retry:  100 * time.Millisecond, retryOK: true,
			delay: 100 * time.Millisecond, delayOK: true,
		},
		{
			name:   "surrounding whitespace",
			header: "anthropic-ratelimit-requests-limit: \t 10 \nanthropic-ratelimit-requests-remaining:  0\t\nanthropic-ratelimit-requests-reset:  " + r1.Format(time.RFC3339) + " \nretry-after:   7  ",
			limits: llmhttp.Limits{Requests: hdL(10, 0, r1, hdMin)},
			retry:  7 * time.Second, retryOK: true,
			delay: 7 * time.Second, delayOK: true,
		},
		{
			name:   "garbage values are ignored, the rest is kept",
			header: "anthropic-ratelimit-requests-limit: ten\nanthropic-ratelimit-requests-remaining: 1e3\nanthropic-ratelimit-requests-reset: soon\nanthropic-ratelimit-input-tokens-limit: 500\nanthropic-ratelimit-input-tokens-remaining: 0x10\nanthropic-ratelimit-input-tokens-reset: 2026-13-45T99:99:99Z",
			limits: llmhttp.Limits{InputTokens: hdL(500, -1, hdNo, hdMin)},
		},
		{
			name:   "integer overflow is ignored",
			header: "x-ratelimit-limit-tokens: 99999999999999999999\nx-ratelimit-remaining-tokens: 9223372036854775807",
			limits: llmhttp.Limits{Tokens: hdL(0, 9223372036854775807, hdNo, hdMin)},
		},
		{
			name:   "reset garbage: NaN, Inf, overflow, beyond 48h",
			header: "x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: NaN\nx-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 1e400\nx-ratelimit-remaining-project-tokens: 5\nx-ratelimit-reset-project-tokens: 49h",
			limits: llmhttp.Limits{
				Requests: hdL(0, 0, hdNo, hdMin),
				Tokens:   hdL(0, 0, hdNo, hdMin),
			},
		},
		{
			name:   "duration overflow is ignored",
			header: "x-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 9999999999999h",
			limits: llmhttp.Limits{Tokens: hdL(0, 0, hdNo, hdMin)},
		},
		{
			name:   "empty values",
			header: "anthropic-ratelimit-requests-limit:\nretry-after:\nretry-after-ms:\nx-ratelimit-reset-tokens:",
		},
		{
			name:   "first value of a repeated header, as Header.Get",
			header: "x-ratelimit-remaining-requests: 3\nx-ratelimit-remaining-requests: 0\nretry-after: 1\nretry-after: 99",
			limits: llmhttp.Limits{Requests: hdL(0, 3, hdNo, hdMin)},
			retry:  time.Second, retryOK: true,
			delay: time.Second, delayOK: true,
		},
	})

	t.Run("non-canonical map keys are not seen, as with Header.Get", func(t *testing.T) {
		h := http.Header{"anthropic-ratelimit-requests-limit": {"10"}, "retry-after": {"5"}}
		hdCheckLimits(t, llmhttp.ParseLimits(h, hdT0), llmhttp.Limits{})
		if _, ok := llmhttp.ParseRetryAfter(h, hdT0); ok {
			t.Error("ParseRetryAfter read a non-canonical key")
		}
	})
	t.Run("nil header", func(t *testing.T) {
		hdCheckLimits(t, llmhttp.ParseLimits(nil, hdT0), llmhttp.Limits{})
		if _, ok := llmhttp.ServerDelay(nil, hdT0); ok {
			t.Error("ServerDelay(nil) reported a hint")
		}
	})
	t.Run("resets carry now's monotonic clock", func(t *testing.T) {
		now := time.Now()
		l := llmhttp.ParseLimits(hdHeader("x-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 2s"), now)
		if got := l.Tokens.Reset.Sub(now); got != 2*time.Second {
			t.Errorf("Reset - now = %v, want 2s", got)
		}
		if l.Tokens.Reset.String() == l.Tokens.Reset.Round(0).String() {
			t.Error("Reset has no monotonic reading")
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	date := func(d time.Duration, layout string) string { return hdT0.Add(d).Format(layout) }
	cases := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"retry-after: 23", 23 * time.Second, true},
		{"retry-after: 0", 0, true},
		{"retry-after: 1.5", 1500 * time.Millisecond, true},
		{"retry-after: .25", 250 * time.Millisecond, true},
		{"retry-after: 2e1", 20 * time.Second, true},
		{"retry-after: 86400", 24 * time.Hour, true},
		{"retry-after-ms: 6000", 6 * time.Second, true},
		{"retry-after-ms: 12.5", 12500 * time.Microsecond, true},
		{"retry-after-ms: 0.0000001", 0, true}, // below a nanosecond
		{"retry-after-ms: 0", 0, true},
		{"retry-after-ms: 100\nretry-after: 9", 100 * time.Millisecond, true},
		{"retry-after-ms: soon\nretry-after: 9", 9 * time.Second, true}, // malformed ms falls through
		{"retry-after-ms: -5\nretry-after: 9", 9 * time.Second, true},
		{"retry-after: " + date(30*time.Second, http.TimeFormat), 30 * time.Second, true},
		{"retry-after: " + date(30*time.Second, time.RFC850), 30 * time.Second, true},
		{"retry-after: " + date(30*time.Second, time.ANSIC), 30 * time.Second, true},
		{"retry-after: " + date(-time.Hour, http.TimeFormat), 0, true}, // in the past
		{"retry-after: Fri, 31 Dec 9999 23:59:59 GMT", time.Duration(1<<63 - 1), true},
		{"date: " + date(-5*time.Minute, http.TimeFormat) + "\nretry-after: " + date(-5*time.Minute+30*time.Second, http.TimeFormat), 30 * time.Second, true},
		{"date: " + date(0, http.TimeFormat) + "\nretry-after: " + date(30*time.Second, http.TimeFormat), 30 * time.Second, true},
		// Too long for a Duration: "longer than any cap", never wrapped around.
		{"retry-after: 1e300", time.Duration(1<<63 - 1), true},
		{"retry-after: 9300000000", time.Duration(1<<63 - 1), true},
		{"retry-after-ms: 1e400", time.Duration(1<<63 - 1), true},
		// Not usable.
		{"retry-after: -1", 0, false},
		{"retry-after: -0.5", 0, false},
		{"retry-after: +5", 0, false},
		{"retry-after: NaN", 0, false},
		{"retry-after: Inf", 0, false},
		{"retry-after: +Inf", 0, false},
		{"retry-after: 0x10", 0, false},
		{"retry-after: 1_000", 0, false},
		{"retry-after: 5s", 0, false},
		{"retry-after: 1e", 0, false},
		{"retry-after: .", 0, false},
		{"retry-after: ", 0, false},
		{"retry-after: tomorrow", 0, false},
		{"retry-after: 2026-05-18T11:42:18Z", 0, false},
		{"retry-after-ms: NaN", 0, false},
		{"x-retry-after: 5", 0, false},
		{"", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			d, ok := llmhttp.ParseRetryAfter(hdHeader(tc.header), hdT0)
			if d != tc.want || ok != tc.ok {
				t.Errorf("ParseRetryAfter = %v, %v; want %v, %v", d, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseShouldRetry(t *testing.T) {
	cases := []struct {
		header     string
		retry, set bool
	}{
		{"x-should-retry: true", true, true},
		{"x-should-retry: false", false, true},
		{"x-should-retry: TRUE", true, true},
		{"x-should-retry:  False ", false, true},
		{"x-should-retry: yes", false, false},
		{"x-should-retry: 1", false, false},
		{"x-should-retry: ", false, false},
		{"x-should-retry: true\nx-should-retry: false", true, true},
		{"", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			retry, set := llmhttp.ParseShouldRetry(hdHeader(tc.header))
			if retry != tc.retry || set != tc.set {
				t.Errorf("ParseShouldRetry = %v, %v; want %v, %v", retry, set, tc.retry, tc.set)
			}
		})
	}
}

func TestLimitKnownExhausted(t *testing.T) {
	cases := []struct {
		l                llmhttp.Limit
		known, exhausted bool
	}{
		{llmhttp.Limit{}, false, false},
		{llmhttp.Limit{Window: time.Minute}, false, false},
		{llmhttp.Limit{Limit: 5}, true, false},
		{llmhttp.Limit{HasRemaining: true}, true, true},
		{llmhttp.Limit{Remaining: 3, HasRemaining: true}, true, false},
		{llmhttp.Limit{Reset: hdT0}, true, false},
	}
	for _, tc := range cases {
		if got := tc.l.Known(); got != tc.known {
			t.Errorf("%+v.Known() = %v, want %v", tc.l, got, tc.known)
		}
		if got := tc.l.Exhausted(); got != tc.exhausted {
			t.Errorf("%+v.Exhausted() = %v, want %v", tc.l, got, tc.exhausted)
		}
	}
}

// hdRealAnthropic is fixture A1 as a client sees it: with the transport and
// CDN headers of a real response around the rate-limit ones.
var hdRealAnthropic = hdHeader(`date: Thu, 21 Aug 2025 12:40:58 GMT
content-type: application/json
transfer-encoding: chunked
connection: keep-alive
x-robots-tag: none
server: cloudflare
cf-ray: 972a3a6f8c3e5d2b-FRA
cf-cache-status: DYNAMIC
via: 1.1 google
strict-transport-security: max-age=31536000; includeSubDomains; preload
content-encoding: gzip
anthropic-organization-id: 36562039-1ae4-48e6-ae28-1e517e3d2d12
` + hdA1)

// hdRealOpenAI is fixture O1 with the rest of a real response's headers.
var hdRealOpenAI = hdHeader(`date: Thu, 21 Aug 2025 12:40:58 GMT
content-type: application/json
transfer-encoding: chunked
connection: keep-alive
access-control-expose-headers: X-Request-ID
openai-organization: user-abc123
openai-version: 2020-10-01
strict-transport-security: max-age=31536000; includeSubDomains; preload
cf-cache-status: DYNAMIC
set-cookie: __cf_bm=abc; path=/; expires=Thu, 21-Aug-25 13:10:58 GMT; domain=.api.openai.com; HttpOnly; Secure; SameSite=None
x-content-type-options: nosniff
server: cloudflare
cf-ray: 972a3a6f8c3e5d2b-FRA
alt-svc: h3=":443"; ma=86400
` + hdO1)

func TestParseLimitsRealResponses(t *testing.T) {
	now := hdTime("2025-08-21T12:40:58.5Z")
	a := llmhttp.ParseLimits(hdRealAnthropic, now)
	if !a.Requests.Reset.Equal(hdTime("2025-08-21T12:40:59Z")) || a.OutputTokens.Limit != 16000 {
		t.Errorf("anthropic: %+v", a)
	}
	o := llmhttp.ParseLimits(hdRealOpenAI, now)
	if o.Tokens.Remaining != 159976 || o.Requests.Window != time.Minute {
		t.Errorf("openai: %+v", o)
	}
	if m := llmhttp.ParseLimits(hdManyOpenAI, now); m != o {
		t.Errorf("openai, more headers: %+v", m)
	}
	k := llmhttp.ParseLimits(hdOKTransport(t), now)
	if k.Requests.Limit != 10000 || k.Tokens.Remaining != 29999000 || !k.Tokens.Reset.Equal(now.Add(2*time.Millisecond)) {
		t.Errorf("OKTransport: %+v", k)
	}
}

// hdManyOpenAI is a full OpenAI response as a client sees it: 26 headers,
// six of them rate limits, one repeated (set-cookie).
var hdManyOpenAI = hdHeader(`date: Thu, 21 Aug 2025 12:40:58 GMT
content-type: application/json
transfer-encoding: chunked
connection: keep-alive
access-control-expose-headers: X-Request-ID
openai-organization: user-abc123
openai-processing-ms: 1032
openai-project: proj_abc123
openai-version: 2020-10-01
x-envoy-upstream-service-time: 1040
x-ratelimit-limit-requests: 5000
x-ratelimit-limit-tokens: 160000
x-ratelimit-remaining-requests: 4999
x-ratelimit-remaining-tokens: 159976
x-ratelimit-reset-requests: 12ms
x-ratelimit-reset-tokens: 9ms
x-request-id: req_deaa3616cbd15d33b4db96b3ba74d2b4
strict-transport-security: max-age=31536000; includeSubDomains; preload
cf-cache-status: DYNAMIC
set-cookie: __cf_bm=abc; path=/; expires=Thu, 21-Aug-25 13:10:58 GMT; domain=.api.openai.com; HttpOnly; Secure; SameSite=None
set-cookie: _cfuvid=def; path=/; domain=.api.openai.com; HttpOnly; Secure; SameSite=None
x-content-type-options: nosniff
server: cloudflare
cf-ray: 972a3a6f8c3e5d2b-FRA
alt-svc: h3=":443"; ma=86400
content-encoding: br
vary: Origin`)

// hdOKTransport returns the headers of llmhttptest.OKTransport's response,
// the one the middleware-chain benchmarks parse.
func hdOKTransport(tb testing.TB) http.Header {
	req, err := http.NewRequest(http.MethodGet, "https://api.openai.test/v1/models", nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := llmhttptest.OKTransport().RoundTrip(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header
}

func BenchmarkParseLimits(b *testing.B) {
	now := hdTime("2025-08-21T12:40:58.5Z")
	for _, bc := range []struct {
		name string
		h    http.Header
	}{
		{"anthropic", hdRealAnthropic},
		{"openai", hdRealOpenAI},
		{"many", hdManyOpenAI},
		{"oktransport", hdOKTransport(b)},
		// Baselines: a response without rate-limit headers, and the cost of
		// only looking up the rate-limit keys by hand.
		{"none", hdHeader("date: Thu, 21 Aug 2025 12:40:58 GMT\ncontent-type: application/json\nserver: cloudflare\ncf-ray: 972a3a6f8c3e5d2b-FRA\nconnection: keep-alive")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = llmhttp.ParseLimits(bc.h, now)
			}
		})
	}
	b.Run("baseline-get-only", func(b *testing.B) {
		// What reading A1's twelve values with Header.Get costs, without
		// parsing them: the floor any implementation pays.
		keys := []string{}
		for k := range hdHeader(hdA1) {
			if strings.HasPrefix(k, "Anthropic-Ratelimit") {
				keys = append(keys, k)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				_ = hdRealAnthropic.Get(k)
			}
		}
	})
}

func BenchmarkServerDelay(b *testing.B) {
	now := hdT0
	for _, bc := range []struct {
		name string
		h    http.Header
	}{
		{"retry-after", hdHeader(hdA2)},
		{"bucket-reset", hdHeader(withoutLines(hdC2, "retry-after"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = llmhttp.ServerDelay(bc.h, now)
			}
		})
	}
}

func ExampleServerDelay() {
	now := time.Date(2026, 5, 18, 11, 41, 55, 0, time.UTC)
	h := http.Header{}
	h.Set("x-ratelimit-limit-tokens", "18000")
	h.Set("x-ratelimit-remaining-tokens", "0")
	h.Set("x-ratelimit-reset-tokens", "7.66s")
	d, ok := llmhttp.ServerDelay(h, now)
	fmt.Println(d, ok)
	// Output: 7.66s true
}
