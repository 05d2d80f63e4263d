package llmhttptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is an error reply in either provider's shape (llm-wire.md §1.2,
// §2.2):
//
//	Anthropic: {"type":"error","error":{"type":T,"message":M},"request_id":ID}
//	OpenAI:    {"error":{"message":M,"type":T,"param":null,"code":C}}
type apiError struct {
	status  int
	typ     string // Anthropic error.type / OpenAI error.type
	code    string // OpenAI error.code; "" is null. Anthropic: details.error_code
	param   string // OpenAI error.param; "" is null
	message string
}

type anthropicErrorBody struct {
	Type      string             `json:"type"`
	Error     anthropicErrDetail `json:"error"`
	RequestID string             `json:"request_id,omitempty"`
}

type anthropicErrDetail struct {
	Type    string            `json:"type"`
	Message string            `json:"message"`
	Details *anthropicErrCode `json:"details,omitempty"`
}

type anthropicErrCode struct {
	ErrorCode string `json:"error_code"`
}

type openAIErrorBody struct {
	Error openAIErrDetail `json:"error"`
}

type openAIErrDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// body returns e's JSON body for provider p.
func (e apiError) body(p Provider, requestID string) []byte {
	var v any
	if p == Anthropic {
		b := anthropicErrorBody{Type: "error", RequestID: requestID,
			Error: anthropicErrDetail{Type: e.typ, Message: e.message}}
		if e.code != "" {
			b.Error.Details = &anthropicErrCode{ErrorCode: e.code}
		}
		v = b
	} else {
		b := openAIErrorBody{Error: openAIErrDetail{Message: e.message, Type: e.typ}}
		if e.code != "" {
			b.Error.Code = &e.code
		}
		if e.param != "" {
			b.Error.Param = &e.param
		}
		v = b
	}
	out, _ := json.Marshal(v) // cannot fail: plain structs of strings
	return out
}

// write sends e as the response, with a retry-after header of retryAfter
// whole seconds when retryAfter > 0.
func (e apiError) write(w http.ResponseWriter, p Provider, requestID string, retryAfter int64) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	if retryAfter > 0 {
		hd.Set("Retry-After", strconv.FormatInt(retryAfter, 10))
	}
	b := e.body(p, requestID)
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.status)
	w.Write(b)
}

// The error replies the handler sends, per provider.

