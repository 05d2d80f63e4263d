package llmhttp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clAnthropicReq and clOpenAIReq return requests as the two SDKs send them.
func clAnthropicReq() *http.Request {
	req := httptest.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages", nil)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("X-Api-Key", "sk-ant-test")
	return req
}

func clOpenAIReq(host string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "https://"+host+"/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer sk-test")
	return req
}

// clResp builds a response from a status, a header block ("name: value"
// lines) and a body.
func clResp(status int, header, body string, req *http.Request) *http.Response {
	h := http.Header{}
	for line := range strings.Lines(header) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	return &http.Response{
		StatusCode:    status,
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: -1,
		Request:       req,
	}
}

type clCase struct {
	name   string
	status int
	header string
	body   string
	req    *http.Request
	want   llmhttp.Class
}

func clRun(t *testing.T, cases []clCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := clResp(tc.status, tc.header, tc.body, tc.req)
			assert.Equal(t, tc.want, llmhttp.Classify(resp, nil), "Classify")
			// Classified again (cached), and the body is intact.
			assert.Equal(t, tc.want, llmhttp.Classify(resp, nil), "Classify again")
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.body, string(got), "body after Classify")
			require.NoError(t, resp.Body.Close())
		})
	}
}

// The fixtures of llm-wire §5.6, each with the class the spec expects.
const (
	clA1Header = `content-type: application/json
request-id: req_011CSLsW7mFqvHHnzrKdKjAE
anthropic-organization-id: 36562039-1ae4-48e6-ae28-1e517e3d2d12
anthropic-ratelimit-requests-limit: 1000
anthropic-ratelimit-requests-remaining: 999
anthropic-ratelimit-requests-reset: 2025-08-21T12:40:59Z
anthropic-ratelimit-input-tokens-limit: 80000
anthropic-ratelimit-input-tokens-remaining: 80000
anthropic-ratelimit-input-tokens-reset: 2025-08-21T12:40:59Z
anthropic-ratelimit-output-tokens-limit: 16000
anthropic-ratelimit-output-tokens-remaining: 16000
anthropic-ratelimit-output-tokens-reset: 2025-08-21T12:41:00Z
anthropic-ratelimit-tokens-limit: 96000
anthropic-ratelimit-tokens-remaining: 96000
anthropic-ratelimit-tokens-reset: 2025-08-21T12:40:59Z`
	clA2Header = `retry-after: 23
x-should-retry: true
request-id: req_011CSHoEeqs5C35K2UUqR7Fy
anthropic-ratelimit-requests-limit: 1000
anthropic-ratelimit-requests-remaining: 994
anthropic-ratelimit-input-tokens-limit: 450000
anthropic-ratelimit-input-tokens-remaining: 0
anthropic-ratelimit-input-tokens-reset: 2026-05-18T11:42:18Z
anthropic-ratelimit-output-tokens-remaining: 14000`
	clA2Body = `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization (…) of 450,000 input tokens per minute. …"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`
	clA3Body = `{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your API usage limits: your organization has crossed its monthly API usage threshold, set based on your organization's API tier. You will regain access on 2026-09-01 at 00:00 UTC.","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_018EeWyXxfu5pfWkrYcMdjWG"}`
	clA4Body = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_01…"}`
	clA5Body = "event: message_start\n" +
		`data: {"type":"message_start","message":{"id":"msg_01…","type":"message","role":"assistant","content":[],"model":"claude-…","usage":{"input_tokens":1000,"output_tokens":1}}}` +
		"\n\nevent: error\n" + `data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}` + "\n\n"
	clA6Body = `{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-10-01 at 00:00 UTC."},"request_id":"req_01…"}`
	clA7Body = "<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 Request Entity Too Large</h1></center><hr><center>cloudflare</center></body></html>"

	clO1Header = `x-request-id: req_deaa3616cbd15d33b4db96b3ba74d2b4
openai-processing-ms: 1032
x-ratelimit-limit-requests: 5000
x-ratelimit-limit-tokens: 160000
x-ratelimit-remaining-requests: 4999
x-ratelimit-remaining-tokens: 159976
x-ratelimit-reset-requests: 12ms
x-ratelimit-reset-tokens: 9ms`
	clO2Header = `retry-after: 4
x-ratelimit-remaining-tokens: 0
x-ratelimit-reset-tokens: 3.89s`
	clO2Body    = `{"error":{"message":"Rate limit reached for gpt-4.1 in organization org-… on tokens per min (TPM): Limit 30000, Used 28039, Requested 3906. Please try again in 3.89s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`
	clO3Body    = `{"error":{"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`
	clO3Variant = `{"error":{"message":"Billing problem.","type":"invalid_request_error","param":null,"code":"%s"}}`
	clO4Body    = `{"error":{"message":"…request rate increased too quickly…","type":"rate_limit_error","param":null,"code":"slow_down"}}`
	clO5Body    = `{"error":{"message":"The requested model is temporarily overloaded.","type":"service_unavailable_error","param":null,"code":"server_is_overloaded"}}`
	clO6Body    = `{"error":{"message":"Request too large for gpt-4o in organization org-… on tokens per min (TPM): Limit 30000, Requested 34307. The input or output tokens must be reduced in order to run successfully.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`

	clC1Header = `retry-after: 6
retry-after-ms: 6000
x-ratelimit-remaining-requests: 12
x-ratelimit-remaining-tokens: 0
apim-request-id: 7e1f1c2a`
	clC1Body   = `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds. Please contact Azure support service if you would like to further increase the default rate limit."}}`
	clC2Header = `retry-after: 2
x-ratelimit-limit-requests: 14400
x-ratelimit-remaining-requests: %s
x-ratelimit-reset-requests: 2m59.56s
x-ratelimit-limit-tokens: 18000
x-ratelimit-remaining-tokens: 0
x-ratelimit-reset-tokens: 7.66s`
	clC2Body   = "{\"error\":{\"message\":\"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` on tokens per minute (TPM): Limit 18000, Used 17990, Requested 400. Please try again in 1.3s.\",\"type\":\"tokens\",\"code\":\"rate_limit_exceeded\"}}"
	clC5Body   = `[{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}]`
	clC5Native = `{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"},{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_requests_per_model_per_day","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}`
	clC6Body   = `{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300","raw_status_code":429}`
)

