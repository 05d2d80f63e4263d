package llmhttp_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/llmhttp/llmhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rfReasons are every refusal reason with its sentinel, status and the error
// types of its body.
var rfReasons = []struct {
	reason        string
	sentinel      error
	status        int
	anthropicType string
	openaiType    string
	code          string
}{
	{llmhttp.ReasonCircuitOpen, llmhttp.ErrCircuitOpen, 503, "overloaded_error", "service_unavailable_error", "circuit_open"},
	{llmhttp.ReasonWaitTooLong, llmhttp.ErrWaitTooLong, 429, "rate_limit_error", "rate_limit_error", "wait_too_long"},
	{llmhttp.ReasonQuota, llmhttp.ErrQuotaExhausted, 429, "rate_limit_error", "insufficient_quota", "quota_exhausted"},
	{llmhttp.ReasonBudgetExhausted, llmhttp.ErrBudgetExhausted, 429, "rate_limit_error", "insufficient_quota", "budget_exhausted"},
	{llmhttp.ReasonShed, llmhttp.ErrShed, 429, "rate_limit_error", "rate_limit_error", "shed"},
	{llmhttp.ReasonTooLarge, llmhttp.ErrTooLarge, 413, "request_too_large", "invalid_request_error", "too_large"},
}

func TestRefusalError(t *testing.T) {
	r := &llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen, Message: "circuit for api.anthropic.com claude-x is open", RetryAfter: time.Second}
	assert.Equal(t, "llmhttp: circuit-open: circuit for api.anthropic.com claude-x is open", r.Error())
	assert.Equal(t, "llmhttp: shed", (&llmhttp.Refusal{Reason: llmhttp.ReasonShed}).Error())
	assert.Equal(t, "llmhttp: refused", (&llmhttp.Refusal{}).Error())
	var nilRefusal *llmhttp.Refusal
	assert.NotPanics(t, func() { _ = nilRefusal.Error(); _ = nilRefusal.Unwrap() })

	for _, rc := range rfReasons {
		r := &llmhttp.Refusal{Reason: rc.reason}
		assert.Same(t, rc.sentinel, r.Unwrap(), rc.reason)
		assert.ErrorIs(t, r, rc.sentinel)
		for _, other := range rfReasons {
			if other.reason != rc.reason {
				assert.NotErrorIs(t, r, other.sentinel)
			}
		}
	}
	assert.Nil(t, (&llmhttp.Refusal{Reason: "made-up"}).Unwrap())
}

// TestRefusalErrorHasNoSecrets checks that a refusal made for a request with
// credentials says nothing about them.
func TestRefusalErrorHasNoSecrets(t *testing.T) {
	req := clAnthropicReq()
	r := &llmhttp.Refusal{Reason: llmhttp.ReasonWaitTooLong, Message: "predicted wait 40s exceeds the deadline", RetryAfter: 40 * time.Second}
	resp := r.Response(req)
	body, _ := io.ReadAll(resp.Body)
	for _, s := range []string{r.Error(), string(body), strings.Join(headerValues(resp.Header), " ")} {
		assert.NotContains(t, s, "sk-ant-test")
	}
}

func headerValues(h http.Header) []string {
	var out []string
	for k, vs := range h {
		out = append(out, k)
		out = append(out, vs...)
	}
	return out
}

// rfTrackedBody is a request body that records reads and closes.
type rfTrackedBody struct{ read, closed bool }

func (b *rfTrackedBody) Read(p []byte) (int, error) { b.read = true; return 0, io.EOF }
func (b *rfTrackedBody) Close() error               { b.closed = true; return nil }

