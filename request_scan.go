package llmhttp

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// bodyScan is what scanBody found in a JSON request body.
type bodyScan struct {
	// model, stream and maxTokens are the top-level "model", "stream" and
	// the largest of "max_tokens", "max_completion_tokens" and
	// "max_output_tokens". The last occurrence of a duplicated key wins, as
	// in encoding/json.
	model     string
	stream    bool
	maxTokens int64
	// fast reports a top-level "speed": "fast": Anthropic's fast mode,
	// whose token limits are separate from the model's standard ones.
	fast bool
	// textBytes is the length of every string value in the body (escapes
	// as written), except base64 payloads and the top-level "model".
	textBytes int64
	// blobs counts base64 payloads: "data" or "file_data" values that look
	// like base64, and "data:" URLs.
	blobs int64
	// complete reports that the top-level object was closed.
	complete bool
}

// blobTokens is the input tokens a base64 attachment is assumed to cost:
// about the most an image costs on Anthropic ((1092×1092)/750 ≈ 1600).
// Attachments are not counted by their size, which says little about their
// tokens; the pacer's learned input ratio corrects the estimate for a
// workload of large documents.
const blobTokens = 1600

// charsPerToken is the default text-to-token ratio of both providers'
// guidance ("about 4 characters per token").
const charsPerToken = 4

// inputTokens returns the estimated input tokens of the scanned body.
func (s *bodyScan) inputTokens() int64 {
	return (s.textBytes+charsPerToken-1)/charsPerToken + s.blobs*blobTokens
}

// scanMaxDepth is how deep scanBody tracks which containers are objects;
// deeper strings are all counted as values.
const scanMaxDepth = 64

// scanBody scans a JSON body in one pass, without decoding it. It never
// fails: on malformed or truncated input it returns what it found so far
// (complete false). It costs about one bytes.IndexByte per string plus a
// byte loop over what lies between strings, so a body of long prompts or of
// base64 images is scanned at memchr speed.
func scanBody(b []byte) (s bodyScan) {
	var maxes [3]int64 // max_tokens, max_completion_tokens, max_output_tokens
	scanObject(b, &s, &maxes)
	s.maxTokens = max(maxes[0], maxes[1], maxes[2])
	return s
}

// scanObject is scanBody but for maxTokens, whose candidates it leaves in
// maxes. (Its state is plain locals, which the compiler keeps in
// registers: no closure captures them.)
func scanObject(b []byte, s *bodyScan, maxes *[3]int64) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	var (
		objects  [scanMaxDepth]bool // objects[d] reports container d+1 is an object
		depth    int
		expKey   bool   // the next string is a key
		key      []byte // the key of the value being read, at the current depth
		topValue bool   // the value being read is a direct member of the top-level object
	)
	for i < len(b) {
		switch c := b[i]; c {
		case '{', '[':
			if topValue {
				scanTop(s, maxes, key, nil, nil, false)
			}
			if depth < scanMaxDepth {
				objects[depth] = c == '{'
			}
			depth++
			expKey = c == '{'
			topValue = false
			i++
		case '}', ']':
			depth--
			i++
			if depth <= 0 {
				s.complete = depth == 0
				return
			}
			expKey, topValue = false, false
		case ',':
			expKey = depth > 0 && depth <= scanMaxDepth && objects[depth-1] // in an object
			topValue = false
			i++
		case ':':
			expKey = false
			topValue = depth == 1
			i++
		case '"':
			end := stringEnd(b, i+1)
			if end < 0 {
				// Truncated (a body read only in part): what there is of the
				// value still counts.
				if !expKey {
					if isBlob(key, b[i+1:]) {
						s.blobs++
					} else {
						s.textBytes += int64(len(b) - i - 1)
					}
				}
				return
			}
			str := b[i+1 : end]
			i = end + 1
			if expKey {
				key = str
				expKey = false
				continue
			}
			switch {
			case topValue && (string(key) == "model" || string(key) == "stream" || string(key) == "speed" || isMaxKey(key)):
				scanTop(s, maxes, key, nil, str, true)
			case isBlob(key, str):
				s.blobs++
			default:
				s.textBytes += int64(len(str))
			}
			topValue = false
		default:
			if isSpace(c) {
				i++
				continue
			}
			// A number or a literal: up to the next delimiter.
			j := i + 1
			for j < len(b) && !isDelim(b[j]) {
				j++
			}
			if topValue {
				scanTop(s, maxes, key, b[i:j], nil, false)
			}
			topValue = false
			i = j
		}
	}
}