func TestClassifyFixtures(t *testing.T) {
	ant, oai := clAnthropicReq, func() *http.Request { return clOpenAIReq("api.openai.com") }
	cases := []clCase{
		{"A1 200", 200, clA1Header, `{"id":"msg_01","type":"message"}`, ant(), llmhttp.ClassOK},
		{"A2 429 ITPM", 429, clA2Header, clA2Body, ant(), llmhttp.ClassRateLimited},
		{"A3 429 spend cap", 429, "request-id: req_018EeWyXxfu5pfWkrYcMdjWG", clA3Body, ant(), llmhttp.ClassQuota},
		{"A4 529", 529, "request-id: req_01", clA4Body, ant(), llmhttp.ClassOverloaded},
		{"A5 200 stream with error event", 200, "content-type: text/event-stream\nrequest-id: req_01", clA5Body, ant(), llmhttp.ClassOK},
		{"A6 400 specified limits", 400, "request-id: req_01", clA6Body, ant(), llmhttp.ClassQuota},
		{"A7 413 from Cloudflare", 413, "content-type: text/html", clA7Body, ant(), llmhttp.ClassTooLarge},

		{"O1 200", 200, clO1Header, `{"id":"chatcmpl-1","choices":[]}`, oai(), llmhttp.ClassOK},
		{"O2 429 TPM", 429, clO2Header, clO2Body, oai(), llmhttp.ClassRateLimited},
		{"O3 429 insufficient_quota", 429, "", clO3Body, oai(), llmhttp.ClassQuota},
		{"O3 credit_balance_exhausted", 429, "", fmt.Sprintf(clO3Variant, "credit_balance_exhausted"), oai(), llmhttp.ClassQuota},
		{"O3 organization_spend_limit_exceeded", 429, "", fmt.Sprintf(clO3Variant, "organization_spend_limit_exceeded"), oai(), llmhttp.ClassQuota},
		{"O3 project_spend_limit_exceeded", 429, "", fmt.Sprintf(clO3Variant, "project_spend_limit_exceeded"), oai(), llmhttp.ClassQuota},
		{"O3 organization_usage_limit_exceeded", 429, "", fmt.Sprintf(clO3Variant, "organization_usage_limit_exceeded"), oai(), llmhttp.ClassQuota},
		{"O4 429 slow_down", 429, "retry-after: 10", clO4Body, oai(), llmhttp.ClassSlowDown},
		{"O5 503 overloaded", 503, "retry-after: 2", clO5Body, oai(), llmhttp.ClassOverloaded},
		{"O6 429 request too large", 429, "", clO6Body, oai(), llmhttp.ClassTooLarge},

		{"C1 Azure 429", 429, clC1Header, clC1Body, clOpenAIReq("my.openai.azure.com"), llmhttp.ClassRateLimited},
		{"C1 Azure 429 unknown limits", 429, "x-ratelimit-limit-tokens: -1\nx-ratelimit-reset-tokens: 0\nx-ratelimit-remaining-requests: -1", clC1Body, clOpenAIReq("my.openai.azure.com"), llmhttp.ClassRateLimited},
		{"C2 Groq 429 per minute", 429, fmt.Sprintf(clC2Header, "14370"), clC2Body, clOpenAIReq("api.groq.com"), llmhttp.ClassRateLimited},
		{"C2 Groq 429 per day exhausted", 429, fmt.Sprintf(clC2Header, "0"), clC2Body, clOpenAIReq("api.groq.com"), llmhttp.ClassQuota},
		{"C3 OpenRouter 402", 402, "", `{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/credits"}}`, clOpenAIReq("openrouter.ai"), llmhttp.ClassQuota},
		{"C3 OpenRouter 429", 429, "Retry-After: 60\nX-RateLimit-Limit: 20\nX-RateLimit-Remaining: 0\nX-RateLimit-Reset: 1767225600000", `{"error":{"code":429,"message":"Rate limit exceeded"}}`, clOpenAIReq("openrouter.ai"), llmhttp.ClassRateLimited},
		{"C3 OpenRouter 200 error body (optional rule off)", 200, "", `{"error":{"code":502,"message":"Provider returned error","metadata":{}}}`, clOpenAIReq("openrouter.ai"), llmhttp.ClassOK},
		{"C4 DeepSeek 402", 402, "", `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`, clOpenAIReq("api.deepseek.com"), llmhttp.ClassQuota},
		{"C4 DeepSeek 503", 503, "", `{"error":{"message":"Server Overloaded","type":"unknown_error","param":null,"code":"server_error"}}`, clOpenAIReq("api.deepseek.com"), llmhttp.ClassOverloaded},
		{"C4 DeepSeek 503 no body", 503, "", "", clOpenAIReq("api.deepseek.com"), llmhttp.ClassOverloaded},
		{"C4 DeepSeek 200 blank lines", 200, "", "\n\n\n{\"id\":\"x\",\"choices\":[]}", clOpenAIReq("api.deepseek.com"), llmhttp.ClassOK},
		{"C5 Gemini array 429", 429, "", clC5Body, clOpenAIReq("generativelanguage.googleapis.com"), llmhttp.ClassRateLimited},
		{"C5 Gemini native per day", 429, "", clC5Native, clOpenAIReq("generativelanguage.googleapis.com"), llmhttp.ClassQuota},
		{"C6 Mistral 429", 429, "retry-after: 5", clC6Body, clOpenAIReq("api.mistral.ai"), llmhttp.ClassRateLimited},
	}
	clRun(t, cases)
}

