package llmhttp

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// BudgetPolicy is what a budget does with a request that does not fit in
// what is left of it.
type BudgetPolicy int

const (
	// BudgetRefuse answers the request at once with a local reply: status
	// 429, Llmhttp-Refusal: budget-exhausted, X-Should-Retry: false and
	// Retry-After: when the request would fit (for a fixed window, its
	// reset). It is the default.
	BudgetRefuse BudgetPolicy = iota
	// BudgetDegrade sends the request degraded (see [Budget.Degrade]): a
	// cheaper model, a shorter answer. Degraded requests are charged like
	// any other; MaxOverdraft bounds how far past its limits they may take
	// the budget before they are refused too.
	BudgetDegrade
	// BudgetDelay makes a request of priority up to DelayUpTo wait until
	// the window has room for it, within its context's deadline, MaxDelay
	// and [WithMaxWait]; waiting requests go in priority order, then
	// arrival. A request whose predicted wait does not fit, or of a higher
	// priority, is refused as under BudgetRefuse.
	BudgetDelay
)

// String returns "refuse", "degrade" or "delay".
func (p BudgetPolicy) String() string {
	switch p {
	case BudgetDegrade:
		return "degrade"
	case BudgetDelay:
		return "delay"
	}
	return "refuse"
}

// Degrade is what a degraded request becomes.
type Degrade struct {
	// Model replaces the JSON body's top-level "model". "" keeps it.
	Model string
	// MaxTokens caps the body's max_tokens (max_completion_tokens,
	// max_output_tokens); a request that sets none gets one (max_tokens,
	// or max_completion_tokens for api.openai.com and Azure OpenAI,
	// max_output_tokens for the Responses API). 0 keeps it.
	MaxTokens int64
}

// Budget is a named limit on what requests may spend per window: requests,
// input tokens, output tokens, tokens in all. A zero limit is no limit.
// Input tokens count every prompt token, cache reads and writes included
// (see [BudgetSettings.Count] to weigh them otherwise).
//
// A request is charged its estimate when it is admitted (input tokens from
// the body, output tokens the average learned from earlier responses,
// capped by max_tokens) and the difference to its actual usage when its
// response's body ends (see [Usage]); a request that fails without a
// response from the provider is refunded.
type Budget struct {
	// Requests, InputTokens, OutputTokens and Tokens (input + output) are
	// the limits per window; 0 means no limit on that count.
	Requests, InputTokens, OutputTokens, Tokens int64

	// Window is the span the limits apply to. 0 means 24 hours.
	Window time.Duration
	// Slots is how many steps the window is kept in. 0 means 60: a rolling
	// window that moves on by Window/60 (a day's by 24 minutes, an hour's
	// by a minute). 1 makes it fixed: it resets all at once every Window,
	// counted from the Unix epoch (a day's at 00:00 UTC). Values above
	// 1440 are lowered to it.
	Slots int

	// PerTenant keeps the budget for each tenant separately (see
	// [WithTenant]): "50k tokens per user per hour". Requests without a
	// tenant share one budget.
	PerTenant bool
	// All applies the budget to every request, named by [WithBudget] or
	// not.
	All bool

	// Policy is what is done with a request that does not fit. The zero
	// value is BudgetRefuse.
	Policy BudgetPolicy
	// Degrade is what a degraded request becomes, under BudgetDegrade or
	// beyond DegradeAt. The zero value degrades nothing: a request to
	// degrade is sent as it is.
	Degrade Degrade
	// DegradeAt, when positive, degrades requests from this fraction of
	// the budget on, whatever the policy, so that it lasts longer. 0 means
	// requests are degraded only when the budget is spent, under
	// BudgetDegrade.
	DegradeAt float64
	// MaxOverdraft bounds, under BudgetDegrade, how far past the limits
	// degraded requests may take the budget, as a fraction of them (0.1:
	// 10 % more); beyond it they are refused. 0 means no bound: a spent
	// budget keeps serving degraded requests.
	MaxOverdraft float64
	// DelayUpTo is, under BudgetDelay, the highest priority that waits.
	// The zero value is PriorityNormal: low and normal requests wait, high
	// and critical ones are refused.
	DelayUpTo Priority
	// MaxDelay bounds a wait under BudgetDelay. 0 means 10 minutes; a
	// negative value leaves only the request's deadline and WithMaxWait.
	MaxDelay time.Duration

	// MaxInputTokens and MaxOutputTokens cap each request: one whose
	// estimated input, or whose max_tokens, is larger is answered at once
	// with a local reply (status 413, Llmhttp-Refusal: too-large), before
	// any budget is charged. 0 means no cap. A request that sets no
	// max_tokens is not checked against MaxOutputTokens unless TrimOutput.
	MaxInputTokens, MaxOutputTokens int64
	// TrimOutput lowers (or sets) the max_tokens of a request over
	// MaxOutputTokens to it instead of refusing the request.
	TrimOutput bool

	// Thresholds are the fractions of the budget at which
	// [BudgetSettings.OnThreshold] is called: once per window each, when
	// the budget's use (requests in flight included) first reaches it. nil
	// means 0.7 and 0.9; an empty, non-nil slice means none.
	Thresholds []float64
}

