// Package prom exposes llmhttp's events as Prometheus metrics.
//
// [New] returns a [Collector] — a [prometheus.Collector], registered on the
// Registerer it is given — whose [Collector.Observer] goes to
// [llmhttp.New] with [llmhttp.WithObserver]:
//
//	reg := prometheus.NewRegistry()
//	c, err := prom.New(reg)
//	…
//	t := llmhttp.New(nil, llmhttp.WithObserver(c.Observer()))
//	c.Watch(t) // queue depth, in flight and rate-limit gauges
//
// A shared store reports its fallbacks to the Observer it is given, not to
// the transports': give it c.Observer() too (for
// github.com/llmhttp/llmhttp/redis, Settings.Observer).
//
// Metrics (namespace llmhttp; host is the scheme and host, model the
// request's model):
//
//	llmhttp_requests_total{host,model,class}            requests, by the class of their final answer
//	llmhttp_attempts_total{host,model,code}             attempts sent to the server, by status ("error": none)
//	llmhttp_retries_total{host,model,class}             retries, by the class of the attempt retried
//	llmhttp_request_duration_seconds{host,model}        histogram: whole requests, waits and retries included
//	llmhttp_attempt_duration_seconds{host,model}        histogram: attempts on the wire, until the response head
//	llmhttp_wait_seconds{host,model,cause}              histogram: time waiting in llmhttp, by cause
//	llmhttp_refusals_total{host,model,reason}           local replies, by reason
//	llmhttp_gate_closures_total{host,model}             gates closed by the server's answers
//	llmhttp_breaker_state{host,model,state}             1 for a circuit's current state, 0 for the others
//	llmhttp_tokens_total{host,model,type}               tokens reported by responses: input, output, cache_read, cache_write
//	llmhttp_budget_utilization_ratio{budget}            a budget's use, as of its last threshold crossing
//	llmhttp_budget_threshold_crossings_total{budget,threshold}
//	llmhttp_store_fallbacks_total{store}                switches of a shared store ("redis") to its local fallback
//	llmhttp_store_shared{store}                         1 while a shared store's state is shared, 0 while local; from its first switch
//
// and, for each watched Transport, read at scrape time from
// [llmhttp.Transport.Stats] and summed over credentials:
//
//	llmhttp_queued{host,model}                          requests waiting in the pacer
//	llmhttp_in_flight{host,model}                       requests sent and not finished
//	llmhttp_ratelimit_limit{host,model,resource}        the limits the pacer learned: requests, tokens, input_tokens, output_tokens
//	llmhttp_ratelimit_remaining{host,model,resource}    what the pacer believes is left
//
// Labels are bounded: never the API key, its fingerprint or a tenant, so
// there is one series per endpoint, model and outcome a program uses.
package prom

import (
	"strconv"
	"sync"

	"github.com/llmhttp/llmhttp"
	"github.com/prometheus/client_golang/prometheus"
)

// Histogram buckets, in seconds. LLM requests take from a fraction of a
// second to minutes.
var (
	durationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}
	waitBuckets     = []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

// Collector collects llmhttp's metrics. It is safe for concurrent use.
type Collector struct {
	requests       *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	retries        *prometheus.CounterVec
	requestDur     *prometheus.HistogramVec
	attemptDur     *prometheus.HistogramVec
	wait           *prometheus.HistogramVec
	refusals       *prometheus.CounterVec
	gateClosures   *prometheus.CounterVec
	breakerState   *prometheus.GaugeVec
	tokens         *prometheus.CounterVec
	budgetUse      *prometheus.GaugeVec
	budgetCrossing *prometheus.CounterVec
	storeFallbacks *prometheus.CounterVec
	storeShared    *prometheus.GaugeVec

	queuedDesc, inFlightDesc, limitDesc, remainingDesc *prometheus.Desc

	mu      sync.Mutex
	watched []*llmhttp.Transport
}

