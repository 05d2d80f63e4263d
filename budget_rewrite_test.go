package llmhttp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRewriteJSON rewrites the top-level model and output limits and keeps
// every other byte; nested "model" keys, other keys and spacing are left
// alone, and a body that needs no change comes back as it is.
func TestRewriteJSON(t *testing.T) {
	for _, c := range []struct {
		name, body string
		model      string
		max        int64
		insert     string
		want       string
		r          rewrite
	}{
		{
			name: "both", model: "haiku", max: 64,
			body: `{"model":"sonnet","max_tokens":1024,"messages":[{"role":"user","content":"hi","model":"x"}]}`,
			want: `{"model":"haiku","max_tokens":64,"messages":[{"role":"user","content":"hi","model":"x"}]}`,
			r:    rewrite{fromModel: "sonnet", model: "haiku", fromMax: 1024, maxTokens: 64},
		},
		{
			name: "spacing and order kept", model: "gpt-4o-mini", max: 100,
			body: "{\n  \"stream\" : true,\n  \"max_completion_tokens\" :\t4096 ,\n  \"model\":  \"gpt-4o\"\n}\n",
			want: "{\n  \"stream\" : true,\n  \"max_completion_tokens\" :\t100 ,\n  \"model\":  \"gpt-4o-mini\"\n}\n",
			r:    rewrite{fromModel: "gpt-4o", model: "gpt-4o-mini", fromMax: 4096, maxTokens: 100},
		},
		{
			name: "under the cap", max: 500,
			body: `{"model":"m","max_tokens":400}`,
			want: `{"model":"m","max_tokens":400}`,
		},
		{
			name: "same model", model: "m",
			body: `{"model":"m"}`,
			want: `{"model":"m"}`,
		},
		{
			name: "not configured",
			body: `{"model":"m","max_tokens":400}`,
			want: `{"model":"m","max_tokens":400}`,
		},
		{
			name: "inserted", max: 256, insert: "max_completion_tokens",
			body: ` { "model":"gpt-4o","messages":[]}`,
			want: ` {"max_completion_tokens":256, "model":"gpt-4o","messages":[]}`,
			r:    rewrite{maxTokens: 256},
		},
		{
			name: "inserted into an empty object", max: 8, insert: "max_tokens",
			body: `{}`,
			want: `{"max_tokens":8}`,
			r:    rewrite{maxTokens: 8},
		},
		{
			name: "null limit replaced", max: 8,
			body: `{"max_tokens":null,"model":"m"}`,
			want: `{"max_tokens":8,"model":"m"}`,
			r:    rewrite{maxTokens: 8},
		},
		{
			name: "every limit and duplicate", model: "b", max: 10,
			body: `{"model":"a","max_tokens":20,"max_output_tokens":5,"model":"a2","max_completion_tokens":1e3}`,
			want: `{"model":"b","max_tokens":10,"max_output_tokens":5,"model":"b","max_completion_tokens":10}`,
			r:    rewrite{fromModel: "a2", model: "b", fromMax: 1000, maxTokens: 10},
		},
		{
			name: "escaped key and value", model: "new\"model",
			body: `{"mod\u0065l":"old\/model","x":"\"model\":\"y\""}`,
			want: `{"mod\u0065l":"new\"model","x":"\"model\":\"y\""}`,
			r:    rewrite{fromModel: "old/model", model: "new\"model"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, r, ok := rewriteJSON([]byte(c.body), c.model, c.max, c.insert)
			require.True(t, ok)
			assert.Equal(t, c.want, string(out))
			assert.Equal(t, c.r, r)
			assert.True(t, json.Valid(out))
		})
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"model":"m"`, `{"model":"m"} x`, `{"a":1,}`} {
		out, _, ok := rewriteJSON([]byte(bad), "x", 1, "max_tokens")
		assert.False(t, ok, bad)
		assert.Nil(t, out)
	}
}

// FuzzRewriteJSON: for any valid JSON object, the rewrite is valid JSON
// whose members are byte for byte those of the original, except the
// rewritten model and output limits; with nothing to do it is the body
// itself. Anything else is refused.
func FuzzRewriteJSON(f *testing.F) {
	f.Add([]byte(`{"model":"sonnet","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}`), "haiku", int64(64))
	f.Add([]byte(`{"model":"gpt-4o","stream":true}`), "", int64(10))
	f.Add([]byte(`{ "max_completion_tokens" : 1e9 , "model" : null }`), "m", int64(1))
	f.Add([]byte(`{"a":{"model":"nested","max_tokens":9}, "b":[{},[]], "c":"\u00e9\"\\"}`), "z", int64(0))
	f.Add([]byte(`[1,2]`), "m", int64(5))
	f.Fuzz(func(t *testing.T, body []byte, model string, max int64) {
		out, r, ok := rewriteJSON(body, model, max, "max_tokens")
		var orig map[string]json.RawMessage
		isObject := json.Unmarshal(body, &orig) == nil && json.Valid(body) && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{"))
		if !isObject {
			if ok {
				t.Fatalf("rewrote a body that is not a JSON object: %q", body)
			}
			return
		}
		if !ok {
			t.Fatalf("refused a JSON object: %q", body)
		}
		if !r.changed() {
			if !bytes.Equal(out, body) {
				t.Fatalf("nothing rewritten, yet %q became %q", body, out)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q from %q", out, body)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range got {
			switch {
			case k == "model" && r.model != "":
				// JSON holds UTF-8 only: invalid bytes become U+FFFD.
				var m, want string
				q, _ := json.Marshal(model)
				json.Unmarshal(q, &want)
				if json.Unmarshal(v, &m) != nil || m != want {
					t.Fatalf("model %s, want %q", v, want)
				}
			case isOutputKey(k) && r.maxTokens != 0:
				var n float64
				if json.Unmarshal(v, &n) != nil || n > float64(max) {
					t.Fatalf("%s = %s over %d", k, v, max)
				}
			case !bytes.Equal(v, orig[k]):
				t.Fatalf("%s changed: %s → %s", k, orig[k], v)
			}
		}
		if len(got) < len(orig) || len(got) > len(orig)+1 {
			t.Fatalf("members %d → %d", len(orig), len(got))
		}
		// Outside the rewritten values, the text is the same: removing every
		// model and limit value from both leaves equal skeletons.
		a, b := skeleton(t, body), skeleton(t, out)
		if a != b && a != strings.Replace(b, `"max_tokens":,`, ``, 1) && a != strings.Replace(b, `"max_tokens":`, ``, 1) {
			t.Fatalf("skeletons differ:\n%s\n%s", a, b)
		}
	})
}

// skeleton returns b with the values of the top-level model and output
// limits cut out.
func skeleton(t *testing.T, b []byte) string {
	var cut []spliceEdit
	_, _, ok := topMembers(b, func(key []byte, vs, ve int) {
		if k := jsonKey(key); k == "model" || isOutputKey(k) {
			cut = append(cut, spliceEdit{start: vs, end: ve})
		}
	})
	if !ok {
		t.Fatalf("not an object: %q", b)
	}
	var s strings.Builder
	at := 0
	for _, c := range cut {
		s.Write(b[at:c.start])
		at = c.end
	}
	s.Write(b[at:])
	return s.String()
}