func TestRefusalResponse(t *testing.T) {
	for _, rc := range rfReasons {
		for _, provider := range []string{"anthropic", "openai", "nil request"} {
			t.Run(rc.reason+"/"+provider, func(t *testing.T) {
				var req *http.Request
				reqBody := &rfTrackedBody{}
				switch provider {
				case "anthropic":
					req = clAnthropicReq()
					req.Body = reqBody
				case "openai":
					req = clOpenAIReq("api.openai.com")
					req.Body = reqBody
				}
				r := &llmhttp.Refusal{Reason: rc.reason, Message: "because", RetryAfter: 1500 * time.Millisecond}
				resp := r.Response(req)

				assert.Equal(t, rc.status, resp.StatusCode)
				assert.Equal(t, http.StatusText(rc.status), strings.TrimPrefix(resp.Status, resp.Status[:4]))
				assert.Equal(t, "HTTP/1.1", resp.Proto)
				assert.Equal(t, 1, resp.ProtoMajor)
				assert.Equal(t, 1, resp.ProtoMinor)
				assert.Same(t, req, resp.Request)
				assert.Equal(t, "false", resp.Header.Get("X-Should-Retry"))
				assert.Equal(t, rc.reason, resp.Header.Get("Llmhttp-Refusal"))
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				assert.Equal(t, "2", resp.Header.Get("Retry-After"), "whole seconds, rounded up")
				assert.Equal(t, "1500", resp.Header.Get("Retry-After-Ms"))
				require.NotNil(t, resp.Body)
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				require.NoError(t, resp.Body.Close())
				assert.EqualValues(t, len(body), resp.ContentLength)
				assert.False(t, reqBody.read, "the request body was read")
				assert.False(t, reqBody.closed, "the request body was closed")

				var got struct {
					Type  *string `json:"type"`
					Error struct {
						Type    string  `json:"type"`
						Message string  `json:"message"`
						Code    *string `json:"code"`
						Param   any     `json:"param"`
					} `json:"error"`
				}
				require.NoError(t, json.Unmarshal(body, &got), "%s", body)
				assert.Equal(t, r.Error(), got.Error.Message)
				if provider == "anthropic" {
					require.NotNil(t, got.Type)
					assert.Equal(t, "error", *got.Type)
					assert.Equal(t, rc.anthropicType, got.Error.Type)
					assert.Nil(t, got.Error.Code)
				} else {
					assert.Nil(t, got.Type)
					assert.Equal(t, rc.openaiType, got.Error.Type)
					require.NotNil(t, got.Error.Code)
					assert.Equal(t, rc.code, *got.Error.Code)
					assert.Contains(t, string(body), `"param":null`)
				}
			})
		}
	}
}

func TestRefusalResponseRetryAfter(t *testing.T) {
	cases := []struct {
		d        time.Duration
		secs, ms string
	}{
		{0, "", ""},
		{-time.Second, "", ""},
		{time.Nanosecond, "1", "1"},
		{time.Second, "1", "1000"},
		{time.Second + time.Microsecond, "2", "1001"},
		{30 * 24 * time.Hour, "2592000", "2592000000"},
		{time.Duration(1<<63 - 1), "9223372037", "9223372036855"},
	}
	for _, tc := range cases {
		resp := (&llmhttp.Refusal{Reason: llmhttp.ReasonQuota, RetryAfter: tc.d}).Response(clOpenAIReq("api.openai.com"))
		assert.Equal(t, tc.secs, resp.Header.Get("Retry-After"), "%v", tc.d)
		assert.Equal(t, tc.ms, resp.Header.Get("Retry-After-Ms"), "%v", tc.d)
		if tc.secs == "" {
			assert.NotContains(t, resp.Header, "Retry-After")
		}
	}
}

// rfWrapped is a body a layer above has put around the local reply's body.
type rfWrapped struct{ io.ReadCloser }

