// Package otel records llmhttp's events as OpenTelemetry metrics.
//
// [NewObserver] returns an [llmhttp.Observer] to give to [llmhttp.New] with
// [llmhttp.WithObserver]. It records, through a [metric.MeterProvider]:
//
//   - http.client.request.duration (s), the stable HTTP client metric, once
//     per attempt sent to the server, with http.request.method,
//     server.address, server.port, http.response.status_code, error.type
//     and, on retries, http.request.resend_count;
//   - gen_ai.client.token.usage ({token}), GenAI's token histogram, per
//     response with gen_ai.token.type input and output,
//     gen_ai.provider.name, gen_ai.operation.name and gen_ai.request.model;
//   - gen_ai.client.operation.duration (s) per request, retries and waits
//     included;
//   - llmhttp's own: llmhttp.client.requests by final class,
//     llmhttp.client.retries, llmhttp.client.wait.duration by cause,
//     llmhttp.client.refusals by reason, llmhttp.client.gate.closures,
//     llmhttp.client.breaker.state (0 closed, 1 half-open, 2 open) and
//     llmhttp.client.breaker.transitions, llmhttp.client.budget.utilization
//     and llmhttp.client.budget.thresholds;
//   - a shared store's: llmhttp.client.store.fallbacks, its switches to local
//     state, and llmhttp.client.store.shared (1 shared, 0 local, from its first
//     switch), by llmhttp.store.name. A store reports to the Observer it is
//     given, not to the transports': give it this one too (for
//     github.com/llmhttp/llmhttp/redis, Settings.Observer).
//
// Attributes name the server and the model, never the API key, its
// fingerprint or a tenant: their cardinality stays that of the endpoints and
// models a program uses.
//
// # Spans
//
// llmhttp makes no spans. For one CLIENT span per attempt, as the HTTP
// semantic conventions ask, put otelhttp inside llmhttp's retry layer — as
// the base of [llmhttp.New] — and [ResendCount] inside otelhttp, so that
// each retried attempt's span carries http.request.resend_count:
//
//	base := otelhttp.NewTransport(otel.ResendCount(http.DefaultTransport))
//	client := &http.Client{Transport: llmhttp.New(base, llmhttp.WithObserver(obs))}
//
// otelhttp outside llmhttp would make one span for the whole request, its
// 429s and waits hidden inside it. anthropic-sdk-go makes its own logical
// span; with otelhttp in the stack, turn the SDK's propagation off
// (option.WithOpenTelemetryPropagation(false)).
package otel

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/llmhttp/llmhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter.
const ScopeName = "github.com/llmhttp/llmhttp/otel"

// Attributes of llmhttp's own instruments.
const (
	// AttrClass is the class of a request's final answer or of a retried
	// attempt (llmhttp.Class.String: "rate_limited", "overloaded", …).
	AttrClass = attribute.Key("llmhttp.class")
	// AttrWaitCause is why a request waited (llmhttp.WaitEvent.Cause).
	AttrWaitCause = attribute.Key("llmhttp.wait.cause")
	// AttrRefusalReason is a local reply's reason (llmhttp.Refusal.Reason).
	AttrRefusalReason = attribute.Key("llmhttp.refusal.reason")
	// AttrBreakerState is a circuit's state ("closed", "half-open", "open").
	AttrBreakerState = attribute.Key("llmhttp.breaker.state")
	// AttrBudget is a budget's name.
	AttrBudget = attribute.Key("llmhttp.budget.name")
	// AttrBudgetThreshold is a budget threshold (a fraction).
	AttrBudgetThreshold = attribute.Key("llmhttp.budget.threshold")
	// AttrStore is a shared store's name (llmhttp.StoreEvent.Store:
	// "redis").
	AttrStore = attribute.Key("llmhttp.store.name")
)

// Bucket boundaries. LLM calls last seconds to minutes, past the HTTP
// conventions' advisory 10 s, so durations use GenAI's
// gen_ai.client.operation.duration boundaries.
var (
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)