// scanTop records the value of the top-level member key: lit is a number
// or literal, str a string's contents (isStr); both nil for an object or
// array.
func scanTop(s *bodyScan, maxes *[3]int64, key, lit, str []byte, isStr bool) {
	switch string(key) {
	case "model":
		s.model = ""
		if isStr {
			s.model = modelString(str)
		}
	case "stream":
		s.stream = string(lit) == "true"
	case "speed":
		s.fast = isStr && string(str) == "fast"
	case "max_tokens":
		maxes[0] = parseCount(lit)
	case "max_completion_tokens":
		maxes[1] = parseCount(lit)
	case "max_output_tokens":
		maxes[2] = parseCount(lit)
	}
}

// isMaxKey reports whether key names an output-token limit.
func isMaxKey(key []byte) bool {
	switch string(key) {
	case "max_tokens", "max_completion_tokens", "max_output_tokens":
		return true
	}
	return false
}

// stringEnd returns the index of the quote closing the JSON string whose
// contents start at b[i], or -1 when the string is not closed.
func stringEnd(b []byte, i int) int {
	for i <= len(b) {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1
		}
		q := i + j
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		i = q + 1
	}
	return -1
}

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isDelim reports whether c ends a JSON number or literal.
func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ':' || c == '"' || c == '{' || c == '[' || isSpace(c)
}

// skipSpace returns the index of the first non-space byte of b at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// jsonString returns the value of the JSON string whose contents (between
// the quotes) are raw; "" when they are not a valid string.
func jsonString(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw)
	}
	return jsonUnquote(raw)
}

// modelString is jsonString for the model, interned (see internModel).
// Model names are short and ASCII, which one loop checks for before the
// general test.
func modelString(raw []byte) string {
	plain := true
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain || bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return internModel(raw)
	}
	return jsonUnquote(raw)
}

// jsonUnquote decodes the contents of a JSON string with escapes; "" when
// they are not a valid string.
func jsonUnquote(raw []byte) string {
	q := make([]byte, 0, len(raw)+2)
	q = append(q, '"')
	q = append(q, raw...)
	q = append(q, '"')
	var v string
	if json.Unmarshal(q, &v) != nil {
		return ""
	}
	return v
}

// parseCount parses a JSON number as a non-negative count: fractions are
// truncated, negative and invalid numbers are 0, huge ones saturate.
func parseCount(lit []byte) int64 {
	if len(lit) > 0 && len(lit) <= 18 {
		// The common case, plain digits (eighteen cannot overflow), without
		// strconv; anything else is left to it.
		var n int64
		for _, c := range lit {
			if c < '0' || c > '9' {
				n = -1
				break
			}
			n = n*10 + int64(c-'0')
		}
		if n >= 0 {
			return n
		}
	}
	if n, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
		return max(n, 0)
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	switch {
	case err != nil && !isRangeErr(err), math.IsNaN(f), f <= 0:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(f)
}

// isRangeErr reports whether err is strconv's "value out of range", whose
// result is still the saturated value.
func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// isBlob reports whether the string value str of key is base64 data rather
// than text: a "data:" URL (OpenAI image_url, file_data), or a "data",
// "file_data" or "b64_json" value (Anthropic image and PDF sources, OpenAI
// input_audio) whose first bytes are base64. A "data" that reads as text
// (Anthropic's plain-text document source) counts as text.
func isBlob(key, str []byte) bool {
	if len(str) > 5 && string(str[:5]) == "data:" {
		return true
	}
	switch string(key) {
	case "data", "file_data", "b64_json":
	default:
		return false
	}
	if len(str) < 64 {
		return false
	}
	for _, c := range str[:64] {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// collectorPool recycles describe's body collectors and their buffers, so
// describing a request allocates nothing for its body. (A sync.Pool is a
// cache, not state: nothing depends on what it holds.)
var collectorPool = sync.Pool{New: func() any { return new(bodyCollector) }}

// collectorKeep bounds the buffer a collector keeps when it goes back to
// the pool.
const collectorKeep = 256 << 10

func getCollector() *bodyCollector { return collectorPool.Get().(*bodyCollector) }

func putCollector(c *bodyCollector) {
	buf := c.buf[:0]
	if cap(buf) > collectorKeep {
		buf = nil
	}
	*c = bodyCollector{buf: buf}
	collectorPool.Put(c)
}