// TestClassifyRows has at least one case per row of llm-wire §5.2 (rows 1
// and 2 are in TestClassifyErrors), plus the near misses that must fall
// through to a later row.
func TestClassifyRows(t *testing.T) {
	ant, oai := clAnthropicReq, func() *http.Request { return clOpenAIReq("api.openai.com") }
	antErr := func(typ, msg, extra string) string {
		return fmt.Sprintf(`{"type":"error","error":{"type":%q,"message":%q%s}}`, typ, msg, extra)
	}
	oaiErr := func(typ, code, msg string) string {
		return fmt.Sprintf(`{"error":{"message":%q,"type":%q,"param":null,"code":%q}}`, msg, typ, code)
	}
	spend := `,"details":{"error_code":"enforced_spend_limit_reached"}`
	cases := []clCase{
		{"row3 204", 204, "", "", ant(), llmhttp.ClassOK},
		{"row3 3xx is not a failure", 302, "Location: /x", "", oai(), llmhttp.ClassOK},
		{"row3 2xx error-looking body is not read", 200, "", clO3Body, oai(), llmhttp.ClassOK},

		{"row4 spend cap on any status", 400, "request-id: r", antErr("invalid_request_error", "x", spend), ant(), llmhttp.ClassQuota},
		{"row4 spend cap, Anthropic by headers only", 429, "anthropic-ratelimit-requests-limit: 5", `{"error":{"type":"rate_limit_error","message":"m"` + spend + `}}`, nil, llmhttp.ClassQuota},
		{"row4 spend cap, Anthropic by request only", 429, "", `{"error":{"type":"rate_limit_error","message":"m"` + spend + `}}`, ant(), llmhttp.ClassQuota},
		{"row4 not Anthropic: falls to row 12", 429, "x-request-id: r", `{"error":{"type":"rate_limit_error","message":"m"` + spend + `}}`, oai(), llmhttp.ClassRateLimited},

		{"row5 workspace limits", 400, "", antErr("invalid_request_error", "You have reached your specified workspace API usage limits. You will regain access on 2026-10-01 at 00:00 UTC.", ""), ant(), llmhttp.ClassQuota},
		{"row5 other 400 falls to row 19", 400, "", antErr("invalid_request_error", "max_tokens: field required", ""), ant(), llmhttp.ClassClient},
		{"row5 needs invalid_request_error", 400, "", antErr("api_error", "You have reached your specified API usage limits", ""), ant(), llmhttp.ClassClient},

		{"row6 402 Anthropic billing_error", 402, "request-id: r", antErr("billing_error", "Your credit balance is too low.", ""), ant(), llmhttp.ClassQuota},
		{"row6 402 no body", 402, "", "", oai(), llmhttp.ClassQuota},
		{"row6 OpenRouter 402 with Retry-After is a throttle", 402, "Retry-After: 3", `{"error":{"code":402,"message":"in-flight budget","metadata":{"limit_source":"openrouter_in_flight_budget"}}}`, clOpenAIReq("openrouter.ai"), llmhttp.ClassRateLimited},

		{"row7 429 billing code", 429, "", oaiErr("invalid_request_error", "billing_hard_limit_reached", "m"), oai(), llmhttp.ClassQuota},
		{"row7 429 billing type only", 429, "", `{"error":{"message":"m","type":"insufficient_quota","code":null}}`, oai(), llmhttp.ClassQuota},
		{"row7 403 billing code", 403, "", oaiErr("invalid_request_error", "organization_spend_limit_exceeded", "m"), oai(), llmhttp.ClassQuota},
		{"row7 403 without billing code is row 18", 403, "", oaiErr("invalid_request_error", "unsupported_country_region_territory", "m"), oai(), llmhttp.ClassAuth},
		{"row7 billing code on a 400 is not quota", 400, "", oaiErr("invalid_request_error", "insufficient_quota", "m"), oai(), llmhttp.ClassClient},

		{"row8 Groq RPD empty, bare-seconds reset", 429, "x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 3600", "", clOpenAIReq("api.groq.com"), llmhttp.ClassQuota},
		{"row8 OpenAI RPM empty is a throttle", 429, "x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 60s", oaiErr("requests", "rate_limit_exceeded", "Rate limit reached for gpt-4o on requests per min (RPM): Limit 500, Used 500, Requested 1."), oai(), llmhttp.ClassRateLimited},
		{"row8 OpenAI RPM empty, short reset", 429, "x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 120ms", "", oai(), llmhttp.ClassRateLimited},
		{"row8 empty without reset is a throttle", 429, "x-ratelimit-remaining-requests: 0", "", oai(), llmhttp.ClassRateLimited},
		{"row8 malformed reset is ignored", 429, "x-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: -5m", "", oai(), llmhttp.ClassRateLimited},
		{"row8 per day message", 429, "", oaiErr("requests", "rate_limit_exceeded", "Rate limit reached for model on requests per day (RPD): Limit 14400, Used 14400, Requested 1."), clOpenAIReq("api.groq.com"), llmhttp.ClassQuota},
		{"row8 Per Day message case", 429, "", oaiErr("tokens", "rate_limit_exceeded", "Tokens Per Day limit reached"), oai(), llmhttp.ClassQuota},
		{"row8 not on a 503", 503, "", oaiErr("server_error", "", "requests per day"), oai(), llmhttp.ClassServer},

		{"row9 413 any body", 413, "", `{"error":{"message":"Request too large","type":"invalid_request_error"}}`, oai(), llmhttp.ClassTooLarge},
		{"row9 413 with x-should-retry false (Groq)", 413, "x-should-retry: false", oaiErr("tokens", "rate_limit_exceeded", "Request too large for model on tokens per minute (TPM): Limit 6000, Requested 9000"), clOpenAIReq("api.groq.com"), llmhttp.ClassTooLarge},
		{"row9 per-day too large is too large", 429, "", oaiErr("tokens", "rate_limit_exceeded", "Request too large for gpt-4o on tokens per day (TPD): Limit 90000, Requested 120000."), oai(), llmhttp.ClassTooLarge},
		{"row9 requested not above limit is a throttle", 429, "", oaiErr("tokens", "rate_limit_exceeded", "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 3000."), oai(), llmhttp.ClassRateLimited},
		{"row9 second Limit pair counts", 429, "", oaiErr("tokens", "rate_limit_exceeded", "Request too large: Limit x, Requested y; Limit 10, Requested 11"), oai(), llmhttp.ClassTooLarge},
		{"row9 huge numbers do not overflow", 429, "", oaiErr("tokens", "rate_limit_exceeded", "Request too large: Limit 99999999999999999999999, Requested 999999999999999999999999999"), oai(), llmhttp.ClassRateLimited},

		{"row10 x-should-retry false keeps the class", 429, "x-should-retry: false\nretry-after: 1", oaiErr("tokens", "rate_limit_exceeded", "m"), oai(), llmhttp.ClassRateLimited},
		{"row11 slow_down", 429, "", oaiErr("rate_limit_error", "slow_down", "Your request rate increased too quickly."), oai(), llmhttp.ClassSlowDown},
		{"row12 plain 429", 429, "", "", oai(), llmhttp.ClassRateLimited},
		{"row12 non-JSON 429", 429, "", "Too Many Requests", oai(), llmhttp.ClassRateLimited},
		{"row12a Anthropic 429 without retry-after or details", 429, "request-id: r", antErr("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", ""), ant(), llmhttp.ClassRateLimited},
		{"row12 Anthropic-compat OpenAI shape", 429, "request-id: r", `{"error":{"code":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 20,000 input tokens per minute","type":"invalid_request_error"}}`, oai(), llmhttp.ClassRateLimited},

		{"row13 529 no body", 529, "", "", ant(), llmhttp.ClassOverloaded},
		{"row13 503 overloaded_error", 503, "", antErr("overloaded_error", "Overloaded", ""), ant(), llmhttp.ClassOverloaded},
		{"row13 503 engine overloaded message", 503, "", oaiErr("server_error", "", "The engine is currently overloaded, please try again later"), oai(), llmhttp.ClassOverloaded},
		{"row13 Gemini 503 UNAVAILABLE", 503, "", `{"error":{"code":503,"message":"The model is busy.","status":"UNAVAILABLE"}}`, clOpenAIReq("generativelanguage.googleapis.com"), llmhttp.ClassOverloaded},
		{"row13 OpenRouter 503", 503, "", `{"error":{"code":503,"message":"No allowed providers are available for the selected model."}}`, clOpenAIReq("openrouter.ai"), llmhttp.ClassOverloaded},
		{"row13 not a lookalike host", 503, "", "", clOpenAIReq("notopenrouter.ai"), llmhttp.ClassServer},

		{"row14 408", 408, "", "", oai(), llmhttp.ClassTimeout},
		{"row14 Anthropic 504 timeout_error", 504, "request-id: r", antErr("timeout_error", "Request timed out", ""), ant(), llmhttp.ClassTimeout},
		{"row14 504 from a gateway is row 15", 504, "", "<html>Gateway Timeout</html>", oai(), llmhttp.ClassServer},

		{"row15 500", 500, "", antErr("api_error", "Internal server error", ""), ant(), llmhttp.ClassServer},
		{"row15 502", 502, "", "", oai(), llmhttp.ClassServer},
		{"row15 503 other", 503, "retry-after: 1", oaiErr("service_unavailable_error", "", "Service Unavailable"), oai(), llmhttp.ClassServer},
		{"row15 522", 522, "", "", oai(), llmhttp.ClassServer},
		{"row15 599", 599, "", "", oai(), llmhttp.ClassServer},

		{"row16 409", 409, "", antErr("conflict_error", "conflict", ""), ant(), llmhttp.ClassClient},
		{"row17 x-should-retry true on a 4xx stays Client", 400, "x-should-retry: true", "", oai(), llmhttp.ClassClient},
		{"row18 401", 401, "", antErr("authentication_error", "invalid x-api-key", ""), ant(), llmhttp.ClassAuth},
		{"row18 403", 403, "", antErr("permission_error", "forbidden", ""), ant(), llmhttp.ClassAuth},
		{"row19 404", 404, "", antErr("not_found_error", "model: x", ""), ant(), llmhttp.ClassClient},
		{"row19 422", 422, "", "", oai(), llmhttp.ClassClient},

		{"no request, no headers", 429, "", "", nil, llmhttp.ClassRateLimited},
		{"status below 100", 42, "", "x", nil, llmhttp.ClassServer},
		{"numeric-string and object codes", 429, "", `{"error":{"code":{"x":1},"type":["insufficient_quota"],"message":7}}`, oai(), llmhttp.ClassRateLimited},
		{"error as a string", 429, "", `{"error":"insufficient_quota"}`, oai(), llmhttp.ClassRateLimited},
		{"truncated JSON is status only", 429, "", clO3Body[:len(clO3Body)-3], oai(), llmhttp.ClassRateLimited},
		{"empty array", 429, "", `[]`, oai(), llmhttp.ClassRateLimited},
		{"array of one quota error", 429, "", `[` + clO3Body + `]`, oai(), llmhttp.ClassQuota},
	}
	clRun(t, cases)
}