// New returns a Collector registered on reg; a nil reg registers nothing
// (register the Collector yourself). It fails when reg refuses it, as when
// a Collector is already registered there.
func New(reg prometheus.Registerer) (*Collector, error) {
	const ns = "llmhttp"
	part := []string{"host", "model"}
	labels := func(extra ...string) []string { return append(append([]string{}, part...), extra...) }
	c := &Collector{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
			Help: "Requests carried by llmhttp, by the class of their final answer."}, labels("class")),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "attempts_total",
			Help: "Attempts sent to the server, retries included, by HTTP status (error: no response)."}, labels("code")),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "retries_total",
			Help: "Retries made by llmhttp, by the class of the attempt retried."}, labels("class")),
		requestDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
			Help:    "Duration of requests until their final response head, waits and retries included.",
			Buckets: durationBuckets}, labels()),
		attemptDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "attempt_duration_seconds",
			Help:    "Duration of attempts on the wire, until their response head.",
			Buckets: durationBuckets}, labels()),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "wait_seconds",
			Help:    "Time requests waited in llmhttp, by cause.",
			Buckets: waitBuckets}, labels("cause")),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "refusals_total",
			Help: "Local replies llmhttp made instead of sending a request, by reason."}, labels("reason")),
		gateClosures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "gate_closures_total",
			Help: "Times a response closed (or extended) a partition's gate."}, labels()),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "breaker_state",
			Help: "1 for the current state of a circuit (closed, half-open, open), 0 for the others."}, labels("state")),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "tokens_total",
			Help: "Tokens reported by the responses' usage, by type (input, output, cache_read, cache_write)."}, labels("type")),
		budgetUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "budget_utilization_ratio",
			Help: "Fraction of a budget used, as of its last threshold crossing."}, []string{"budget"}),
		budgetCrossing: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "budget_threshold_crossings_total",
			Help: "Times a budget's use reached one of its thresholds."}, []string{"budget", "threshold"}),
		storeFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "store_fallbacks_total",
			Help: "Times a shared store fell back to local state because it failed or was too slow."}, []string{"store"}),
		storeShared: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "store_shared",
			Help: "1 while a shared store's state is shared, 0 while it has fallen back to local state."}, []string{"store"}),
		queuedDesc:   prometheus.NewDesc(ns+"_queued", "Requests waiting in the pacer.", part, nil),
		inFlightDesc: prometheus.NewDesc(ns+"_in_flight", "Requests sent and not finished.", part, nil),
		limitDesc: prometheus.NewDesc(ns+"_ratelimit_limit",
			"Rate limits the pacer learned, per window.", labels("resource"), nil),
		remainingDesc: prometheus.NewDesc(ns+"_ratelimit_remaining",
			"What the pacer believes is left of each rate limit.", labels("resource"), nil),
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// vecs are the collectors the Collector delegates to.
func (c *Collector) vecs() []prometheus.Collector {
	return []prometheus.Collector{c.requests, c.attempts, c.retries, c.requestDur, c.attemptDur, c.wait,
		c.refusals, c.gateClosures, c.breakerState, c.tokens, c.budgetUse, c.budgetCrossing, c.storeFallbacks,
		c.storeShared}
}

// Describe implements [prometheus.Collector].
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.vecs() {
		v.Describe(ch)
	}
	ch <- c.queuedDesc
	ch <- c.inFlightDesc
	ch <- c.limitDesc
	ch <- c.remainingDesc
}

// Collect implements [prometheus.Collector].
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.vecs() {
		v.Collect(ch)
	}
	c.mu.Lock()
	watched := append([]*llmhttp.Transport(nil), c.watched...)
	c.mu.Unlock()
	type key struct{ host, model string }
	type gauges struct {
		queued, inFlight float64
		limit, remaining [4]float64
		known            [4]bool
	}
	sum := make(map[key]*gauges)
	var order []key
	for _, t := range watched {
		for _, s := range t.Stats() {
			k := key{s.Partition.Host, s.Partition.Model}
			g := sum[k]
			if g == nil {
				g = &gauges{}
				sum[k] = g
				order = append(order, k)
			}
			g.queued += float64(s.Pacer.Queued)
			g.inFlight += float64(s.Pacer.InFlight)
			for i, b := range [4]llmhttp.BucketStats{s.Pacer.Requests, s.Pacer.Tokens, s.Pacer.InputTokens, s.Pacer.OutputTokens} {
				if b.Limit > 0 {
					g.limit[i] += float64(b.Limit)
					g.remaining[i] += max(b.Level, 0)
					g.known[i] = true
				}
			}
		}
	}
	resources := [4]string{"requests", "tokens", "input_tokens", "output_tokens"}
	for _, k := range order {
		g := sum[k]
		ch <- prometheus.MustNewConstMetric(c.queuedDesc, prometheus.GaugeValue, g.queued, k.host, k.model)
		ch <- prometheus.MustNewConstMetric(c.inFlightDesc, prometheus.GaugeValue, g.inFlight, k.host, k.model)
		for i, r := range resources {
			if g.known[i] {
				ch <- prometheus.MustNewConstMetric(c.limitDesc, prometheus.GaugeValue, g.limit[i], k.host, k.model, r)
				ch <- prometheus.MustNewConstMetric(c.remainingDesc, prometheus.GaugeValue, g.remaining[i], k.host, k.model, r)
			}
		}
	}
}