func TestRefusalOf(t *testing.T) {
	r := &llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen, Message: "open", RetryAfter: 2500 * time.Millisecond}

	t.Run("local reply", func(t *testing.T) {
		resp := r.Response(clAnthropicReq())
		got, ok := llmhttp.RefusalOf(resp)
		require.True(t, ok)
		assert.Equal(t, *r, *got)
		assert.NotSame(t, r, got, "RefusalOf returns a copy")
		got.Message = "changed"
		again, _ := llmhttp.RefusalOf(resp)
		assert.Equal(t, "open", again.Message)
		assert.Equal(t, llmhttp.ClassLocal, llmhttp.Classify(resp, nil))
	})
	t.Run("wrapped body", func(t *testing.T) {
		resp := r.Response(clOpenAIReq("api.openai.com"))
		resp.Body = rfWrapped{resp.Body}
		got, ok := llmhttp.RefusalOf(resp)
		require.True(t, ok)
		assert.Equal(t, llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen, RetryAfter: 2500 * time.Millisecond}, *got)
		assert.ErrorIs(t, got, llmhttp.ErrCircuitOpen)
		assert.Equal(t, llmhttp.ClassLocal, llmhttp.Classify(resp, nil))
		body, _ := io.ReadAll(resp.Body)
		assert.Contains(t, string(body), "circuit_open", "the body was not read by RefusalOf or Classify")
	})
	t.Run("headers only", func(t *testing.T) {
		cases := []struct {
			header string
			want   *llmhttp.Refusal
		}{
			{"Llmhttp-Refusal: shed\nRetry-After: 7", &llmhttp.Refusal{Reason: "shed", RetryAfter: 7 * time.Second}},
			{"Llmhttp-Refusal: shed\nRetry-After-Ms: 12.5\nRetry-After: 7", &llmhttp.Refusal{Reason: "shed", RetryAfter: 12500 * time.Microsecond}},
			{"Llmhttp-Refusal: shed\nRetry-After-Ms: nope\nRetry-After: 7", &llmhttp.Refusal{Reason: "shed", RetryAfter: 7 * time.Second}},
			{"Llmhttp-Refusal: shed\nRetry-After: -7", &llmhttp.Refusal{Reason: "shed"}},
			{"Llmhttp-Refusal: shed\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT", &llmhttp.Refusal{Reason: "shed"}},
			{"Llmhttp-Refusal: shed\nRetry-After: 99999999999999999999", &llmhttp.Refusal{Reason: "shed"}},
			{"Llmhttp-Refusal: shed\nRetry-After-Ms: 1e300", &llmhttp.Refusal{Reason: "shed"}},
			{"Llmhttp-Refusal: shed\nRetry-After-Ms: NaN", &llmhttp.Refusal{Reason: "shed"}},
			{"Llmhttp-Refusal: future-reason", &llmhttp.Refusal{Reason: "future-reason"}},
			{"Llmhttp-Refusal: Not A Reason", nil},
			{"Llmhttp-Refusal: " + strings.Repeat("a", 65), nil},
			{"Llmhttp-Refusal:", nil},
			{"Retry-After: 7", nil},
		}
		for _, tc := range cases {
			resp := clResp(429, tc.header, "{}", nil)
			got, ok := llmhttp.RefusalOf(resp)
			if tc.want == nil {
				assert.False(t, ok, tc.header)
				assert.Nil(t, got)
				continue
			}
			require.True(t, ok, tc.header)
			assert.Equal(t, *tc.want, *got, tc.header)
		}
	})
	t.Run("not a refusal", func(t *testing.T) {
		got, ok := llmhttp.RefusalOf(nil)
		assert.False(t, ok)
		assert.Nil(t, got)
		_, ok = llmhttp.RefusalOf(clResp(429, "retry-after: 3", clO2Body, nil))
		assert.False(t, ok)
	})
}

// TestRefusalThroughHTTPClient returns a Refusal as a RoundTrip error from
// a real http.Client: errors.Is/As see it through the *url.Error, and
// Classify calls it Local.
func TestRefusalThroughHTTPClient(t *testing.T) {
	for _, rc := range rfReasons {
		t.Run(rc.reason, func(t *testing.T) {
			c := &http.Client{Transport: llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.Body != nil {
					req.Body.Close()
				}
				return nil, &llmhttp.Refusal{Reason: rc.reason, Message: "no", RetryAfter: time.Second}
			})}
			resp, err := c.Post("https://api.openai.com/v1/chat/completions", "application/json", strings.NewReader(`{}`))
			require.Error(t, err)
			assert.Nil(t, resp)
			var ue *url.Error
			require.ErrorAs(t, err, &ue)
			assert.ErrorIs(t, err, rc.sentinel)
			var r *llmhttp.Refusal
			require.ErrorAs(t, err, &r)
			assert.Equal(t, rc.reason, r.Reason)
			assert.Equal(t, time.Second, r.RetryAfter)
			assert.Equal(t, llmhttp.ClassLocal, llmhttp.Classify(nil, err))
			assert.True(t, strings.HasPrefix(r.Error(), "llmhttp: "))
		})
	}
}

// TestRefusalResponseThroughHTTPClient sends the local reply through a real
// http.Client, which neither errs nor follows anything: the caller reads
// the reply as any other response.
func TestRefusalResponseThroughHTTPClient(t *testing.T) {
	r := &llmhttp.Refusal{Reason: llmhttp.ReasonCircuitOpen, Message: "open", RetryAfter: 3 * time.Second}
	c := &http.Client{Transport: llmhttp.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return r.Response(req), nil
	})}
	req := httptest.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages", strings.NewReader(`{"model":"m"}`))
	req.RequestURI = ""
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode)
	got, ok := llmhttp.RefusalOf(resp)
	require.True(t, ok)
	assert.Equal(t, *r, *got)
	assert.True(t, errors.Is(got, llmhttp.ErrCircuitOpen))
}