// clTimeoutErr is a net.Error that timed out, like a dial or read deadline.
type clTimeoutErr struct{}

func (clTimeoutErr) Error() string   { return "i/o timeout" }
func (clTimeoutErr) Timeout() bool   { return true }
func (clTimeoutErr) Temporary() bool { return true }

// clIsDeadline is a timeout that says it Is context.DeadlineExceeded, as
// net/http's response-header timeout and net's i/o timeout do.
type clIsDeadline struct{}

func (clIsDeadline) Error() string        { return "net/http: timeout awaiting response headers" }
func (clIsDeadline) Timeout() bool        { return true }
func (clIsDeadline) Is(target error) bool { return target == context.DeadlineExceeded }

// clDialErr returns the error of a real dial under a canceled context.
func clDialErr(t *testing.T) error {
	ctx, stop := context.WithCancel(t.Context())
	stop()
	_, err := (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:1")
	require.Error(t, err)
	return err
}

func TestClassifyErrors(t *testing.T) {
	ue := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://api.anthropic.com/v1/messages", Err: err}
	}
	cases := []struct {
		name string
		err  error
		want llmhttp.Class
	}{
		{"canceled", context.Canceled, llmhttp.ClassCanceled},
		{"deadline", context.DeadlineExceeded, llmhttp.ClassCanceled},
		{"canceled in url.Error", ue(context.Canceled), llmhttp.ClassCanceled},
		{"deadline wrapped twice", ue(fmt.Errorf("attempt 2: %w", context.DeadlineExceeded)), llmhttp.ClassCanceled},
		{"refusal", &llmhttp.Refusal{Reason: llmhttp.ReasonShed}, llmhttp.ClassLocal},
		{"refusal in url.Error", ue(&llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen}), llmhttp.ClassLocal},
		{"unexpected EOF", ue(io.ErrUnexpectedEOF), llmhttp.ClassNetwork},
		{"EOF", io.EOF, llmhttp.ClassNetwork},
		{"reset", ue(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), llmhttp.ClassNetwork},
		{"dial refused", ue(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), llmhttp.ClassNetwork},
		{"dns", ue(&net.DNSError{Err: "no such host", Name: "api.example.test", IsNotFound: true}), llmhttp.ClassNetwork},
		{"tls", ue(&tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), llmhttp.ClassNetwork},
		{"net timeout", ue(clTimeoutErr{}), llmhttp.ClassNetwork},
		{"deadline in errors.Join", errors.Join(io.ErrUnexpectedEOF, context.DeadlineExceeded), llmhttp.ClassCanceled},
		{"canceled dial (net's canceledError)", ue(clDialErr(t)), llmhttp.ClassCanceled},
		{"transport timeout that Is DeadlineExceeded", ue(clIsDeadline{}), llmhttp.ClassNetwork},
		{"os deadline", ue(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), llmhttp.ClassNetwork},
		{"other", errors.New("http2: server sent GOAWAY and closed the connection"), llmhttp.ClassNetwork},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, llmhttp.Classify(nil, tc.err))
			// An error wins over a response returned with it.
			resp := clResp(200, "", "", nil)
			assert.Equal(t, tc.want, llmhttp.Classify(resp, tc.err))
		})
	}
	assert.Equal(t, llmhttp.ClassNetwork, llmhttp.Classify(nil, nil), "no response and no error")
}