// An Option configures [NewObserver].
type Option func(*config)

type config struct{ mp metric.MeterProvider }

// WithMeterProvider records through mp. The default is the global
// provider, otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// recorder holds the instruments.
type recorder struct {
	attemptDur   metric.Float64Histogram
	tokens       metric.Int64Histogram
	operationDur metric.Float64Histogram
	requests     metric.Int64Counter
	retries      metric.Int64Counter
	waitDur      metric.Float64Histogram
	refusals     metric.Int64Counter
	gateClosures metric.Int64Counter
	breakerState metric.Int64Gauge
	transitions  metric.Int64Counter
	budgetUse    metric.Float64Gauge
	thresholds   metric.Int64Counter
	storeFalls   metric.Int64Counter
	storeShared  metric.Int64Gauge

	parts sync.Map // partKey → *partAttrs
	opts  sync.Map // optKey → metric.MeasurementOption
}

// NewObserver returns an [llmhttp.Observer] that records llmhttp's events
// as the metrics listed in the package documentation. It fails only when
// the meter refuses to create an instrument.
func NewObserver(opts ...Option) (*llmhttp.Observer, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	m := c.mp.Meter(ScopeName)
	r := &recorder{}
	var err error
	keep := func(e error) {
		if err == nil {
			err = e
		}
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		keep(e)
		return c
	}
	gauge := func(name, desc string) metric.Int64Gauge {
		g, e := m.Int64Gauge(name, metric.WithUnit("1"), metric.WithDescription(desc))
		keep(e)
		return g
	}
	seconds := func(name, desc string) metric.Float64Histogram {
		h, e := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		keep(e)
		return h
	}
	var e error
	r.attemptDur = seconds("http.client.request.duration",
		"Duration of HTTP client requests: one per attempt sent to the server.")
	r.tokens, e = m.Int64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used."),
		metric.WithExplicitBucketBoundaries(tokenBuckets...))
	keep(e)
	r.operationDur = seconds("gen_ai.client.operation.duration",
		"GenAI operation duration: the whole request, retries and waits included.")
	r.requests = counter("llmhttp.client.requests", "{request}",
		"Requests carried by llmhttp, by the class of their final answer.")
	r.retries = counter("llmhttp.client.retries", "{retry}",
		"Retries made by llmhttp, by the class of the attempt retried.")
	r.waitDur = seconds("llmhttp.client.wait.duration", "Time requests waited in llmhttp, by cause.")
	r.refusals = counter("llmhttp.client.refusals", "{refusal}",
		"Local replies llmhttp made instead of sending a request, by reason.")
	r.gateClosures = counter("llmhttp.client.gate.closures", "{closure}",
		"Times a response closed (or extended) a partition's gate.")
	r.breakerState = gauge("llmhttp.client.breaker.state", "State of a circuit: 0 closed, 1 half-open, 2 open.")
	r.transitions = counter("llmhttp.client.breaker.transitions", "{transition}",
		"Changes of a circuit's state, by the state entered.")
	r.budgetUse, e = m.Float64Gauge("llmhttp.client.budget.utilization", metric.WithUnit("1"),
		metric.WithDescription("Fraction of a budget used, as of its last threshold crossing."))
	keep(e)
	r.thresholds = counter("llmhttp.client.budget.thresholds", "{crossing}",
		"Times a budget's use reached one of its thresholds.")
	r.storeFalls = counter("llmhttp.client.store.fallbacks", "{fallback}",
		"Times a shared store fell back to local state because it failed or was too slow.")
	r.storeShared = gauge("llmhttp.client.store.shared",
		"1 while a shared store's state is shared, 0 while it has fallen back to local state.")
	if err != nil {
		return nil, err
	}
	return &llmhttp.Observer{
		OnRequest:            r.request,
		OnAttempt:            r.attempt,
		OnRetry:              r.retry,
		OnWait:               r.wait,
		OnGate:               r.gate,
		OnBreakerStateChange: r.breaker,
		OnRefusal:            r.refusal,
		OnUsage:              r.usage,
		OnBudgetThreshold:    r.threshold,
		OnStore:              r.store,
	}, nil
}

