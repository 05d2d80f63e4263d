package llmhttp

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// This file degrades a request: it rewrites the top-level "model" and the
// output limit of its JSON body by splicing new values over the old ones,
// so that every other byte of the request — key order, spacing, numbers,
// unknown fields — reaches the provider as the caller wrote it. Nothing is
// decoded and re-encoded.

// rewriteMaxBody bounds the bodies rewriteRequest reads; a larger one is
// sent as it is.
const rewriteMaxBody = 64 << 20

// outputKeys are the top-level fields that limit a request's output.
var outputKeys = [...]string{"max_tokens", "max_completion_tokens", "max_output_tokens"}

// rewrite is what rewriteJSON changed.
type rewrite struct {
	// fromModel is the model the body named, and model the one it names
	// now; both "" when the model was not changed.
	fromModel, model string
	// fromMax is the output limit the body set (0: none), and maxTokens
	// the one it sets now; both 0 when it was not changed.
	fromMax, maxTokens int64
}

// changed reports whether anything was rewritten.
func (r rewrite) changed() bool { return r.model != "" || r.maxTokens != 0 }

// String describes the rewrite for the Llmhttp-Degraded header:
// "model=<model>, max_tokens=<n>".
func (r rewrite) String() string {
	var parts []string
	if r.model != "" {
		parts = append(parts, "model="+r.model)
	}
	if r.maxTokens != 0 {
		parts = append(parts, "max_tokens="+strconv.FormatInt(r.maxTokens, 10))
	}
	return strings.Join(parts, ", ")
}

// spliceEdit replaces body[start:end] with repl.
type spliceEdit struct {
	start, end int
	repl       []byte
}

// rewriteJSON returns body with its top-level "model" set to model (when
// model is not "" and differs) and every top-level output limit
// (max_tokens, max_completion_tokens, max_output_tokens) above maxTokens
// lowered to it (when maxTokens > 0); a limit that is not a number is
// replaced, and when there is none, insertKey (if not "") is added as the
// object's first member. Everything else is kept byte for byte. ok is false
// when body is not a valid JSON object; out is then nil.
func rewriteJSON(body []byte, model string, maxTokens int64, insertKey string) (out []byte, r rewrite, ok bool) {
	if !json.Valid(body) {
		return nil, r, false
	}
	var (
		edits  []spliceEdit
		hasMax bool
	)
	open, members, ok := topMembers(body, func(key []byte, vs, ve int) {
		val := body[vs:ve]
		switch k := jsonKey(key); {
		case k == "model" && model != "":
			var cur string
			if val[0] == '"' {
				cur = jsonString(val[1 : len(val)-1])
			}
			if cur == model {
				return
			}
			q, _ := json.Marshal(model) // a string always encodes
			edits = append(edits, spliceEdit{vs, ve, q})
			r.fromModel, r.model = cur, model
		case maxTokens > 0 && isOutputKey(k):
			hasMax = true
			isNum := val[0] == '-' || '0' <= val[0] && val[0] <= '9'
			cur := int64(0)
			if isNum {
				cur = parseCount(val)
			}
			if isNum && cur <= maxTokens {
				return
			}
			edits = append(edits, spliceEdit{vs, ve, strconv.AppendInt(nil, maxTokens, 10)})
			r.fromMax, r.maxTokens = max(r.fromMax, cur), maxTokens
		}
	})
	if !ok {
		return nil, rewrite{}, false
	}
	if maxTokens > 0 && !hasMax && insertKey != "" {
		ins := strconv.AppendQuote(nil, insertKey) // a plain ASCII key
		ins = append(ins, ':')
		ins = strconv.AppendInt(ins, maxTokens, 10)
		if members > 0 {
			ins = append(ins, ',')
		}
		edits = append([]spliceEdit{{open + 1, open + 1, ins}}, edits...)
		r.maxTokens = maxTokens
	}
	if len(edits) == 0 {
		return body, r, true
	}
	n := len(body)
	for _, e := range edits {
		n += len(e.repl) - (e.end - e.start)
	}
	out = make([]byte, 0, n)
	at := 0
	for _, e := range edits { // in body order: members are visited in order
		out = append(out, body[at:e.start]...)
		out = append(out, e.repl...)
		at = e.end
	}
	out = append(out, body[at:]...)
	return out, r, true
}

