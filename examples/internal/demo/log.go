package demo

import (
	"fmt"
	"io"
	"time"

	"github.com/llmhttp/llmhttp"
)

// LogRetry returns a [llmhttp.RetryPolicy.OnRetry] hook that prints each
// retry to w: the attempt, what it got, and how long llmhttp waits before
// the next one, on whose word.
func LogRetry(w io.Writer) func(llmhttp.RetryEvent) {
	return func(e llmhttp.RetryEvent) {
		what := e.Class.String()
		if e.Status != 0 {
			what = fmt.Sprintf("%d %s", e.Status, e.Class)
		}
		from := "backoff"
		if e.ServerDelay {
			from = "the server's Retry-After"
		}
		fmt.Fprintf(w, "  llmhttp: attempt %d got %s; retrying in %v (%s)\n", e.Attempt, what, e.Delay.Round(time.Millisecond), from)
	}
}

// LogWait returns a [llmhttp.PacerSettings.OnWait] hook that prints to w
// each request the pacer refused or held for 10 ms or more.
func LogWait(w io.Writer) func(llmhttp.WaitEvent) {
	return func(e llmhttp.WaitEvent) {
		if e.Refusal != nil {
			fmt.Fprintf(w, "  llmhttp: the pacer refused the request: %v\n", e.Refusal)
		} else if e.Waited >= 10*time.Millisecond {
			fmt.Fprintf(w, "  llmhttp: the pacer held the request %v (%s)\n", e.Waited.Round(time.Millisecond), e.Cause)
		}
	}
}

// PrintPacer prints to w what a pacer learned from the rate-limit headers:
// for each partition, its model, requests sent and throttled, and the last
// report of each of the named buckets ("requests", "requests per day",
// "tokens", "input tokens", "output tokens") whose limit the server gave.
func PrintPacer(w io.Writer, stats []llmhttp.PacerStats, buckets ...string) {
	width := 0
	for _, name := range buckets {
		width = max(width, len(name))
	}
	for _, st := range stats {
		fmt.Fprintf(w, "pacer, %s: sent %d, throttled %d\n", st.Partition.Model, st.Sent, st.Throttled)
		for _, name := range buckets {
			if b := bucket(st, name); b.Reported.Limit > 0 {
				fmt.Fprintf(w, "  %-*s %7d of %7d left (server's last report)\n", width, name, b.Reported.Remaining, b.Reported.Limit)
			}
		}
	}
}

// bucket returns the bucket of st that PrintPacer calls name.
func bucket(st llmhttp.PacerStats, name string) llmhttp.BucketStats {
	switch name {
	case "requests":
		return st.Requests
	case "requests per day":
		return st.RequestsPerDay
	case "tokens":
		return st.Tokens
	case "input tokens":
		return st.InputTokens
	case "output tokens":
		return st.OutputTokens
	}
	panic("demo: no pacer bucket named " + name)
}