// partKey names the attributes of a partition: its host and model.
type partKey struct{ host, model string }

// partAttrs are a partition's precomputed attributes.
type partAttrs struct {
	server []attribute.KeyValue // server.address, server.port
	model  attribute.KeyValue   // gen_ai.request.model
	base   attribute.Set        // server.address, server.port, gen_ai.request.model
}

// attrs returns p's attributes, computing them once per host and model.
func (r *recorder) attrs(p llmhttp.Partition) *partAttrs {
	k := partKey{p.Host, p.Model}
	if v, ok := r.parts.Load(k); ok {
		return v.(*partAttrs)
	}
	addr, port := splitHost(p.Host)
	a := &partAttrs{
		server: []attribute.KeyValue{semconv.ServerAddress(addr), semconv.ServerPort(port)},
		model:  semconv.GenAIRequestModel(p.Model),
	}
	a.base = attribute.NewSet(append(a.server[:2:2], a.model)...)
	v, _ := r.parts.LoadOrStore(k, a)
	return v.(*partAttrs)
}

// splitHost splits a partition's host ("https://api.anthropic.com",
// "http://127.0.0.1:8080") into server.address and server.port.
func splitHost(h string) (string, int) {
	port := 443
	if scheme, rest, ok := strings.Cut(h, "://"); ok {
		if scheme == "http" {
			port = 80
		}
		h = rest
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		if n, err := strconv.Atoi(h[i+1:]); err == nil {
			port = n
		}
		h = h[:i]
	}
	return strings.Trim(h, "[]"), port
}

// method returns the http.request.method attribute of m: one of the known
// methods, or _OTHER.
func method(m string) attribute.KeyValue {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch,
		http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return semconv.HTTPRequestMethodKey.String(m)
	case "":
		return semconv.HTTPRequestMethodGet
	}
	return semconv.HTTPRequestMethodOther
}

// errorType returns error.type for an outcome, and false when it is not an
// error: a status ≥ 400 as its code, a failure without a response as its
// class. The caller's cancellation is not an error.
func errorType(status int, class llmhttp.Class) (attribute.KeyValue, bool) {
	switch {
	case status >= 400:
		return semconv.ErrorTypeKey.String(strconv.Itoa(status)), true
	case status == 0 && class != llmhttp.ClassOK && class != llmhttp.ClassCanceled:
		return semconv.ErrorTypeKey.String(class.String()), true
	}
	return attribute.KeyValue{}, false
}

// optKey names a cached set of measurement attributes: the instrument, the
// partition's host and model, and the event's own bounded values.
type optKey struct {
	inst        instrument
	host, model string
	s           string // class, cause, reason, state, method, budget or store
	a, b        int    // status and resend count; provider and operation
	f           float64
}

// instrument tells optKeys apart.
type instrument uint8

const (
	instAttempt instrument = iota
	instRequest
	instOperation
	instTokens
	instRetry
	instWait
	instGate
	instBreaker
	instTransition
	instRefusal
	instBudget
	instThreshold
	instStore
)

// opt returns the measurement option of k, built by attrs the first time:
// attribute sets are computed once per distinct key, not per event.
func (r *recorder) opt(k optKey, attrs func() []attribute.KeyValue) metric.MeasurementOption {
	if v, ok := r.opts.Load(k); ok {
		return v.(metric.MeasurementOption)
	}
	v, _ := r.opts.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(attrs()...)))
	return v.(metric.MeasurementOption)
}