// Defaults of Budget.
const (
	defaultBudgetWindow = 24 * time.Hour
	defaultBudgetSlots  = 60
	maxBudgetSlots      = 1440
	defaultMaxDelay     = 10 * time.Minute
	// defaultOutputGuess is the output expected of a request that sets no
	// max_tokens before any response was seen.
	defaultOutputGuess = 1024
)

// defaultThresholds are the threshold fractions of a Budget that sets none.
var defaultThresholds = [...]float64{0.7, 0.9}

// BudgetSettings configures a [Budgets] layer. The zero value has no
// budgets: every request passes (load shedding on the pacer's queue still
// applies when wired). NewBudgets copies the settings.
type BudgetSettings struct {
	// Budgets are the budgets by name.
	Budgets map[string]Budget

	// Select names the budgets of a request and its tenant. nil means
	// [BudgetsOf] and [TenantOf] of its context. Names not in Budgets are
	// ignored. Budgets marked All apply in addition.
	Select func(*http.Request) (budgets []string, tenant string)

	// Store keeps the budgets' counts. nil means a [MemoryBudgetStore]
	// of the layer's own. When the store fails, requests are let through
	// uncharged (and OnStoreError is called).
	Store BudgetStore

	// Estimator predicts a request's cost for admission. nil means the
	// pacer's default estimate (see [Estimator]).
	Estimator Estimator

	// Count weighs a response's usage into the input and output tokens
	// budgets are charged. nil charges Usage.InputTokens (every prompt
	// token, cache reads included) and Usage.OutputTokens. When the body
	// did not report the input (a stream cut before its usage chunk), the
	// Usage passed in carries the request's estimate.
	Count func(Usage) (input, output int64)

	// Shed configures load shedding; see [ShedSettings].
	Shed ShedSettings

	// OnThreshold, if set, is called when a budget's use reaches one of
	// its Thresholds, once per threshold per window, outside any lock.
	OnThreshold func(ThresholdEvent)
	// OnDegrade, if set, is called when a request is degraded (or its
	// max_tokens trimmed), before it is sent, outside any lock.
	OnDegrade func(DegradeEvent)
	// OnRefuse, if set, is called when the layer answers a request itself
	// (budget-exhausted, shed, too-large), outside any lock.
	OnRefuse func(RefuseEvent)
	// OnUsage, if set, is called with the usage of each response whose
	// body ended (or was closed), after it was charged, from the goroutine
	// that read or closed it, outside any lock.
	OnUsage func(UsageEvent)
	// OnStoreError, if set, is called when the store fails.
	OnStoreError func(error)
}

