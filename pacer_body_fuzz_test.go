package llmhttp

import (
	"bytes"
	"encoding/json"
	"testing"
)

// usageByTokens is what usageScan.scan should find in valid JSON without
// escapes, by way of encoding/json's token stream: the last output count,
// the first input and cache-write counts (-1 when absent), each a key's
// numeric value's leading digits (at most 18), wherever the key is.
func usageByTokens(b []byte) usageScan {
	s := usageScan{output: -1, input: -1, cacheWrite: -1}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var (
		objects   []bool // the open containers: true for an object
		expectKey bool   // the next string is a key
		key       string // the key of the value being read
	)
	for {
		tok, err := dec.Token()
		if err != nil {
			return s
		}
		if str, ok := tok.(string); ok && expectKey {
			key, expectKey = str, false
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				objects = append(objects, t == '{')
				key, expectKey = "", t == '{'
				continue
			default:
				objects = objects[:len(objects)-1]
			}
		case json.Number:
			digits := 0
			var v int64
			for _, c := range []byte(t) {
				if c < '0' || c > '9' || digits == 18 {
					break
				}
				v = v*10 + int64(c-'0')
				digits++
			}
			if digits > 0 {
				s.refCount(key, v)
			}
		}
		// A value ended: in an object, a key comes next.
		key = ""
		expectKey = len(objects) > 0 && objects[len(objects)-1]
	}
}

// FuzzUsageScan checks the pacer's usage scan of response bytes: it never
// panics, finds what the reference scan (scanUsageRef) finds in any input,
// and in valid JSON without escapes what encoding/json's tokens hold.
func FuzzUsageScan(f *testing.F) {
	for _, seed := range []string{
		`{"id":"msg","usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":500,"output_tokens":7}}`,
		`{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":30,"completion_tokens":200,"total_tokens":230}}`,
		"event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"usage\":{\"output_tokens\":15}}\n\n",
		`{"content":"say \"output_tokens\": 99","usage":{"output_tokens":4}}`,
		`{"a_tokens":{"prompt_tokens" : 5.5},"x":"prompt_tokens","output_tokens":-3,"completion_tokens":1e3}`,
		`"a_tokens"prompt_tokens": 5, _tokens": 1 "input_tokens":12345678901234567890`,
		`{"usage":{"prompt_tokens":`,
		`{"":"a","prompt_tokens":5,"b":[{"":{}},"output_tokens"],"output_tokens":[7]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got usageScan
		got.scan(b)
		if want := scanUsageRef(b); got != want {
			t.Fatalf("scan %q = %+v, reference %+v", b, got, want)
		}
		if got.output < -1 || got.input < -1 || got.cacheWrite < -1 {
			t.Fatalf("scan %q = %+v: a count below -1", b, got)
		}
		if json.Valid(b) && bytes.IndexByte(b, '\\') < 0 {
			if want := usageByTokens(b); got != want {
				t.Fatalf("scan %q = %+v, encoding/json %+v", b, got, want)
			}
		}
	})
}