func (r *recorder) attempt(e llmhttp.AttemptEvent) {
	p := e.Partition
	k := optKey{inst: instAttempt, host: p.Host, model: p.Model, s: e.Request.Method, a: e.Status, b: e.Attempt - 1}
	if e.Status == 0 {
		k.f = float64(e.Class)
	}
	o := r.opt(k, func() []attribute.KeyValue {
		kvs := append(r.attrs(p).server[:2:2], method(e.Request.Method))
		if e.Status > 0 {
			kvs = append(kvs, semconv.HTTPResponseStatusCode(e.Status))
		}
		if et, ok := errorType(e.Status, e.Class); ok {
			kvs = append(kvs, et)
		}
		if e.Attempt > 1 {
			kvs = append(kvs, semconv.HTTPRequestResendCount(e.Attempt-1))
		}
		return kvs
	})
	r.attemptDur.Record(ctxOf(e.Request), e.Duration.Seconds(), o)
}

// genAI returns the GenAI attributes of a request to p in provider's
// dialect: the operation, the provider, the model and the server.
func genAI(a *partAttrs, op attribute.KeyValue, provider llmhttp.Provider) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, 8)
	kvs = append(kvs, a.server...)
	kvs = append(kvs, a.model, op)
	if provider == llmhttp.ProviderAnthropic {
		kvs = append(kvs, semconv.GenAIProviderNameAnthropic)
	} else {
		kvs = append(kvs, semconv.GenAIProviderNameOpenAI)
	}
	return kvs
}

// Operations, for optKeys.
const (
	opChat = iota
	opEmbeddings
	opTextCompletion
)

// operation returns gen_ai.operation.name for req's endpoint, and its
// number for optKeys.
func operation(req *http.Request) (attribute.KeyValue, int) {
	if req != nil && req.URL != nil {
		switch p := req.URL.Path; {
		case strings.HasSuffix(p, "/embeddings"):
			return semconv.GenAIOperationNameEmbeddings, opEmbeddings
		case strings.HasSuffix(p, "/completions") && !strings.HasSuffix(p, "/chat/completions"):
			return semconv.GenAIOperationNameTextCompletion, opTextCompletion
		}
	}
	return semconv.GenAIOperationNameChat, opChat
}

func (r *recorder) request(e llmhttp.RequestEvent) {
	p := e.Partition
	ctx := ctxOf(e.Request)
	r.requests.Add(ctx, 1, r.opt(optKey{inst: instRequest, host: p.Host, model: p.Model, s: e.Class.String()},
		func() []attribute.KeyValue {
			return append(r.attrs(p).base.ToSlice(), AttrClass.String(e.Class.String()))
		}))
	if p.Model == "" {
		return // not a generation request
	}
	op, opn := operation(e.Request)
	o := r.opt(optKey{inst: instOperation, host: p.Host, model: p.Model, s: e.Class.String(), a: e.Status,
		b: int(e.Provider)<<8 | opn}, func() []attribute.KeyValue {
		kvs := genAI(r.attrs(p), op, e.Provider)
		if et, ok := errorType(e.Status, e.Class); ok {
			kvs = append(kvs, et)
		}
		return kvs
	})
	r.operationDur.Record(ctx, e.Duration.Seconds(), o)
}

func (r *recorder) usage(e llmhttp.TokenUsageEvent) {
	p := e.Partition
	ctx := ctxOf(e.Request)
	op, opn := operation(e.Request)
	for _, tt := range [...]attribute.KeyValue{semconv.GenAITokenTypeInput, semconv.GenAITokenTypeOutput} {
		o := r.opt(optKey{inst: instTokens, host: p.Host, model: p.Model, s: tt.Value.AsString(),
			b: int(e.Usage.Provider)<<8 | opn}, func() []attribute.KeyValue {
			return append(genAI(r.attrs(p), op, e.Usage.Provider), tt)
		})
		n := e.Usage.OutputTokens
		if tt == semconv.GenAITokenTypeInput {
			n = e.Usage.InputTokens
		}
		r.tokens.Record(ctx, n, o)
	}
}

// partOpt returns the option of inst for p with one more attribute.
func (r *recorder) partOpt(inst instrument, p llmhttp.Partition, kv attribute.KeyValue) metric.MeasurementOption {
	return r.opt(optKey{inst: inst, host: p.Host, model: p.Model, s: kv.Value.Emit()}, func() []attribute.KeyValue {
		return append(r.attrs(p).base.ToSlice(), kv)
	})
}