// ThresholdEvent reports a budget reaching one of its thresholds.
type ThresholdEvent struct {
	// Budget and Tenant name the budget ("" when it is not PerTenant).
	Budget, Tenant string
	// Threshold is the fraction reached; Fraction the budget's use now,
	// the largest fraction of any of its limits.
	Threshold, Fraction float64
	// Used is what the window holds now, requests in flight included.
	Used BudgetCounts
	// Request is the request whose charge reached the threshold. Do not
	// modify it.
	Request *http.Request
}

// DegradeEvent reports a degraded request.
type DegradeEvent struct {
	// Request is the caller's request (not the degraded clone). Do not
	// modify it.
	Request *http.Request
	// Budget names the budget that degraded it; Tenant is the request's.
	Budget, Tenant string
	// Reason is "exhausted" (the budget is spent, under BudgetDegrade),
	// "threshold" (past DegradeAt) or "cap" (max_tokens over
	// MaxOutputTokens, trimmed).
	Reason string
	// FromModel and Model are the model before and after; both "" when it
	// was kept.
	FromModel, Model string
	// FromMaxTokens and MaxTokens are the output limit before (0: none)
	// and after; both 0 when it was kept.
	FromMaxTokens, MaxTokens int64
}

// RefuseEvent reports a request the budget layer answered itself.
type RefuseEvent struct {
	// Request is the request. Do not modify it.
	Request *http.Request
	// Budget names the budget that refused it ("" for queue shedding);
	// Tenant is the request's.
	Budget, Tenant string
	// Refusal is the local reply's refusal: ReasonBudgetExhausted,
	// ReasonShed or ReasonTooLarge.
	Refusal *Refusal
}

// UsageEvent reports a response's usage, for [BudgetSettings.OnUsage].
type UsageEvent struct {
	// Request is the request. Do not modify it.
	Request *http.Request
	// Usage is what the body reported.
	Usage Usage
	// Charged is what the request's budgets were charged in the end.
	Charged BudgetCounts
	// Budgets names the request's budgets; Tenant is its tenant.
	Budgets []string
	Tenant  string
}

// BudgetStats counts what a budget did, in this process, since the layer
// was built.
type BudgetStats struct {
	// Admitted counts requests it let through (degraded ones included);
	// Degraded those it degraded or trimmed; Delayed those it made wait;
	// Refused those answered budget-exhausted; Shed those answered shed;
	// TooLarge those answered too-large.
	Admitted, Degraded, Delayed, Refused, Shed, TooLarge int64
	// Charged is what it was charged for the requests whose response
	// ended (estimates of requests in flight are not included).
	Charged BudgetCounts
}

// BudgetStatus is a budget's state now, for one tenant.
type BudgetStatus struct {
	// Budget and Tenant name it.
	Budget, Tenant string
	// Used is what its window holds, requests in flight included at their
	// estimate.
	Used BudgetCounts
	// Limit is its definition.
	Limit Budget
	// Fraction is the largest fraction of any of its limits used.
	Fraction float64
}

type (
	budgetNamesKey  struct{}
	budgetTenantKey struct{}
)

// WithBudget returns a copy of ctx whose requests are charged to the named
// budgets, in addition to any named by ctx already.
func WithBudget(ctx context.Context, names ...string) context.Context {
	prev := BudgetsOf(ctx)
	all := make([]string, 0, len(prev)+len(names))
	all = append(append(all, prev...), names...)
	return context.WithValue(ctx, budgetNamesKey{}, all)
}

// BudgetsOf returns the budget names ctx carries (see [WithBudget]). The
// slice must not be modified.
func BudgetsOf(ctx context.Context) []string {
	names, _ := ctx.Value(budgetNamesKey{}).([]string)
	return names
}

// WithTenant returns a copy of ctx whose requests belong to tenant (a user,
// a customer): budgets marked PerTenant are kept for each tenant apart.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, budgetTenantKey{}, tenant)
}

// TenantOf returns the tenant ctx carries (see [WithTenant]), or "".
func TenantOf(ctx context.Context) string {
	t, _ := ctx.Value(budgetTenantKey{}).(string)
	return t
}