// TestClassifyRealTransportErrors classifies the errors a real
// http.Transport returns, through a real http.Client.
func TestClassifyRealTransportErrors(t *testing.T) {
	var seen atomic.Value
	record := func(base http.RoundTripper) *http.Client {
		return &http.Client{Transport: llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := base.RoundTrip(req)
			seen.Store(llmhttp.Classify(resp, err))
			return resp, err
		})}
	}

	t.Run("response header timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		defer srv.Close()
		defer close(release)
		tr := &http.Transport{ResponseHeaderTimeout: time.Millisecond}
		defer tr.CloseIdleConnections()
		_, err := record(tr).Get(srv.URL)
		require.Error(t, err)
		assert.Equal(t, llmhttp.ClassNetwork, seen.Load())
	})
	t.Run("connection closed mid-response", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Le"))
				conn.Close()
			}
		}))
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		_, err := record(tr).Get(srv.URL)
		require.Error(t, err)
		assert.Equal(t, llmhttp.ClassNetwork, seen.Load())
	})
	t.Run("dial refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		_, err = record(tr).Get("http://" + addr)
		require.Error(t, err)
		assert.Equal(t, llmhttp.ClassNetwork, seen.Load())
	})
	t.Run("caller cancels", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithCancel(t.Context())
		c := record(tr)
		// Cancel once the request has reached the server.
		c.Transport = llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			go func() {
				// The handler blocks until release; cancel now that
				// RoundTrip is running. Order does not matter: a request
				// canceled before it is sent fails with the same error.
				cancel()
			}()
			resp, err := tr.RoundTrip(req)
			seen.Store(llmhttp.Classify(resp, err))
			return resp, err
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		_, err := c.Do(req)
		require.Error(t, err)
		assert.Equal(t, llmhttp.ClassCanceled, seen.Load())
	})
}

