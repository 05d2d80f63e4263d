package llmhttp

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// usageOf parses body in pieces of the given sizes (cycling; a size of 0
// means the whole rest) in mode and returns the result.
func usageOf(body []byte, mode uint8, prov Provider, sizes ...int) (Usage, usageAcc) {
	var p usageParser
	p.reset(mode)
	for i, k := 0, 0; i < len(body); k++ {
		n := len(body) - i
		if len(sizes) > 0 && sizes[k%len(sizes)] > 0 {
			n = min(n, sizes[k%len(sizes)])
		}
		p.feed(body[i : i+n])
		i += n
	}
	p.finish()
	return p.result(prov), p.acc
}

// usageSeeds adds the usage fixtures and a few odd bodies to f.
func usageSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "usage", "*"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(7))
	}
	for _, s := range []string{
		`{"usage":{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":1e3}}`,
		`{"usage":{"prompt_tokens":-5,"completion_tokens":99999999999999999999999}}`,
		`{"usage":{"input_tokens":1,"input_tokens":2},"usage":{"output_tokens":4}}`,
		`{"error":{"type":"overloaded_error","message":"\ud83d\ude00 \" \\ \n"}}`,
		"data: {\"usage\":{\"prompt_tokens\":1}}\r\ndata: [DONE]\r\n\r\n",
		"event: error\rdata: {\"error\":{\"code\":503}}\r\r",
		": comment\n\nretry: 10\nid\ndata\n\n",
		"\xef\xbb\xbf{\"usage\":{\"input_tokens\":5}}",
		`[1,2,{"usage":{"input_tokens":5}}]`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{"usage":{"input_tokens":5}}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	} {
		f.Add([]byte(s), uint16(3))
	}
}

// FuzzUsageJSON checks the usage parser on any body: it never panics; the
// result does not depend on how the body is split into reads; counts are
// never negative and error strings stay bounded; for a valid JSON object
// with one top-level usage object, the counts are those encoding/json
// decodes; and the same JSON sent as one server-sent event gives the same
// counts.
func FuzzUsageJSON(f *testing.F) {
	usageSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		k := int(split%64) + 1
		for _, mode := range []uint8{modeSniff, modeJSON, modeSSE} {
			whole, acc := usageOf(body, mode, ProviderAnthropic)
			pieces, _ := usageOf(body, mode, ProviderAnthropic, k, 1, 3*k)
			ones, _ := usageOf(body, mode, ProviderAnthropic, 1)
			if !usageEqual(whole, pieces) || !usageEqual(whole, ones) {
				t.Fatalf("mode %d: whole %+v, pieces of %d %+v, bytes %+v", mode, whole, k, pieces, ones)
			}
			checkUsageBounds(t, whole, acc)
		}
		if !json.Valid(body) || bytes.IndexByte(body, '\\') >= 0 {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil || top["message"] != nil || top["response"] != nil ||
			bytes.Count(body, []byte(`"usage"`)) != 1 || top["usage"] == nil {
			return
		}
		var raw map[string]json.RawMessage
		if json.Unmarshal(top["usage"], &raw) != nil {
			return
		}
		_, acc := usageOf(body, modeJSON, ProviderAnthropic)
		for key, got := range map[string]int64{"input_tokens": acc.input, "prompt_tokens": acc.prompt,
			"cache_read_input_tokens": acc.cacheRead, "cache_creation_input_tokens": acc.cacheWrite} {
			want := int64(-1)
			if v, ok := plainCount(raw[key]); ok {
				want = v
			} else if raw[key] != nil {
				continue // not a plain count: what it reads as is unspecified
			}
			if got != want {
				t.Fatalf("%s = %d, encoding/json says %d", key, got, want)
			}
		}
		if bytes.ContainsAny(body, "\r\n") {
			return
		}
		_, sse := usageOf(append(append([]byte("data: "), body...), "\n\n"...), modeSSE, ProviderAnthropic)
		if sse.input != acc.input || sse.prompt != acc.prompt || sse.output != acc.output || sse.cacheRead != acc.cacheRead {
			t.Fatalf("as an event: %+v, as JSON: %+v", sse, acc)
		}
	})
}

// FuzzUsageSSE checks the event-stream framing: any stream, with its line
// ends as LF, CRLF or CR, gives the same usage whole, split, or a byte at a
// time.
func FuzzUsageSSE(f *testing.F) {
	usageSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		k := int(split%97) + 1
		variants := [][]byte{body, bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")), bytes.ReplaceAll(body, []byte("\n"), []byte("\r"))}
		var first Usage
		for i, b := range variants {
			whole, acc := usageOf(b, modeSSE, ProviderOpenAI)
			pieces, _ := usageOf(b, modeSSE, ProviderOpenAI, k, 2, 1)
			ones, _ := usageOf(b, modeSSE, ProviderOpenAI, 1)
			if !usageEqual(whole, pieces) || !usageEqual(whole, ones) {
				t.Fatalf("variant %d: whole %+v, pieces of %d %+v, bytes %+v", i, whole, k, pieces, ones)
			}
			checkUsageBounds(t, whole, acc)
			whole.Bytes = 0
			if i == 0 {
				first = whole
			} else if !bytes.Contains(body, []byte("\r")) && !usageEqual(first, whole) {
				// Without CR in the original, every variant has the same lines.
				t.Fatalf("line ends change the usage: LF %+v, variant %d %+v", first, i, whole)
			}
		}
	})
}

// plainCount parses a JSON number written as plain non-negative digits
// (fewer than 19).
func plainCount(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || len(raw) > 18 {
		return 0, false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	return v, err == nil
}

// usageEqual compares usages, errors by value.
func usageEqual(a, b Usage) bool {
	ae, be := a.Err, b.Err
	a.Err, b.Err = nil, nil
	if a != b || (ae == nil) != (be == nil) {
		return false
	}
	return ae == nil || *ae == *be
}

func checkUsageBounds(t *testing.T, u Usage, acc usageAcc) {
	t.Helper()
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadTokens < 0 || u.CacheWriteTokens < 0 {
		t.Fatalf("negative count: %+v", u)
	}
	if u.Err != nil && (len(u.Err.Type) > errFieldMax || len(u.Err.Code) > errFieldMax || len(u.Err.Message) > errMsgMax) {
		t.Fatalf("unbounded error: %+v", u.Err)
	}
	if acc.rootTypeN > errFieldMax || acc.errMsgN > errMsgMax {
		t.Fatalf("buffer overrun: %+v", acc)
	}
}
