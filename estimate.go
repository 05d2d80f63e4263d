package llmhttp

import (
	"net/http"
)

// Estimate is the size of a request as the pacer predicts it before sending
// it (design.md §4).
type Estimate struct {
	// InputTokens is the prompt's size as the provider counts it against
	// its input-token (Anthropic ITPM) or combined-token (OpenAI TPM) limit.
	InputTokens int64
	// MaxOutputTokens is the request's max_tokens (max_completion_tokens,
	// max_output_tokens); 0 when it sets none.
	MaxOutputTokens int64
	// OutputTokens is the output the request is expected to generate. 0
	// lets the pacer use the average it learned from earlier responses of
	// the same partition, capped by MaxOutputTokens.
	OutputTokens int64
}

// An Estimator predicts the cost of a request before it is sent. def is the
// pacer's own estimate: input tokens as the text characters of the JSON
// body / 4 (base64 images and documents cost a flat 1,600 tokens each, not
// their size), MaxOutputTokens from the body and OutputTokens 0. An
// Estimator may refine it with a tokenizer or a count_tokens call; it must
// read the body, if at all, through req.GetBody and never through req.Body.
// It is called once per request (not per attempt), outside any lock.
type Estimator func(req *http.Request, def Estimate) Estimate

// OutputCharging is the rule by which a provider charges output tokens
// against its output (Anthropic OTPM) or combined (OpenAI TPM) limit.
// Providers differ and change their rules (llm-wire §1.5, §2.3).
type OutputCharging int

const (
	// OutputAuto starts from the provider's documented rule (Anthropic:
	// generated; OpenAI: reserved) and switches when the rate-limit
	// headers contradict it; see [PacerSettings.OutputCharging].
	OutputAuto OutputCharging = iota
	// OutputReserved: max_tokens of output is reserved when the request is
	// admitted and the unused part is refunded when it ends (OpenAI;
	// Anthropic until 2025).
	OutputReserved
	// OutputGenerated: only the tokens actually generated are counted, as
	// they are generated; max_tokens plays no part (Anthropic since 2026).
	OutputGenerated
)

// String returns "auto", "reserved" or "generated".
func (c OutputCharging) String() string {
	switch c {
	case OutputReserved:
		return "reserved"
	case OutputGenerated:
		return "generated"
	}
	return "auto"
}

// Learning rates and bounds of what the pacer learns per partition.
const (
	// outputAlpha is the weight of a new observation in the average output.
	outputAlpha = 0.1
	// ratioAlpha is the weight of a new observation in the input ratio.
	ratioAlpha = 0.2
	// minInputRatio and maxInputRatio bound the learned correction of the
	// input estimate. It never lowers the estimate: an estimate a little
	// high only delays a request by as much, one a little low makes it
	// arrive when the bucket is a few tokens short — a 429.
	minInputRatio, maxInputRatio = 1.0, 5.0
	// defaultOutputPrior is the output assumed of a request that sets no
	// max_tokens before any output was observed.
	defaultOutputPrior = 1024
)

// learned is what a partition learns about its requests from responses.
// It is guarded by the partition's lock.
type learned struct {
	// avgOutput is the average output tokens per request (0: none seen).
	avgOutput float64
	// inputRatio corrects the input estimate: actual / estimated (1 until
	// the first usage is seen).
	inputRatio float64
	// rule is the output charging rule currently assumed; fixed when the
	// settings force one.
	rule OutputCharging
	// auto reports that rule may change with evidence; confirmed that the
	// headers showed the generated rule (nothing reserved for requests in
	// flight), or that the settings fixed the rule.
	auto, confirmed bool
	// refuted counts consecutive responses that contradict OutputReserved;
	// ambiguous the 429s on an empty output bucket under OutputGenerated;
	// refunds the reports that showed output given back (see fullTrack).
	refuted, ambiguous, refunds int
	// full follows when the output bucket's reports say it is full again.
	full fullTrack
}

// newLearned returns the starting knowledge for a partition of provider.
func newLearned(rule OutputCharging, provider Provider) learned {
	l := learned{inputRatio: 1, rule: rule, confirmed: rule != OutputAuto}
	if rule == OutputAuto {
		l.auto = true
		l.rule = OutputReserved
		if provider == ProviderAnthropic {
			l.rule = OutputGenerated
		}
	}
	return l
}

// cost returns the pacing cost of a request of estimate e: one request,
// the corrected input, and the output the current rule charges. need is
// what the server's buckets must hold to admit it: the cost, except that
// while the generated rule is assumed but not yet confirmed, room for
// max_tokens is required (not charged), so that a server that does reserve
// it sends no 429 before the pacer finds out. It also reports whether the output part
// is one the server has not counted at admission (so it is subtracted from
// reported remainders while the request is in flight).
func (l *learned) cost(e Estimate) (c, need pcost, outUncounted bool) {
	in := float64(e.InputTokens) * l.inputRatio
	var out float64
	maxOut := float64(e.MaxOutputTokens)
	if l.rule == OutputReserved && e.MaxOutputTokens > 0 {
		out = maxOut // reserved at admission: counted at once
	} else {
		outUncounted = true
		out = l.expectedOutput(e)
	}
	c[pdRequests] = 1
	c[pdRequestsPerDay] = 1
	c[pdInput] = in
	c[pdOutput] = out
	c[pdTokens] = in + out
	need = c
	if l.rule == OutputGenerated && !l.confirmed && maxOut > out {
		need[pdOutput] = maxOut
		need[pdTokens] = in + maxOut
	}
	return c, need, outUncounted
}

// expectedOutput returns the output a request of estimate e is expected to
// generate: the estimator's figure, else the learned average, else
// max_tokens, else a default prior; never more than max_tokens.
func (l *learned) expectedOutput(e Estimate) float64 {
	var out float64
	switch {
	case e.OutputTokens > 0:
		out = float64(e.OutputTokens)
	case l.avgOutput > 0:
		out = l.avgOutput
	case e.MaxOutputTokens > 0:
		out = float64(e.MaxOutputTokens)
	default:
		out = defaultOutputPrior
	}
	if e.MaxOutputTokens > 0 {
		out = min(out, float64(e.MaxOutputTokens))
	}
	return out
}

// observeOutput learns from a request that generated n output tokens.
func (l *learned) observeOutput(n int64) {
	if n < 0 {
		return
	}
	if l.avgOutput == 0 {
		l.avgOutput = max(float64(n), 1)
		return
	}
	l.avgOutput += outputAlpha * (float64(n) - l.avgOutput)
	l.avgOutput = max(l.avgOutput, 1)
}

// observeInput learns from a request estimated at est input tokens (before
// correction) that the server counted as actual.
func (l *learned) observeInput(est, actual int64) {
	if est <= 0 || actual <= 0 {
		return
	}
	r := float64(actual) / float64(est)
	l.inputRatio += ratioAlpha * (r - l.inputRatio)
	l.inputRatio = min(max(l.inputRatio, minInputRatio), maxInputRatio)
}