// TestClassifyContextEnded checks row 1 on a response: the caller's context
// has ended, whatever the status.
func TestClassifyContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, status := range []int{200, 429, 503} {
		req := clOpenAIReq("api.openai.com").WithContext(ctx)
		resp := clResp(status, "", clO3Body, req)
		assert.Equal(t, llmhttp.ClassCanceled, llmhttp.Classify(resp, nil), "status %d", status)
		got, _ := io.ReadAll(resp.Body)
		assert.Equal(t, clO3Body, string(got))
	}
}

// clBody is an original response body that counts reads and closes, can end
// in an error instead of io.EOF, and hands out at most chunk bytes a read.
type clBody struct {
	r      io.Reader
	reads  atomic.Int32
	closes atomic.Int32
}

func (b *clBody) Read(p []byte) (int, error) { b.reads.Add(1); return b.r.Read(p) }
func (b *clBody) Close() error               { b.closes.Add(1); return nil }

var errClBody = errors.New("test: connection reset mid-body")

func newClBody(data []byte, chunk int, failAfter int) *clBody {
	var r io.Reader = bytes.NewReader(data)
	if failAfter >= 0 {
		r = io.MultiReader(bytes.NewReader(data[:failAfter]), iotest.ErrReader(errClBody))
	}
	if chunk > 0 {
		r = &clChunkReader{r: r, n: chunk}
	}
	return &clBody{r: r}
}

type clChunkReader struct {
	r io.Reader
	n int
}

func (c *clChunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// clReadAll reads r to the end, in reads of odd sizes.
func clReadAll(r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 7777)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestClassifyKeepsBody checks that an error body reads the same, to the
// byte and to the error, after Classify; that Classify reads at most 64 KiB;
// and that Close reaches the original body once.
func TestClassifyKeepsBody(t *testing.T) {
	big := func(n int) []byte {
		// A JSON quota error padded to n bytes: only the first 64 KiB are
		// peeked, so it must be classified by its status alone.
		b := []byte(`{"error":{"code":"insufficient_quota","message":"`)
		for len(b) < n-3 {
			b = append(b, "abcdefghijklmnopqrstuvwxyz"[len(b)%26])
		}
		return append(b, `"}}`...)
	}
	cases := []struct {
		name      string
		data      []byte
		chunk     int
		failAfter int // -1: no error
		cl        int64
		want      llmhttp.Class
	}{
		{"small", []byte(clO3Body), 0, -1, -1, llmhttp.ClassQuota},
		{"small, content length", []byte(clO3Body), 0, -1, int64(len(clO3Body)), llmhttp.ClassQuota},
		{"small, one byte a read", []byte(clO3Body), 1, -1, -1, llmhttp.ClassQuota},
		{"small, lying content length", []byte(clO3Body), 0, -1, 10, llmhttp.ClassRateLimited},
		{"exactly 64 KiB", big(64 << 10), 0, -1, -1, llmhttp.ClassQuota},
		{"64 KiB + 1", big(64<<10 + 1), 0, -1, -1, llmhttp.ClassRateLimited},
		{"1 MiB", big(1 << 20), 1000, -1, -1, llmhttp.ClassRateLimited},
		{"error before the end of the peek", []byte(clO3Body), 3, 40, -1, llmhttp.ClassRateLimited},
		{"error right after a whole JSON body", []byte(clO3Body), 0, len(clO3Body), -1, llmhttp.ClassQuota},
		{"error after the peek", big(200 << 10), 0, 100 << 10, -1, llmhttp.ClassRateLimited},
		{"error at once", []byte(clO3Body), 0, 0, -1, llmhttp.ClassRateLimited},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := newClBody(tc.data, tc.chunk, tc.failAfter)
			resp := clResp(429, "", "", clOpenAIReq("api.openai.com"))
			resp.Body, resp.ContentLength = orig, tc.cl
			assert.Equal(t, tc.want, llmhttp.Classify(resp, nil))

			reads := orig.reads.Load()
			assert.Equal(t, tc.want, llmhttp.Classify(resp, nil), "Classify again")
			assert.Equal(t, reads, orig.reads.Load(), "the second Classify read the body")

			want := tc.data
			if tc.failAfter >= 0 {
				want = tc.data[:tc.failAfter]
			}
			got, err := clReadAll(resp.Body)
			if tc.failAfter >= 0 {
				assert.ErrorIs(t, err, errClBody, "the read error is delivered after the bytes")
				_, err = resp.Body.Read(make([]byte, 1))
				assert.ErrorIs(t, err, errClBody, "and again")
			} else {
				assert.NoError(t, err)
			}
			assert.True(t, bytes.Equal(want, got), "body differs: got %d bytes, want %d", len(got), len(want))

			assert.Zero(t, orig.closes.Load())
			require.NoError(t, resp.Body.Close())
			require.NoError(t, resp.Body.Close())
			assert.EqualValues(t, 1, orig.closes.Load(), "original closed once")
			_, err = resp.Body.Read(make([]byte, 1))
			assert.ErrorIs(t, err, http.ErrBodyReadAfterClose)
		})
	}
}