func (r *recorder) retry(e llmhttp.RetryEvent) {
	r.retries.Add(ctxOf(e.Request), 1, r.partOpt(instRetry, llmhttp.DefaultPartition(e.Request), AttrClass.String(e.Class.String())))
}

func (r *recorder) wait(e llmhttp.WaitEvent) {
	if e.Waited <= 0 {
		return
	}
	r.waitDur.Record(ctxOf(e.Request), e.Waited.Seconds(), r.partOpt(instWait, e.Partition, AttrWaitCause.String(e.Cause)))
}

func (r *recorder) gate(e llmhttp.GateEvent) {
	if !e.Closed {
		return
	}
	r.gateClosures.Add(context.Background(), 1, metric.WithAttributeSet(r.attrs(e.Partition).base))
}

func (r *recorder) breaker(e llmhttp.BreakerEvent) {
	ctx := context.Background()
	r.breakerState.Record(ctx, stateValue(e.To), metric.WithAttributeSet(r.attrs(e.Partition).base))
	r.transitions.Add(ctx, 1, r.partOpt(instTransition, e.Partition, AttrBreakerState.String(e.To.String())))
}

// stateValue is the gauge value of a circuit state.
func stateValue(s llmhttp.State) int64 {
	switch s {
	case llmhttp.StateHalfOpen:
		return 1
	case llmhttp.StateOpen:
		return 2
	}
	return 0
}

func (r *recorder) refusal(e llmhttp.RefusalEvent) {
	r.refusals.Add(ctxOf(e.Request), 1, r.partOpt(instRefusal, e.Partition, AttrRefusalReason.String(e.Refusal.Reason)))
}

func (r *recorder) threshold(e llmhttp.ThresholdEvent) {
	ctx := ctxOf(e.Request)
	b := AttrBudget.String(e.Budget)
	r.budgetUse.Record(ctx, e.Fraction, r.opt(optKey{inst: instBudget, s: e.Budget},
		func() []attribute.KeyValue { return []attribute.KeyValue{b} }))
	r.thresholds.Add(ctx, 1, r.opt(optKey{inst: instThreshold, s: e.Budget, f: e.Threshold},
		func() []attribute.KeyValue { return []attribute.KeyValue{b, AttrBudgetThreshold.Float64(e.Threshold)} }))
}

func (r *recorder) store(e llmhttp.StoreEvent) {
	ctx := context.Background()
	o := r.opt(optKey{inst: instStore, s: e.Store},
		func() []attribute.KeyValue { return []attribute.KeyValue{AttrStore.String(e.Store)} })
	if e.Shared {
		r.storeShared.Record(ctx, 1, o)
		return
	}
	r.storeFalls.Add(ctx, 1, o)
	r.storeShared.Record(ctx, 0, o)
}

// ResendCount returns a middleware body for the transport below otelhttp:
// it sets http.request.resend_count on the span of each retried attempt
// (see [llmhttp.ResendCount]) and calls next. If next is nil,
// [http.DefaultTransport] is used. It forwards CloseIdleConnections.
func ResendCount(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &resendCount{next: next}
}

type resendCount struct{ next http.RoundTripper }

// RoundTrip implements [http.RoundTripper].
func (t *resendCount) RoundTrip(req *http.Request) (*http.Response, error) {
	if n := llmhttp.ResendCount(req.Context()); n > 0 {
		trace.SpanFromContext(req.Context()).SetAttributes(semconv.HTTPRequestResendCount(n))
	}
	return t.next.RoundTrip(req)
}

// CloseIdleConnections forwards to the next transport.
func (t *resendCount) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// ctxOf returns req's context, or Background for none.
func ctxOf(req *http.Request) context.Context {
	if req == nil {
		return context.Background()
	}
	return req.Context()
}