// Budgets is the budget layer: it keeps named token budgets per feature
// and per tenant, and before each request is sent decides whether it fits,
// should be degraded, delayed, shed or refused (see [Budget],
// [BudgetPolicy], [ShedSettings]); after the response it charges what the
// response's body reports it used (see [Usage]). [Budgets.Wrap] puts it in
// front of a transport; in [New]'s chain it is the outermost layer, so
// that each request is admitted, rewritten and charged once, whatever its
// retries.
//
// Local replies are in the provider's shape, with X-Should-Retry: false
// (see [Refusal]). A degraded request's response carries
// Llmhttp-Degraded: "model=<model>, max_tokens=<n>" (what was changed).
//
// A Budgets is safe for concurrent use by multiple goroutines and may be
// shared by several transports. It starts no goroutine: waits are timers
// raced against the request's context.
type Budgets struct {
	s     BudgetSettings
	defs  map[string]*budgetDef
	all   []*budgetDef
	store BudgetStore
	shed  shedLevels
	seq   atomic.Uint64

	mu      sync.Mutex
	keys    map[string]*budgetKey // per store key: thresholds fired, waiters
	sweepAt int
}

// budgetDef is a Budget resolved.
type budgetDef struct {
	name       string
	b          Budget
	w          BudgetWindow
	thresholds []float64 // ascending

	// Guarded by Budgets.mu.
	avgOut float64 // learned output per request; 0 before any
	stats  BudgetStats
}

// budgetKey is what the layer keeps per store key.
type budgetKey struct {
	w       BudgetWindow
	fired   []int64 // per threshold, the slot in which it last fired
	waiters []*budgetWaiter
	touched int64 // the last slot it was used in
}

// NewBudgets returns a budget layer configured by s.
func NewBudgets(s BudgetSettings) *Budgets {
	b := &Budgets{
		s:     s,
		defs:  make(map[string]*budgetDef, len(s.Budgets)),
		store: s.Store,
		shed:  s.Shed.levels(),
		keys:  make(map[string]*budgetKey),
	}
	if b.store == nil {
		b.store = &MemoryBudgetStore{}
	}
	names := make([]string, 0, len(s.Budgets))
	for name := range s.Budgets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		d := newBudgetDef(name, s.Budgets[name])
		b.defs[name] = d
		if d.b.All {
			b.all = append(b.all, d)
		}
	}
	return b
}

// newBudgetDef resolves a Budget's defaults.
func newBudgetDef(name string, bu Budget) *budgetDef {
	if bu.Window <= 0 {
		bu.Window = defaultBudgetWindow
	}
	if bu.Slots <= 0 {
		bu.Slots = defaultBudgetSlots
	}
	bu.Slots = min(bu.Slots, maxBudgetSlots)
	if int64(bu.Window) < int64(bu.Slots) {
		bu.Slots = max(int(bu.Window), 1)
	}
	if bu.MaxDelay == 0 {
		bu.MaxDelay = defaultMaxDelay
	}
	d := &budgetDef{name: name, b: bu, w: BudgetWindow{Width: bu.Window / time.Duration(bu.Slots), Slots: bu.Slots}}
	switch {
	case bu.Thresholds == nil:
		d.thresholds = defaultThresholds[:]
	default:
		for _, f := range bu.Thresholds {
			if f > 0 {
				d.thresholds = append(d.thresholds, f)
			}
		}
		slices.Sort(d.thresholds)
	}
	return d
}

// limitsSet reports whether the budget limits anything.
func (d *budgetDef) limitsSet() bool {
	b := &d.b
	return b.Requests > 0 || b.InputTokens > 0 || b.OutputTokens > 0 || b.Tokens > 0
}

// fraction returns the largest fraction of d's limits that c uses.
func (d *budgetDef) fraction(c BudgetCounts) float64 {
	c = c.floor()
	f := 0.0
	for _, p := range [...][2]int64{
		{c.Requests, d.b.Requests}, {c.InputTokens, d.b.InputTokens},
		{c.OutputTokens, d.b.OutputTokens}, {c.Tokens(), d.b.Tokens},
	} {
		if p[1] > 0 {
			f = max(f, float64(p[0])/float64(p[1]))
		}
	}
	return f
}