// TestClassifyReadsAtMost64KiB checks that a body larger than 64 KiB is
// peeked only so far: Classify returns while the rest has not even been
// sent, and the caller then reads the whole body.
func TestClassifyReadsAtMost64KiB(t *testing.T) {
	pr, pw := io.Pipe()
	data := bytes.Repeat([]byte("x"), 64<<10+100)
	go func() {
		pw.Write(data[:64<<10])
		pw.Write(data[64<<10:]) // blocks until the caller reads it
		pw.Close()
	}()
	resp := clResp(503, "", "", nil)
	resp.Body = pr
	assert.Equal(t, llmhttp.ClassServer, llmhttp.Classify(resp, nil))
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got))
	resp.Body.Close()
}

// TestClassifyStopsAtContentLength checks that a server stalling after the
// last byte of a body with a Content-Length does not stall Classify.
func TestClassifyStopsAtContentLength(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(clO3Body))
		pw.Write([]byte("never read by Classify"))
		pw.Close()
	}()
	resp := clResp(429, "", "", nil)
	resp.Body, resp.ContentLength = pr, int64(len(clO3Body))
	assert.Equal(t, llmhttp.ClassQuota, llmhttp.Classify(resp, nil))
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, clO3Body+"never read by Classify", string(got))
	resp.Body.Close()
}

// TestClassifyOKBodyUntouched checks that Classify neither reads nor replaces
// the body of a response below 400.
func TestClassifyOKBodyUntouched(t *testing.T) {
	for _, status := range []int{200, 201, 204, 301, 304} {
		orig := newClBody([]byte(clO3Body), 0, -1)
		resp := clResp(status, "", "", clOpenAIReq("api.openai.com"))
		resp.Body = orig
		assert.Equal(t, llmhttp.ClassOK, llmhttp.Classify(resp, nil))
		assert.Same(t, orig, resp.Body)
		assert.Zero(t, orig.reads.Load())
	}
}

// TestClassifyNoBody checks error responses without a body: nil,
// http.NoBody or a zero Content-Length are classified by status, untouched.
func TestClassifyNoBody(t *testing.T) {
	resp := clResp(429, "", "", nil)
	resp.Body = nil
	assert.Equal(t, llmhttp.ClassRateLimited, llmhttp.Classify(resp, nil))
	assert.Nil(t, resp.Body)

	resp.Body = http.NoBody
	assert.Equal(t, llmhttp.ClassRateLimited, llmhttp.Classify(resp, nil))
	assert.Equal(t, http.NoBody, resp.Body)

	orig := newClBody(nil, 0, -1)
	resp.Body, resp.ContentLength = orig, 0
	assert.Equal(t, llmhttp.ClassRateLimited, llmhttp.Classify(resp, nil))
	assert.Same(t, orig, resp.Body)
}

// TestClassifyCacheFollowsStatus checks that the cache keeps the decoded body,
// not the class: a layer that changes the status between two calls gets the
// class of the new status, without the body being read again.
func TestClassifyCacheFollowsStatus(t *testing.T) {
	orig := newClBody([]byte(clA4Body), 0, -1)
	resp := clResp(500, "", "", clAnthropicReq())
	resp.Body = orig
	assert.Equal(t, llmhttp.ClassServer, llmhttp.Classify(resp, nil))
	reads := orig.reads.Load()
	resp.StatusCode = 503
	assert.Equal(t, llmhttp.ClassOverloaded, llmhttp.Classify(resp, nil))
	assert.Equal(t, reads, orig.reads.Load())
	// A copy of the response shares the body, and so the cache.
	cp := *resp
	cp.StatusCode = 529
	assert.Equal(t, llmhttp.ClassOverloaded, llmhttp.Classify(&cp, nil))
	assert.Equal(t, reads, orig.reads.Load())
}

func TestClassString(t *testing.T) {
	want := map[llmhttp.Class]string{
		llmhttp.ClassOK: "ok", llmhttp.ClassRateLimited: "rate_limited", llmhttp.ClassSlowDown: "slow_down",
		llmhttp.ClassQuota: "quota", llmhttp.ClassOverloaded: "overloaded", llmhttp.ClassServer: "server",
		llmhttp.ClassTimeout: "timeout", llmhttp.ClassNetwork: "network", llmhttp.ClassTooLarge: "too_large",
		llmhttp.ClassAuth: "auth", llmhttp.ClassClient: "client", llmhttp.ClassCanceled: "canceled",
		llmhttp.ClassLocal: "local", llmhttp.Class(-1): "unknown", llmhttp.ClassLocal + 1: "unknown",
	}
	for c, s := range want {
		assert.Equal(t, s, c.String())
	}
}

// clResettable is a reusable body, so the benchmarks measure Classify only.
type clResettable struct{ bytes.Reader }

func (*clResettable) Close() error { return nil }

