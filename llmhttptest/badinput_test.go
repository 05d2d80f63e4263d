package llmhttptest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

func TestBadInput(t *testing.T) {
	cases := []struct {
		name, method, path, key, body string
		status                        int
		field, value                  string
	}{
		{"anthropic bad json", "POST", msgs, "k", `{"model":`, 400, "error.type", "invalid_request_error"},
		{"openai bad json", "POST", chat, "k", `not json`, 400, "error.type", "invalid_request_error"},
		{"anthropic wrong types", "POST", msgs, "k", `{"model":1,"max_tokens":"x","messages":{}}`, 400, "error.type", "invalid_request_error"},
		{"anthropic no model", "POST", msgs, "k", `{"max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, 400, "error.message", "model: Field required"},
		{"anthropic no max_tokens", "POST", msgs, "k", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 400, "error.message", "max_tokens: Field required"},
		{"anthropic no messages", "POST", msgs, "k", `{"model":"m","max_tokens":10,"messages":[]}`, 400, "error.message", "messages: Field required"},
		{"openai no model", "POST", chat, "k", `{"messages":[{"role":"user","content":"x"}]}`, 400, "error.param", "model"},
		{"openai no messages", "POST", chat, "k", `{"model":"m"}`, 400, "error.param", "messages"},
		{"openai zero max_tokens", "POST", chat, "k", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, 400, "error.param", "max_tokens"},
		{"empty body", "POST", chat, "k", ``, 400, "error.type", "invalid_request_error"},
		{"anthropic no key", "POST", msgs, "", anthropicReq("m", 10, "x", false), 401, "error.type", "authentication_error"},
		{"openai no key", "POST", chat, "", openAIReq("m", 10, "x", false, false), 401, "error.type", "invalid_request_error"},
		{"openai unknown path", "POST", "/v1/embeddings", "k", `{}`, 404, "error.message", "Invalid URL (POST /v1/embeddings)"},
		{"anthropic unknown path", "POST", "/v1/messages/batches", "k", `{}`, 404, "error.type", "not_found_error"},
		{"root", "GET", "/", "", ``, 404, "error.type", "invalid_request_error"},
		{"anthropic GET", "GET", msgs, "k", ``, 405, "error.type", "invalid_request_error"},
		{"count_tokens", "POST", "/v1/messages/count_tokens", "k", `{"model":"m","messages":[{"role":"user","content":"abcdefgh"}],"system":"abcd"}`, 200, "input_tokens", "3"},
		{"count_tokens bad", "POST", "/v1/messages/count_tokens", "k", `{"model":"m"}`, 400, "error.type", "invalid_request_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := llmhttptest.NewHandler(llmhttptest.Config{})
				req, _ := http.NewRequest(c.method, "http://fake.test"+c.path, strings.NewReader(c.body))
				if c.key != "" {
					if strings.Contains(c.path, "/messages") {
						req.Header.Set("x-api-key", c.key)
					} else {
						req.Header.Set("Authorization", "Bearer "+c.key)
					}
				}
				resp, err := h.Transport().RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				wantStatus(t, resp, string(b), c.status)
				got := fmt.Sprint(jsonField(t, string(b), c.field))
				if got != c.value {
					t.Errorf("%s = %v, want %s; body %s", c.field, got, c.value, b)
				}
			})
		})
	}
}

func TestAPIKeysAndBodyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{APIKeys: []string{"good"}, MaxBodyBytes: 1000})
		resp, b := do(t, h.Transport(), msgs, "bad", anthropicReq("m", 10, "x", false))
		wantStatus(t, resp, b, 401)
		resp, b = do(t, h.Transport(), chat, "bad", openAIReq("m", 10, "x", false, false))
		wantStatus(t, resp, b, 401)
		if jsonField(t, b, "error.code") != "invalid_api_key" {
			t.Errorf("body %s", b)
		}
		resp, b = do(t, h.Transport(), msgs, "good", anthropicReq("m", 10, chars(300), false))
		wantStatus(t, resp, b, 413)
		if jsonField(t, b, "error.type") != "request_too_large" {
			t.Errorf("body %s", b)
		}
		resp, b = do(t, h.Transport(), msgs, "good", anthropicReq("m", 10, "x", false))
		wantStatus(t, resp, b, 200)
		if st := h.Stats(); st.ByStatus[401] != 2 || st.ByStatus[413] != 1 || len(st.Partitions) != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// FuzzHandler sends arbitrary bodies to every endpoint: the handler never
// panics, never hangs, and always answers JSON (or SSE) with a status it
// documents.
func FuzzHandler(f *testing.F) {
	f.Add(0, anthropicReq("m", 10, "hello", false))
	f.Add(1, anthropicReq("m", 10, "hello", true))
	f.Add(2, openAIReq("m", 10, "hello", true, true))
	f.Add(3, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image","source":{"type":"base64","data":"AAAA"}},{"type":"tool_result","content":[{"type":"text","text":"y"}]}]}]}`)
	f.Add(2, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]}],"tools":[{}]}`)
	f.Add(0, `{"model":"m","max_tokens":-5,"messages":[{"role":"user","content":"x"}]}`)
	f.Add(2, `{"model":"m","max_tokens":9223372036854775807,"messages":[{"role":"user","content":"x"}]}`)
	f.Add(0, `[]`)
	f.Add(2, `null`)
	paths := []string{msgs, msgs, chat, "/v1/messages/count_tokens"}
	f.Fuzz(func(t *testing.T, which int, body string) {
		path := paths[(which%len(paths)+len(paths))%len(paths)]
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(3)})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := sendCtx(ctx, h.Transport(), path, "k", body)
		if err != nil {
			t.Fatalf("transport error: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch resp.StatusCode {
		case 200, 400, 413, 429:
		default:
			t.Fatalf("status %d for %q: %s", resp.StatusCode, body, b)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("content-type %q", ct)
		}
	})
}
