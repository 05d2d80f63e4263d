package llmhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanBody(t *testing.T) {
	b64 := strings.Repeat("iVBORw0KGgoAAAANSUhEUgAA", 20)
	cases := []struct {
		name      string
		body      string
		model     string
		stream    bool
		maxTokens int64
		text      int64 // textBytes
		blobs     int64
		complete  bool
	}{
		{"anthropic", `{"model":"claude-x","max_tokens":1024,"messages":[{"role":"user","content":"hello"}]}`, "claude-x", false, 1024, 4 + 5, 0, true},
		{"openai stream", `{"messages":[{"role":"user","content":"hi"}],"model":"gpt-x","stream":true,"max_completion_tokens":50}`, "gpt-x", true, 50, 4 + 2, 0, true},
		{"largest max", `{"max_tokens":10,"max_output_tokens":30,"max_completion_tokens":20}`, "", false, 30, 0, 0, true},
		{"nested keys are not top level", `{"metadata":{"model":"nope","stream":true,"max_tokens":9},"model":"yes"}`, "yes", false, 0, 4, 0, true},
		{"last duplicate wins", `{"model":"a","model":"b","max_tokens":5,"max_tokens":3,"stream":true,"stream":false}`, "b", false, 3, 0, 0, true},
		{"escaped model", `{"model":"cl\"aude\u0041"}`, `cl"audeA`, false, 0, 0, 0, true},
		{"non-ascii model", `{"model":"modèle-ü"}`, "modèle-ü", false, 0, 0, 0, true},
		{"escaped quotes in text", `{"messages":[{"content":"a \"quoted\" word\\"}],"model":"m"}`, "m", false, 0, int64(len(`a \"quoted\" word\\`)), 0, true},
		{"anthropic image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + b64 + `"}},{"type":"text","text":"what?"}]}]}`, "m", false, 0, int64(len("user") + len("image") + len("base64") + len("image/png") + len("text") + len("what?")), 1, true},
		{"openai data url", `{"model":"m","messages":[{"content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` + b64 + `"}}]}]}`, "m", false, 0, int64(len("image_url")), 1, true},
		{"text document data counts", `{"model":"m","source":{"type":"text","data":"plain text, with spaces, that is a document and long enough to be looked at twice"}}`, "m", false, 0, int64(len("text") + len("plain text, with spaces, that is a document and long enough to be looked at twice")), 0, true},
		{"non-string model", `{"model":7,"stream":"true","max_tokens":"5"}`, "", false, 0, 0, 0, true},
		{"float and exponent", `{"max_tokens":1e3}`, "", false, 1000, 0, 0, true},
		{"negative", `{"max_tokens":-5}`, "", false, 0, 0, 0, true},
		{"truncated", `{"model":"m","messages":[{"content":"abc`, "m", false, 0, 3, 0, false},
		{"not an object", `["model","m"]`, "", false, 0, 0, 0, false},
		{"empty", ``, "", false, 0, 0, 0, false},
		{"whitespace", " \n{ \"model\" : \"m\" , \"stream\" : true }\n", "m", true, 0, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := scanBody([]byte(c.body))
			assert.Equal(t, c.model, s.model, "model")
			assert.Equal(t, c.stream, s.stream, "stream")
			assert.Equal(t, c.maxTokens, s.maxTokens, "maxTokens")
			assert.Equal(t, c.text, s.textBytes, "textBytes")
			assert.Equal(t, c.blobs, s.blobs, "blobs")
			assert.Equal(t, c.complete, s.complete, "complete")
		})
	}
}

func TestDescribe(t *testing.T) {
	body := `{"model":"claude-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("a", 400) + `"}]}`
	req, err := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", "sk-ant-secret")
	info := describe(req)
	assert.Equal(t, Partition{Host: "https://api.anthropic.com", Credential: Fingerprint("sk-ant-secret"), Model: "claude-x"}, info.partition)
	assert.NotContains(t, info.partition.String(), "secret")
	assert.Equal(t, ProviderAnthropic, info.provider)
	assert.True(t, info.stream)
	assert.EqualValues(t, 100, info.maxTokens)
	assert.EqualValues(t, (4+400+3)/4, info.inputTokens)
	// The caller's body is untouched.
	got, _ := io.ReadAll(req.Body)
	assert.Equal(t, body, string(got))
}

// A body whose GetBody does not hand it over in one piece is copied, and a
// body longer than the copy limit is extrapolated from its length.
func TestDescribeStreamedBody(t *testing.T) {
	text := strings.Repeat("b", describeReadMax*2)
	body := `{"model":"m","messages":[{"content":"` + text + `"}]}`
	req, _ := http.NewRequest(http.MethodPost, "https://x.test/v1/chat/completions", nil)
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(iotest.HalfReader(strings.NewReader(body))), nil
	}
	info := describe(req)
	assert.Equal(t, "m", info.partition.Model)
	assert.InDelta(t, float64(len(text))/4, float64(info.inputTokens), float64(len(text))/40)

	// Small, in pieces: scanned whole.
	small := `{"model":"m2","max_tokens":7}`
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(iotest.OneByteReader(strings.NewReader(small))), nil
	}
	req.ContentLength = int64(len(small))
	info = describe(req)
	assert.Equal(t, "m2", info.partition.Model)
	assert.EqualValues(t, 7, info.maxTokens)

	// A failing GetBody leaves the body undescribed.
	req.GetBody = func() (io.ReadCloser, error) { return nil, io.ErrUnexpectedEOF }
	info = describe(req)
	assert.Equal(t, "", info.partition.Model)
	// A reader that fails mid-way too.
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(iotest.DataErrReader(iotest.ErrReader(io.ErrClosedPipe))), nil
	}
	info = describe(req)
	assert.Equal(t, "", info.partition.Model)
}

