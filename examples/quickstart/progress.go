package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

// showProgress reports a run's progress on w until the returned function is
// called: on a terminal one line rewritten ten times a second, otherwise a
// line every cfg.ProgressEvery. The returned function prints the final
// state and returns once the display has stopped.
func showProgress(w io.Writer, cfg config, name string, start time.Time, st *runState, wire *wireCounter) (stop func()) {
	line := func() string {
		done := st.done.Load()
		waiting := max(st.active.Load()-wire.inFlight.Load(), 0)
		return fmt.Sprintf("%-20s %3d/%d done  %3d ok  %3d failed  %4d × 429  %3d waiting  %5.1fs",
			name, done, st.total, st.ok.Load(), done-st.ok.Load(), wire.throttled.Load(), waiting,
			time.Since(start).Seconds())
	}
	every := cfg.ProgressEvery
	if cfg.TTY {
		every = 100 * time.Millisecond
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if cfg.TTY {
					fmt.Fprintf(w, "\r\033[K%s", line())
				} else {
					fmt.Fprintln(w, line())
				}
			case <-quit:
				if cfg.TTY {
					fmt.Fprintf(w, "\r\033[K%s\n", line())
				} else {
					fmt.Fprintln(w, line())
				}
				return
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// printSummary prints the reports side by side.
func printSummary(w io.Writer, cfg config, reports []report) {
	jobs := workload(cfg.Requests, cfg.Seed)
	var total int64
	for _, j := range jobs {
		total += j.inputTokens
	}
	perSec := capacity(cfg, jobs)
	minute := cfg.Window.Seconds()
	best := bestTime(cfg, len(jobs), perSec)
	fits := best <= 0
	if fits { // no client has to wait: measure against the fastest run
		best = reports[0].elapsed
		for _, r := range reports {
			best = min(best, r.elapsed)
		}
	}

	head := fmt.Sprintf("The fake API enforces %s per minute", limitsText(cfg.Limits))
	if cfg.Window != time.Minute {
		head += fmt.Sprintf(", with a minute of %v (%.3g× real time; every per-minute figure is per that minute)",
			cfg.Window, time.Minute.Seconds()/minute)
	}
	head += fmt.Sprintf(". For this mix of requests the input tokens bind: %.1f requests per minute "+
		"(llmhttptest's Capacity).", perSec*minute)
	if fits {
		head += fmt.Sprintf(" Its buckets start full and hold the whole burst (%d requests, %dk input tokens): "+
			"no client has to wait. Try -requests 400.", len(jobs), total/1000)
	} else {
		head += fmt.Sprintf(" Its buckets start full, so the %d requests (%dk input tokens) need at least %.1fs.",
			len(jobs), total/1000, best.Seconds())
	}
	fmt.Fprintf(w, "\n%s\n\n", wrap(head, 100))

	rows := []struct {
		label string
		cell  func(report) string
	}{
		{"succeeded", func(r report) string { return fmt.Sprintf("%d/%d", r.ok, r.requests) }},
		{"failed", func(r report) string { return failures(r) }},
		{"time", func(r report) string { return fmt.Sprintf("%.1fs", r.elapsed.Seconds()) }},
		{"goodput", func(r report) string {
			return fmt.Sprintf("%.0f%%", 100*goodput(r, cfg, best)/(float64(total)/best.Seconds()*minute))
		}},
		{"429s received", func(r report) string { return fmt.Sprint(r.throttled) }},
		{"attempts/request", func(r report) string {
			return fmt.Sprintf("%.2f", float64(r.attempts)/float64(r.requests))
		}},
		{"latency p50", func(r report) string { return seconds(r.percentile(0.50)) }},
		{"latency p95", func(r report) string { return seconds(r.percentile(0.95)) }},
	}
	const labelWidth, colWidth = 18, 23
	fmt.Fprintf(w, "%-*s", labelWidth, "")
	for _, r := range reports {
		fmt.Fprintf(w, "%*s", colWidth, r.name)
	}
	fmt.Fprintln(w)
	for _, row := range rows {
		fmt.Fprintf(w, "%-*s", labelWidth, row.label)
		for _, r := range reports {
			fmt.Fprintf(w, "%*s", colWidth, row.cell(r))
		}
		fmt.Fprintln(w)
	}
	bestText := "the best the limits allow"
	if fits {
		bestText = "the fastest run's"
	}
	fmt.Fprintf(w, "\n%s\n", wrap(fmt.Sprintf("goodput: input tokens of the successful requests per second, "+
		"over the run (or over the %.1fs the whole burst needs, for a client that gave up sooner), as a share of "+
		"%s.", best.Seconds(), bestText), 100))
	fmt.Fprintln(w, wrap("failed: the final status of each failed request (local: llmhttp answered itself). "+
		"latency: successful requests only, from sending to the end of the reply, waits included.", 100))
}

// wrap breaks s into lines of at most width characters, between words.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		l := utf8.RuneCountInString(word)
		if i > 0 {
			if n+1+l > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += l
	}
	return b.String()
}

// bestTime is the least time n requests of a mix admitted at perSec can
// take: the full buckets hold a minute's worth, the rest comes at the
// steady rate. It is 0 or less when the buckets hold them all.
func bestTime(cfg config, n int, perSec float64) time.Duration {
	return time.Duration((float64(n)/perSec - cfg.Window.Seconds()) * float64(time.Second))
}

// goodput is r's successful input tokens per (scaled) minute, over its run
// or, when it gave up sooner, over the least time the whole burst takes:
// failing fast is not throughput.
func goodput(r report, cfg config, best time.Duration) float64 {
	span := max(r.elapsed, best)
	return float64(r.okTokens) / span.Seconds() * cfg.Window.Seconds()
}

func failures(r report) string {
	if len(r.failed) == 0 {
		return "0"
	}
	var parts []string
	total := 0
	for k, n := range r.failed {
		parts = append(parts, fmt.Sprintf("%d×%s", n, k))
		total += n
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, " "))
}

func seconds(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// limitsText describes the fake's Anthropic limits.
func limitsText(l llmhttptest.Limits) string {
	if l == (llmhttptest.Limits{}) {
		return "Anthropic's Tier 1 limits (50 requests, 30,000 input and 8,000 output tokens)"
	}
	return fmt.Sprintf("%s requests, %s input tokens and %s output tokens", count(l.RPM), count(l.ITPM), count(l.OTPM))
}

func count(n int64) string {
	switch {
	case n < 0:
		return "unlimited"
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%d,000", n/1000)
	default:
		return fmt.Sprint(n)
	}
}