// isOutputKey reports whether k names an output limit.
func isOutputKey(k string) bool {
	for _, o := range outputKeys {
		if k == o {
			return true
		}
	}
	return false
}

// jsonKey returns the value of a key's raw contents (between the quotes).
func jsonKey(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	return jsonString(raw)
}

// topMembers calls fn with the raw key (between the quotes) and the value's
// offsets of every top-level member of the JSON object in b, in order. It
// returns the offset of the object's opening brace and the number of
// members; ok is false when b is not an object (b must be valid JSON).
func topMembers(b []byte, fn func(key []byte, vs, ve int)) (open, members int, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, 0, false
	}
	open = i
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return open, 0, true
	}
	for i < len(b) && b[i] == '"' {
		ke := stringEnd(b, i+1)
		if ke < 0 {
			return 0, 0, false
		}
		key := b[i+1 : ke]
		i = skipSpace(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return 0, 0, false
		}
		vs := skipSpace(b, i+1)
		ve := skipValue(b, vs)
		if ve <= vs {
			return 0, 0, false
		}
		fn(key, vs, ve)
		members++
		i = skipSpace(b, ve)
		if i >= len(b) {
			return 0, 0, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return open, members, true
		default:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// skipValue returns the offset just past the JSON value that starts at
// b[i], or i when there is none.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		if e := stringEnd(b, i+1); e >= 0 {
			return e + 1
		}
		return i
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j+1)
				if e < 0 {
					return i
				}
				j = e
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return i
	}
	j := i
	for j < len(b) && !isDelim(b[j]) {
		j++
	}
	return j
}

// outputKeyFor returns the field rewriteRequest adds to cap the output of a
// request that sets no limit: max_tokens for Anthropic and
// OpenAI-compatible providers, max_completion_tokens for OpenAI and Azure
// OpenAI Chat Completions (which reject max_tokens for reasoning models),
// max_output_tokens for the Responses API.
func outputKeyFor(req *http.Request, provider Provider) string {
	if provider == ProviderAnthropic || req.URL == nil {
		return "max_tokens"
	}
	if strings.HasSuffix(req.URL.Path, "/responses") {
		return "max_output_tokens"
	}
	if hostIs(req.URL.Hostname(), "openai.com") || hostIs(req.URL.Hostname(), "openai.azure.com") {
		return "max_completion_tokens"
	}
	return "max_tokens"
}

// rewriteRequest returns a clone of req whose JSON body is rewritten by
// rewriteJSON, with Body, GetBody and ContentLength set for the new body
// and the request's description (partition, estimate) recomputed. The body
// is read through GetBody; req and its Body are left as they are (the
// caller closes req.Body when it sends the clone instead). ok is false when
// the body cannot be rewritten: no GetBody, larger than 64 MiB, unreadable
// or not a JSON object. When nothing needed rewriting, req itself is
// returned.
func rewriteRequest(req *http.Request, info *requestInfo, model string, maxTokens int64) (*http.Request, rewrite, bool) {
	if req.GetBody == nil || req.Body == nil || req.Body == http.NoBody {
		return nil, rewrite{}, false
	}
	rc, err := req.GetBody()
	if err != nil || rc == nil {
		return nil, rewrite{}, false
	}
	body, err := io.ReadAll(io.LimitReader(rc, rewriteMaxBody+1))
	rc.Close()
	if err != nil || len(body) > rewriteMaxBody {
		return nil, rewrite{}, false
	}
	out, r, ok := rewriteJSON(body, model, maxTokens, outputKeyFor(req, info.provider))
	if !ok {
		return nil, rewrite{}, false
	}
	if !r.changed() {
		return req, r, true
	}
	clone := req.Clone(req.Context())
	clone.Body = io.NopCloser(bytes.NewReader(out))
	clone.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out)), nil }
	clone.ContentLength = int64(len(out))
	clone.Header.Del("Content-Length")
	return withInfo(clone, describe(clone)), r, true
}
