package llmhttp

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Slow-down tuning.
const (
	// sendRateWindow is the time constant of the measured sending rate.
	sendRateWindow = 2 * time.Second
	// minSendRate is the floor of the slowed-down sending rate, in requests
	// per second (6 a minute): a cut never stops a partition.
	minSendRate = 0.1
)

// slowDown is the AIMD cap on a partition's sending rate (the AWS adaptive
// retry / TCP idea): a slow_down or overload answer cuts the rate to a
// fraction of what was being sent (multiplicative decrease); the cap then
// rises linearly back to that rate over the recovery time (additive
// increase), after which it is lifted.
//
// The cap is a golang.org/x/time/rate.Limiter with a burst of 1, so capped
// requests go out evenly spaced. Unlike the server-synchronised buckets it
// needs no level setting or refunds: SetLimitAt, which advances the bucket
// at the old rate before switching, is exactly the gradual change needed.
// Everything advances lazily from now; there is no goroutine.
type slowDown struct {
	lim  *rate.Limiter // nil: no cap
	from float64       // the rate the cap recovers to (requests/s)
	to   float64       // the rate right after the last cut
	at   time.Time     // the last cut

	// sent is an exponentially decayed count of admissions, whose time
	// constant is sendRateWindow: sent/window is the measured rate.
	sent     float64
	sentLast time.Time
}

// limitAt returns the cap at now: +Inf when there is none. A cap that has
// fully recovered is lifted.
func (s *slowDown) limitAt(now time.Time, recovery time.Duration) float64 {
	if s.lim == nil {
		return math.Inf(1)
	}
	el := now.Sub(s.at)
	if el >= recovery {
		s.lim = nil
		return math.Inf(1)
	}
	r := s.to + (s.from-s.to)*max(el.Seconds(), 0)/recovery.Seconds()
	s.lim.SetLimitAt(now, rate.Limit(r))
	return r
}

// wait returns how long from now until the cap lets a request through.
func (s *slowDown) wait(now time.Time, recovery time.Duration) time.Duration {
	r := s.limitAt(now, recovery)
	if math.IsInf(r, 1) {
		return 0
	}
	tokens := s.lim.TokensAt(now)
	if tokens >= 1-slackEpsilon {
		return 0
	}
	return secondsToDuration((1 - tokens) / r)
}

// waitFor returns how long until n more requests pass the cap: an estimate
// for requests queued behind others.
func (s *slowDown) waitFor(now time.Time, n int, recovery time.Duration) time.Duration {
	r := s.limitAt(now, recovery)
	if math.IsInf(r, 1) || n <= 0 {
		return 0
	}
	return secondsToDuration((float64(n) - s.lim.TokensAt(now)) / r)
}

// take records an admission at now.
func (s *slowDown) take(now time.Time) {
	s.decay(now)
	s.sent++
	if s.lim != nil {
		s.lim.AllowN(now, 1)
	}
}

// decay ages the admission count to now.
func (s *slowDown) decay(now time.Time) {
	if dt := now.Sub(s.sentLast); dt > 0 {
		s.sent *= math.Exp(-dt.Seconds() / sendRateWindow.Seconds())
		s.sentLast = now
	}
}

// measured returns the sending rate measured at now, in requests per second.
func (s *slowDown) measured(now time.Time) float64 {
	s.decay(now)
	return s.sent / sendRateWindow.Seconds()
}

// cut lowers the cap to factor times the current rate, after an answer to a
// request sent at sent. Answers to requests sent before the last cut reflect
// the old rate and do not cut again (one decrease per round trip, as TCP).
// It reports whether the cap changed.
func (s *slowDown) cut(now, sent time.Time, factor float64, recovery time.Duration) bool {
	if factor <= 0 || factor >= 1 {
		return false
	}
	if s.lim != nil && sent.Before(s.at) {
		return false
	}
	cur := s.measured(now)
	if r := s.limitAt(now, recovery); r < cur {
		cur = r
	}
	cur = max(cur, minSendRate)
	to := max(cur*factor, minSendRate)
	s.from, s.to, s.at = cur, to, now
	if s.lim == nil {
		s.lim = rate.NewLimiter(rate.Limit(to), 1)
		s.lim.SetLimitAt(now, rate.Limit(to))
	} else {
		s.lim.SetLimitAt(now, rate.Limit(to))
	}
	return true
}