func TestAzureDeployment(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "https://r.openai.azure.com/openai/deployments/my-gpt/chat/completions?api-version=1", strings.NewReader(`{"messages":[]}`))
	req.Header.Set("Api-Key", "k")
	assert.Equal(t, "my-gpt", describe(req).partition.Model)
	assert.Equal(t, "", azureDeployment("/v1/chat/completions"))
}

// FuzzDescribe checks the body scan against encoding/json: no panic, and
// for a valid JSON object the same top-level model, stream, speed and
// max-token fields.
func FuzzDescribe(f *testing.F) {
	for _, s := range []string{
		`{"model":"claude-x","max_tokens":1024,"messages":[{"role":"user","content":"hello"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"model":"gpt","stream":true,"max_completion_tokens":5}`,
		`{"model":"a\"b","stream":false,"max_output_tokens":1e2}`,
		`{"model":"claude-opus-4-8","speed":"fast","max_tokens":9,"metadata":{"speed":"fast"}}`,
		`{"speed":"fast","speed":"standard","model":"m"}`,
		`{"model":{"nested":"x"},"max_tokens":[1]}`,
		`{"a":{"b":{"c":[[[{"model":"deep"}]]]}},"model":"top"}`,
		`{"model":"m"`, `[]`, `"str"`, `{"model":"\ud83d\ude00"}`, "{\"model\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := scanBody(body)
		if s.textBytes < 0 || s.textBytes > int64(len(body)) || s.blobs < 0 || s.maxTokens < 0 {
			t.Fatalf("impossible scan %+v of %q", s, body)
		}
		req, _ := http.NewRequest(http.MethodPost, "https://x.test/v1/messages", bytes.NewReader(body))
		info := describe(req)
		if info.inputTokens < 0 {
			t.Fatalf("negative input tokens")
		}
		var top map[string]json.RawMessage
		if !json.Valid(body) || json.Unmarshal(body, &top) != nil || top == nil || bytes.Contains(body, []byte(`\`)) {
			return // escapes in keys: encoding/json unescapes them, the scan does not
		}
		if !s.complete {
			t.Fatalf("valid object %q not scanned to its end", body)
		}
		var model string
		if raw, ok := top["model"]; ok {
			json.Unmarshal(raw, &model)
		}
		if s.model != model {
			t.Fatalf("model %q, encoding/json %q, in %q", s.model, model, body)
		}
		if want := string(top["stream"]) == "true"; s.stream != want {
			t.Fatalf("stream %v, want %v, in %q", s.stream, want, body)
		}
		if want := string(top["speed"]) == `"fast"`; s.fast != want {
			t.Fatalf("fast %v, want %v, in %q", s.fast, want, body)
		}
		var want int64
		for _, k := range []string{"max_tokens", "max_completion_tokens", "max_output_tokens"} {
			if raw, ok := top[k]; ok {
				var v json.Number
				if json.Unmarshal(raw, &v) == nil {
					want = max(want, parseCount([]byte(v)))
				}
			}
		}
		if s.maxTokens != want {
			t.Fatalf("maxTokens %d, want %d, in %q", s.maxTokens, want, body)
		}
	})
}

// An info describes its request and the request's clones (the retry
// layer's attempts), not another request made with the same context, which
// gets its own, kept so that each of its layers and clones finds the same.
func TestInfoOfInheritedContext(t *testing.T) {
	newReq := func(ctx context.Context, model, key string) *http.Request {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://x.test/v1/messages",
			strings.NewReader(`{"model":"`+model+`","max_tokens":5}`))
		req.Header.Set("X-Api-Key", key)
		return req
	}
	a := newReq(context.Background(), "a", "k")
	a = withInfo(a, describe(a))
	infoA := infoOf(a)
	assert.Same(t, infoA, infoOf(a))
	clone := a.Clone(context.WithValue(a.Context(), struct{}{}, 1))
	clone.Body, _ = a.GetBody()
	assert.Same(t, infoA, infoOf(clone), "a clone is the same request")

	b := newReq(a.Context(), "b", "k")
	infoB := infoOf(b)
	assert.NotSame(t, infoA, infoB)
	assert.Equal(t, "b", infoB.partition.Model)
	assert.Same(t, infoB, infoOf(b), "described once")
	assert.Same(t, infoB, infoOf(b.Clone(b.Context())), "and its clones find it")
	assert.Same(t, infoA, infoOf(a), "the context's own request keeps its info")

	// Bodiless requests are told apart by URL and credential.
	g := httptestGet(t, "https://x.test/v1/models", "k1")
	g = withInfo(g, describe(g))
	infoG := infoOf(g)
	assert.Same(t, infoG, infoOf(g.Clone(g.Context())))
	other := httptestGet(t, "https://x.test/v1/models", "k2").WithContext(g.Context())
	assert.NotSame(t, infoG, infoOf(other), "another key")
	assert.Equal(t, Fingerprint("Bearer k2"), infoOf(other).partition.Credential)

	// A context reused by many requests keeps a bounded number of infos.
	for i := range 3 * maxDerived {
		infoOf(newReq(a.Context(), fmt.Sprint("m", i), "k"))
	}
	assert.Len(t, infoA.derived.Load().infos, maxDerived)
}

func httptestGet(t *testing.T, url, key string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	return req
}