// Watch adds t's queue depth, requests in flight and rate limits (see
// [llmhttp.Transport.Stats]) to the gauges read at each scrape.
func (c *Collector) Watch(t *llmhttp.Transport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watched = append(c.watched, t)
}

// Observer returns the [llmhttp.Observer] that feeds the Collector's
// metrics; give it to [llmhttp.New] with [llmhttp.WithObserver], and to a
// shared store (see the package documentation). Several transports and
// stores may share it.
func (c *Collector) Observer() *llmhttp.Observer {
	return &llmhttp.Observer{
		OnRequest:            c.request,
		OnAttempt:            c.attempt,
		OnRetry:              c.retry,
		OnWait:               c.waited,
		OnGate:               c.gate,
		OnBreakerStateChange: c.breaker,
		OnRefusal:            c.refusal,
		OnUsage:              c.usage,
		OnBudgetThreshold:    c.threshold,
		OnStore:              c.store,
	}
}

func (c *Collector) request(e llmhttp.RequestEvent) {
	p := e.Partition
	c.requests.WithLabelValues(p.Host, p.Model, e.Class.String()).Inc()
	c.requestDur.WithLabelValues(p.Host, p.Model).Observe(e.Duration.Seconds())
}

func (c *Collector) attempt(e llmhttp.AttemptEvent) {
	p := e.Partition
	code := "error"
	if e.Status > 0 {
		code = strconv.Itoa(e.Status)
	}
	c.attempts.WithLabelValues(p.Host, p.Model, code).Inc()
	c.attemptDur.WithLabelValues(p.Host, p.Model).Observe(e.Duration.Seconds())
}

func (c *Collector) retry(e llmhttp.RetryEvent) {
	p := llmhttp.DefaultPartition(e.Request)
	c.retries.WithLabelValues(p.Host, p.Model, e.Class.String()).Inc()
}

func (c *Collector) waited(e llmhttp.WaitEvent) {
	if e.Waited <= 0 {
		return
	}
	c.wait.WithLabelValues(e.Partition.Host, e.Partition.Model, e.Cause).Observe(e.Waited.Seconds())
}

func (c *Collector) gate(e llmhttp.GateEvent) {
	if e.Closed {
		c.gateClosures.WithLabelValues(e.Partition.Host, e.Partition.Model).Inc()
	}
}

func (c *Collector) breaker(e llmhttp.BreakerEvent) {
	p := e.Partition
	for _, s := range [...]llmhttp.State{llmhttp.StateClosed, llmhttp.StateHalfOpen, llmhttp.StateOpen} {
		v := 0.0
		if s == e.To {
			v = 1
		}
		c.breakerState.WithLabelValues(p.Host, p.Model, s.String()).Set(v)
	}
}

func (c *Collector) refusal(e llmhttp.RefusalEvent) {
	c.refusals.WithLabelValues(e.Partition.Host, e.Partition.Model, e.Refusal.Reason).Inc()
}

func (c *Collector) usage(e llmhttp.TokenUsageEvent) {
	p, u := e.Partition, e.Usage
	c.tokens.WithLabelValues(p.Host, p.Model, "input").Add(float64(max(u.InputTokens, 0)))
	c.tokens.WithLabelValues(p.Host, p.Model, "output").Add(float64(max(u.OutputTokens, 0)))
	if u.CacheReadTokens > 0 {
		c.tokens.WithLabelValues(p.Host, p.Model, "cache_read").Add(float64(u.CacheReadTokens))
	}
	if u.CacheWriteTokens > 0 {
		c.tokens.WithLabelValues(p.Host, p.Model, "cache_write").Add(float64(u.CacheWriteTokens))
	}
}

func (c *Collector) threshold(e llmhttp.ThresholdEvent) {
	c.budgetUse.WithLabelValues(e.Budget).Set(e.Fraction)
	c.budgetCrossing.WithLabelValues(e.Budget, strconv.FormatFloat(e.Threshold, 'g', -1, 64)).Inc()
}

func (c *Collector) store(e llmhttp.StoreEvent) {
	if e.Shared {
		c.storeShared.WithLabelValues(e.Store).Set(1)
		return
	}
	c.storeFallbacks.WithLabelValues(e.Store).Inc()
	c.storeShared.WithLabelValues(e.Store).Set(0)
}