func BenchmarkClassify(b *testing.B) {
	b.Run("baseline-status-switch", func(b *testing.B) {
		// What any classifier costs at least: look at the status.
		resp := clResp(200, clO1Header, "", clOpenAIReq("api.openai.com"))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if resp.StatusCode < 400 {
				n++
			}
		}
		_ = n
	})
	b.Run("ok", func(b *testing.B) {
		resp := clResp(200, clO1Header, `{"id":"x"}`, clOpenAIReq("api.openai.com"))
		b.ReportAllocs()
		for b.Loop() {
			if llmhttp.Classify(resp, nil) != llmhttp.ClassOK {
				b.Fatal("not OK")
			}
		}
	})
	b.Run("429-status-only", func(b *testing.B) {
		resp := clResp(429, clO2Header, "", clOpenAIReq("api.openai.com"))
		resp.Body = http.NoBody
		b.ReportAllocs()
		for b.Loop() {
			if llmhttp.Classify(resp, nil) != llmhttp.ClassRateLimited {
				b.Fatal("wrong class")
			}
		}
	})
	for _, bc := range []struct {
		name string
		body string
		want llmhttp.Class
	}{
		{"429-body", clO2Body, llmhttp.ClassRateLimited},
		{"429-quota-body", clA3Body, llmhttp.ClassQuota},
	} {
		b.Run(bc.name, func(b *testing.B) {
			resp := clResp(429, clO2Header, "", clOpenAIReq("api.openai.com"))
			body := &clResettable{}
			data := []byte(bc.body)
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(data)
				resp.Body = body
				if llmhttp.Classify(resp, nil) != bc.want {
					b.Fatal("wrong class")
				}
			}
		})
	}
	b.Run("429-cached", func(b *testing.B) {
		resp := clResp(429, clO2Header, clO2Body, clOpenAIReq("api.openai.com"))
		llmhttp.Classify(resp, nil)
		b.ReportAllocs()
		for b.Loop() {
			if llmhttp.Classify(resp, nil) != llmhttp.ClassRateLimited {
				b.Fatal("wrong class")
			}
		}
	})
}

// FuzzClassify classifies random responses: status, header block, body, the
// size of the body's reads, where the body fails (if it does), the
// Content-Length and the request's dialect. Classify must not panic, must
// give the same class twice, and must leave the body readable to the end,
// byte-identical and ending in the same error, with Close reaching the
// original once.
func FuzzClassify(f *testing.F) {
	seeds := []struct {
		status int
		header string
		body   string
	}{
		{200, clA1Header, `{"id":"msg"}`},
		{429, clA2Header, clA2Body},
		{429, "request-id: r", clA3Body},
		{529, "", clA4Body},
		{400, "request-id: r", clA6Body},
		{413, "", clA7Body},
		{429, clO2Header, clO2Body},
		{429, "", clO3Body},
		{429, "retry-after: 10", clO4Body},
		{503, "retry-after: 2", clO5Body},
		{429, "", clO6Body},
		{429, clC1Header, clC1Body},
		{429, fmt.Sprintf(clC2Header, "0"), clC2Body},
		{402, "", `{"error":{"code":402,"message":"Insufficient credits."}}`},
		{429, "", clC5Body},
		{429, "", clC5Native},
		{429, "retry-after: 5", clC6Body},
		{504, "", `{"type":"error","error":{"type":"timeout_error","message":"t"}}`},
		{429, "", `{"error":"x","type":5,"code":[1],"message":{}}`},
		{429, "", `[{"error":{"details":null}},1,"x"]`},
		{503, "", `{"error":{"message":"\u006fverloaded \"quoted\"","code":-1.5e3}}`},
		{-1, "Llmhttp-Refusal: shed", ""},
	}
	for i, s := range seeds {
		f.Add(s.status, s.header, []byte(s.body), uint16(i*37), int32(-1), int64(-1), i%2 == 0)
	}
	f.Add(429, "", []byte(clO3Body), uint16(1), int32(20), int64(len(clO3Body)), false)
	f.Fuzz(func(t *testing.T, status int, header string, body []byte, chunk uint16, failAt int32, cl int64, anthropic bool) {
		req := clOpenAIReq("api.openai.com")
		if anthropic {
			req = clAnthropicReq()
		}
		resp := clResp(status, header, "", req)
		failAfter := -1
		if failAt >= 0 {
			failAfter = min(int(failAt), len(body))
		}
		orig := newClBody(body, int(chunk), failAfter)
		resp.Body, resp.ContentLength = orig, cl

		c1 := llmhttp.Classify(resp, nil)
		c2 := llmhttp.Classify(resp, nil)
		if c1 != c2 {
			t.Fatalf("Classify = %v, then %v", c1, c2)
		}
		if c1.String() == "unknown" {
			t.Fatalf("Classify = %d, not a class", c1)
		}
		want := body
		if failAfter >= 0 {
			want = body[:failAfter]
		}
		got, err := clReadAll(resp.Body)
		if !bytes.Equal(got, want) {
			t.Fatalf("body after Classify: %d bytes %q…, want %d bytes", len(got), got[:min(len(got), 40)], len(want))
		}
		if failAfter >= 0 && !errors.Is(err, errClBody) {
			t.Fatalf("read error = %v, want %v", err, errClBody)
		}
		if failAfter < 0 && err != nil {
			t.Fatalf("read error = %v, want none", err)
		}
		resp.Body.Close()
		if resp.Body != io.ReadCloser(orig) {
			resp.Body.Close() // Classify's body closes the original once
		}
		if n := orig.closes.Load(); n != 1 {
			t.Fatalf("original closed %d times", n)
		}
	})
}
