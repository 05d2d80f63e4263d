package llmhttp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// LogObserver returns an [Observer] that logs through l what an operator
// wants to read: retries, gate and circuit changes, refusals, budget
// thresholds, a shared store's fallbacks and recoveries (when it is given
// to the store, see [Observer.OnStore]) and requests that an SDK above
// llmhttp retried too. It returns
// nil for a nil l, and for a logger whose handler is [slog.DiscardHandler],
// so that such a logger costs nothing. [WithLogger] uses it.
//
// Levels:
//   - Debug: every attempt, every wait, a gate passed again;
//   - Info: a retry, a gate closed, a circuit half-open or closed again, a
//     request refused because its wait would be too long or it was shed, a
//     shared store shared again;
//   - Warn: a circuit opened, any other refusal (quota exhausted, circuit
//     open, budget exhausted, too large), a budget threshold, a shared
//     store fallen back to local state, a request retried by an SDK on top
//     of llmhttp.
//
// Records carry structured attributes — host, model, credential (the
// fingerprint, see [Fingerprint]), attempt, class, status, delay, cause,
// reason, store — and the request's context, so that handlers can add trace IDs.
// They never carry an API key, a header value or a request or response
// body. Attributes are built only when l is enabled for the level.
func LogObserver(l *slog.Logger) *Observer {
	if l == nil || l.Handler() == slog.DiscardHandler {
		return nil
	}
	lo := &logObserver{l: l}
	return &Observer{
		OnRequest:            lo.request,
		OnAttempt:            lo.attempt,
		OnRetry:              lo.retry,
		OnWait:               lo.wait,
		OnGate:               lo.gate,
		OnBreakerStateChange: lo.breaker,
		OnRefusal:            lo.refusal,
		OnBudgetThreshold:    lo.threshold,
		OnStore:              lo.store,
	}
}

type logObserver struct{ l *slog.Logger }

// ctxOf returns req's context, or Background for none.
func ctxOf(req *http.Request) context.Context {
	if req == nil {
		return context.Background()
	}
	return req.Context()
}

// partAttrs returns the attributes naming p.
func partAttrs(p Partition) []slog.Attr {
	a := []slog.Attr{slog.String("host", p.Host), slog.String("model", p.Model)}
	if p.Credential != "" {
		a = append(a, slog.String("credential", p.Credential))
	}
	return a
}

func (lo *logObserver) log(ctx context.Context, level slog.Level, msg string, p Partition, attrs ...slog.Attr) {
	lo.l.LogAttrs(ctx, level, msg, append(partAttrs(p), attrs...)...)
}

func (lo *logObserver) request(e RequestEvent) {
	ctx := ctxOf(e.Request)
	if e.SDKRetryCount == 0 || !lo.l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	lo.log(ctx, slog.LevelWarn, "llmhttp: an SDK above llmhttp retries too; set its max retries to 0", e.Partition,
		slog.Int("sdk_retry_count", e.SDKRetryCount))
}

func (lo *logObserver) attempt(e AttemptEvent) {
	ctx := ctxOf(e.Request)
	if !lo.l.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.Int("attempt", e.Attempt), slog.String("class", e.Class.String()),
		slog.Int("status", e.Status), slog.Duration("duration", e.Duration),
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", errText(e.Err)))
	}
	lo.log(ctx, slog.LevelDebug, "llmhttp: attempt", e.Partition, attrs...)
}

func (lo *logObserver) retry(e RetryEvent) {
	ctx := ctxOf(e.Request)
	if !lo.l.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.Int("attempt", e.Attempt), slog.String("class", e.Class.String()), slog.Int("status", e.Status),
		slog.Duration("delay", e.Delay), slog.Bool("server_delay", e.ServerDelay),
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", errText(e.Err)))
	}
	lo.log(ctx, slog.LevelInfo, "llmhttp: retrying", infoOf(e.Request).partition, attrs...)
}

func (lo *logObserver) wait(e WaitEvent) {
	ctx := ctxOf(e.Request)
	if e.Refusal != nil || !lo.l.Enabled(ctx, slog.LevelDebug) {
		return // a refusal is logged by refusal
	}
	attrs := []slog.Attr{slog.String("cause", e.Cause), slog.Duration("waited", e.Waited)}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", errText(e.Err)))
	}
	lo.log(ctx, slog.LevelDebug, "llmhttp: waited", e.Partition, attrs...)
}

func (lo *logObserver) gate(e GateEvent) {
	ctx := context.Background()
	if !e.Closed {
		if lo.l.Enabled(ctx, slog.LevelDebug) {
			lo.log(ctx, slog.LevelDebug, "llmhttp: gate open", e.Partition)
		}
		return
	}
	if !lo.l.Enabled(ctx, slog.LevelInfo) {
		return
	}
	lo.log(ctx, slog.LevelInfo, "llmhttp: gate closed", e.Partition,
		slog.Duration("for", max(time.Until(e.Until), 0)), slog.Time("until", e.Until),
		slog.String("class", e.Class.String()), slog.Int("status", e.Status))
}

func (lo *logObserver) breaker(e BreakerEvent) {
	ctx := context.Background()
	level := slog.LevelInfo
	if e.To == StateOpen {
		level = slog.LevelWarn
	}
	if !lo.l.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("from", e.From.String()), slog.String("to", e.To.String())}
	if !e.Until.IsZero() {
		attrs = append(attrs, slog.Time("until", e.Until))
	}
	lo.log(ctx, level, "llmhttp: circuit "+e.To.String(), e.Partition, attrs...)
}

func (lo *logObserver) refusal(e RefusalEvent) {
	ctx := ctxOf(e.Request)
	level := slog.LevelWarn
	switch e.Refusal.Reason {
	case ReasonWaitTooLong, ReasonShed:
		level = slog.LevelInfo
	}
	if !lo.l.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("reason", e.Refusal.Reason)}
	if e.Refusal.RetryAfter > 0 {
		attrs = append(attrs, slog.Duration("retry_after", e.Refusal.RetryAfter))
	}
	if e.Retried {
		attrs = append(attrs, slog.Bool("retried", true))
	}
	lo.log(ctx, level, "llmhttp: refused", e.Partition, attrs...)
}

func (lo *logObserver) threshold(e ThresholdEvent) {
	ctx := ctxOf(e.Request)
	if !lo.l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	attrs := []slog.Attr{
		slog.String("budget", e.Budget), slog.Float64("threshold", e.Threshold), slog.Float64("fraction", e.Fraction),
	}
	if e.Tenant != "" {
		attrs = append(attrs, slog.String("tenant", e.Tenant))
	}
	lo.l.LogAttrs(ctx, slog.LevelWarn, "llmhttp: budget threshold reached", attrs...)
}

func (lo *logObserver) store(e StoreEvent) {
	ctx := context.Background()
	if e.Shared {
		if lo.l.Enabled(ctx, slog.LevelInfo) {
			lo.l.LogAttrs(ctx, slog.LevelInfo, "llmhttp: shared store answers again; its state is shared again",
				slog.String("store", e.Store), slog.Duration("down", e.Down))
		}
		return
	}
	if !lo.l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	attrs := []slog.Attr{slog.String("store", e.Store)}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", errText(e.Err)))
	}
	lo.l.LogAttrs(ctx, slog.LevelWarn, "llmhttp: shared store failed; falling back to this process's own state", attrs...)
}

// errText returns err's message without the URL a *url.Error adds: a URL
// may carry a key in its query.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}