func errInvalidJSON(p Provider, detail string) apiError {
	if p == Anthropic {
		return apiError{status: 400, typ: "invalid_request_error", message: "Invalid JSON in request body: " + detail}
	}
	return apiError{status: 400, typ: "invalid_request_error",
		message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"}
}

func errInvalid(p Provider, param, message string) apiError {
	return apiError{status: 400, typ: "invalid_request_error", param: param, message: message}
}

func errNotFound(p Provider, method, path string) apiError {
	if p == Anthropic {
		return apiError{status: 404, typ: "not_found_error", message: "Not Found"}
	}
	return apiError{status: 404, typ: "invalid_request_error", message: "Invalid URL (" + method + " " + path + ")"}
}

func errMethod(p Provider, method, path string) apiError {
	if p == Anthropic {
		return apiError{status: 405, typ: "invalid_request_error", message: "Method Not Allowed"}
	}
	return apiError{status: 405, typ: "invalid_request_error", message: "Invalid method for URL (" + method + " " + path + ")"}
}

func errNoKey(p Provider) apiError {
	if p == Anthropic {
		return apiError{status: 401, typ: "authentication_error", message: "x-api-key header is required"}
	}
	return apiError{status: 401, typ: "invalid_request_error",
		message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."}
}

func errBadKey(p Provider) apiError {
	if p == Anthropic {
		return apiError{status: 401, typ: "authentication_error", message: "invalid x-api-key"}
	}
	return apiError{status: 401, typ: "invalid_request_error", code: "invalid_api_key",
		message: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."}
}

func errTooLarge(p Provider) apiError {
	if p == Anthropic {
		return apiError{status: 413, typ: "request_too_large", message: "Request exceeds the maximum allowed number of bytes."}
	}
	return apiError{status: 413, typ: "invalid_request_error", code: "request_too_large", message: "Request too large."}
}

func errOverloaded(p Provider) apiError {
	if p == Anthropic {
		return apiError{status: 529, typ: "overloaded_error", message: "Overloaded"}
	}
	return apiError{status: 503, typ: "service_unavailable_error", code: "server_is_overloaded",
		message: "The requested model is temporarily overloaded."}
}

func errServer(p Provider) apiError {
	if p == Anthropic {
		return apiError{status: 500, typ: "api_error", message: "Internal server error"}
	}
	return apiError{status: 500, typ: "server_error",
		message: "The server had an error while processing your request. Sorry about that!"}
}

func errTimeout(p Provider) apiError {
	if p == Anthropic {
		return apiError{status: 504, typ: "timeout_error", message: "Request timed out"}
	}
	return apiError{status: 504, typ: "timeout", message: "Request timed out."}
}

// errQuota is Anthropic's spend-cap 429 (with details.error_code
// enforced_spend_limit_reached) or OpenAI's billing 429 (code, default
// insufficient_quota).
func errQuota(p Provider, code string) apiError {
	if p == Anthropic {
		return apiError{status: 429, typ: "rate_limit_error", code: "enforced_spend_limit_reached",
			message: "You have reached your API usage limits: your organization has crossed its monthly API usage threshold, set based on your organization's API tier. You will regain access on the first day of next month at 00:00 UTC."}
	}
	if code == "" {
		code = "insufficient_quota"
	}
	return apiError{status: 429, typ: "insufficient_quota", code: code,
		message: "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."}
}

// errSlowDown is OpenAI's ramp-rate 429 (code slow_down), or Anthropic's
// acceleration-limit 429.
func errSlowDown(p Provider) apiError {
	if p == Anthropic {
		return apiError{status: 429, typ: "rate_limit_error",
			message: "Your organization's usage increased too sharply (acceleration limit). Please ramp up your traffic gradually and try again later."}
	}
	return apiError{status: 429, typ: "rate_limit_error", code: "slow_down",
		message: "Your request rate increased too quickly. Please ramp up your traffic gradually and try again later."}
}

// errForcedRateLimit is a scripted 429 that does not come from the buckets.
func errForcedRateLimit(p Provider, model string) apiError {
	if p == Anthropic {
		return apiError{status: 429, typ: "rate_limit_error",
			message: "This request would exceed the rate limit for your organization. Please try again later."}
	}
	return apiError{status: 429, typ: "requests", code: "rate_limit_exceeded",
		message: "Rate limit reached for " + model + " in organization org-llmhttptest. Please try again later."}
}

// errLimited is the 429 of a request the buckets rejected, worded as the
// providers word it (llm-wire.md §5.6 A2, O2, O6). A request that can never
// fit (larger than the bucket) gets OpenAI's "Request too large … Limit X,
// Requested Y" wording from both dialects; Anthropic's own wording for that
// case is undocumented.
func errLimited(p Provider, model string, r *rejection) apiError {
	if p == Anthropic {
		what := map[dim]string{dimRequests: "requests", dimInput: "input tokens", dimOutput: "output tokens"}[r.dim]
		if r.never {
			return apiError{status: 429, typ: "rate_limit_error", message: fmt.Sprintf(
				"Request too large for %s: this request exceeds the rate limit for your organization (org-llmhttptest) of %d %s per minute: Limit %d, Requested %d. Please reduce the prompt length or the maximum tokens requested.",
				model, r.limit, what, r.limit, r.requested)}
		}
		return apiError{status: 429, typ: "rate_limit_error", message: fmt.Sprintf(
			"This request would exceed the rate limit for your organization (org-llmhttptest) of %d %s per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
			r.limit, what)}
	}
	typ, what := "tokens", "tokens per min (TPM)"
	if r.dim == dimRequests {
		typ, what = "requests", "requests per min (RPM)"
	}
	if r.never {
		return apiError{status: 429, typ: typ, code: "rate_limit_exceeded", message: fmt.Sprintf(
			"Request too large for %s in organization org-llmhttptest on %s: Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
			model, what, r.limit, r.requested)}
	}
	return apiError{status: 429, typ: typ, code: "rate_limit_exceeded", message: fmt.Sprintf(
		"Rate limit reached for %s in organization org-llmhttptest on %s: Limit %d, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
		model, what, r.limit, r.used, r.requested, durationReset(r.wait))}
}
