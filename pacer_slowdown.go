package llmhttp

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Slow-down tuning.
const (
	// sendRateWindow is the time constant of the measured sending rate.
	sendRateWindow = 5 * time.Second
	// minCutSends is how many requests (decayed over sendRateWindow) must
	// have been sent recently for the sending rate to be measured: a quiet
	// partition is not slowed down (its few requests are the retry layer's
	// business, and the breaker's).
	minCutSends = 5
	// decayStep is the resolution of the measured sending rate's ageing
	// (see slowDown.decay).
	decayStep = time.Millisecond
	// minSendRate is the floor of the slowed-down sending rate, in requests
	// per second: a cut never spaces requests more than a second apart.
	minSendRate = 1.0
	// limitFloorShare is the floor of the slowed-down sending rate as a
	// share of the server's own request limit (its refill rate): a cut
	// never brings a partition below a tenth of what the server allows.
	limitFloorShare = 0.1
)

// slowDown is the AIMD cap on a partition's sending rate (the AWS adaptive
// retry / TCP idea): a slow_down or overload answer cuts the rate to a
// fraction of what was being sent (multiplicative decrease); the cap then
// rises linearly back to that rate over the recovery time (additive
// increase), after which it is lifted.
//
// The rate cut is the one measured over the last few seconds
// (sendRateWindow), and only when enough was sent in them to measure it
// (minCutSends): a single overload answer on a quiet partition — one
// request every few seconds — changes nothing, where cutting "the rate" of
// one request would space every later request seconds apart for the whole
// recovery. The cap never goes below a floor: the larger of minSendRate
// and limitFloorShare of the server's request limit.
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
	r := s.to + (s.from-s.to)*max(seconds(el), 0)/seconds(recovery)
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

// decay ages the admission count to now. Admissions closer together than
// decayStep are counted as if made at the last decay: at most a
// millisecond's ageing (2·10⁻⁴ of the count) is left out, and math.Exp is
// paid once per step instead of once per admission.
func (s *slowDown) decay(now time.Time) {
	if dt := now.Sub(s.sentLast); dt >= decayStep {
		s.sent *= math.Exp(-seconds(dt) / seconds(sendRateWindow))
		s.sentLast = now
	}
}

// cut lowers the cap to factor times the current rate, but not below floor
// (requests per second), after an answer to a request sent at sent.
// Answers to requests sent before the last cut reflect the old rate and do
// not cut again (one decrease per round trip, as TCP); neither does an
// answer on a partition that sent too little recently to measure its rate,
// or one whose rate is already at the floor. It reports whether the cap
// changed.
func (s *slowDown) cut(now, sent time.Time, factor, floor float64, recovery time.Duration) bool {
	if factor <= 0 || factor >= 1 {
		return false
	}
	if s.lim != nil && sent.Before(s.at) {
		return false
	}
	s.decay(now)
	if s.lim == nil && s.sent < minCutSends {
		return false
	}
	floor = max(floor, minSendRate)
	cur := s.sent / seconds(sendRateWindow)
	if r := s.limitAt(now, recovery); r < cur {
		cur = r
	}
	if cur <= floor {
		return false
	}
	to := max(cur*factor, floor)
	s.from, s.to, s.at = cur, to, now
	if s.lim == nil {
		s.lim = rate.NewLimiter(rate.Limit(to), 1)
		s.lim.SetLimitAt(now, rate.Limit(to))
	} else {
		s.lim.SetLimitAt(now, rate.Limit(to))
	}
	return true
}