// fits reports whether cost fits on top of used within d's limits scaled by
// scale; a cost larger than a limit fits an empty window.
func (d *budgetDef) fits(used, cost BudgetCounts, scale float64) bool {
	used = used.floor()
	ok := func(u, c, limit int64) bool {
		if limit <= 0 {
			return true
		}
		l := float64(limit) * scale
		return float64(u)+min(float64(c), l) <= l
	}
	return ok(used.Requests, cost.Requests, d.b.Requests) &&
		ok(used.InputTokens, cost.InputTokens, d.b.InputTokens) &&
		ok(used.OutputTokens, cost.OutputTokens, d.b.OutputTokens) &&
		ok(used.Tokens(), cost.Tokens(), d.b.Tokens)
}

// fitWait returns how long until cost fits within d's limits scaled by
// scale, given the window's slots at now (oldest first; the request's own
// reservation already taken out), if nothing else is charged meanwhile.
func (d *budgetDef) fitWait(slots []BudgetCounts, now time.Time, cost BudgetCounts, scale float64) time.Duration {
	var used BudgetCounts
	for _, s := range slots {
		used = used.add(s)
	}
	first := d.w.Slot(now) - int64(d.w.Slots) + 1
	for i, s := range slots {
		used = used.sub(s)
		if d.fits(used, cost, scale) {
			return max(d.w.start(first+int64(i)+int64(d.w.Slots)).Sub(now), 0)
		}
	}
	return max(d.w.start(first+int64(2*d.w.Slots)).Sub(now), 0)
}

// key returns the store key of d for tenant: the name, and "|tenant" when
// the budget is kept per tenant.
func (d *budgetDef) key(tenant string) string {
	if d.b.PerTenant {
		return d.name + "|" + tenant
	}
	return d.name
}

// Wrap returns next behind the budget layer; b.Wrap is a [Middleware]. If
// next is nil, [http.DefaultTransport] is used. The returned RoundTripper
// forwards CloseIdleConnections to next.
func (b *Budgets) Wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &budgetTransport{b: b, next: next}
}

// budgetTransport is the RoundTripper Wrap returns.
type budgetTransport struct {
	b    *Budgets
	next http.RoundTripper
}

var (
	_ http.RoundTripper = (*budgetTransport)(nil)
	_ closeIdler        = (*budgetTransport)(nil)
	_ infoTripper       = (*budgetTransport)(nil)
)

// CloseIdleConnections forwards to the next RoundTripper.
func (t *budgetTransport) CloseIdleConnections() { closeIdle(t.next) }

// Stats returns the counters of the named budget; false when there is no
// such budget.
func (b *Budgets) Stats(name string) (BudgetStats, bool) {
	d := b.defs[name]
	if d == nil {
		return BudgetStats{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return d.stats, true
}

// Status returns the named budget's use now for tenant (ignored unless the
// budget is PerTenant), as its store reports it.
func (b *Budgets) Status(ctx context.Context, name, tenant string) (BudgetStatus, error) {
	d := b.defs[name]
	if d == nil {
		return BudgetStatus{}, &unknownBudgetError{name}
	}
	if !d.b.PerTenant {
		tenant = ""
	}
	slots := make([]BudgetCounts, d.w.Slots)
	now := time.Now()
	if err := b.store.Add(ctx, d.key(tenant), d.w, now, now, BudgetCounts{}, slots); err != nil {
		return BudgetStatus{}, err
	}
	var used BudgetCounts
	for _, s := range slots {
		used = used.add(s)
	}
	used = used.floor()
	return BudgetStatus{Budget: name, Tenant: tenant, Used: used, Limit: d.b, Fraction: d.fraction(used)}, nil
}

// unknownBudgetError is Status's error for a name without a budget.
type unknownBudgetError struct{ name string }

func (e *unknownBudgetError) Error() string {
	return "llmhttp: no budget named " + strconv.Quote(e.name)
}
