package llmhttp

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
)

// peekLimit is how much of an error body [Classify] reads (llm-wire §5.7).
const peekLimit = 64 << 10

// errorBody is what [Classify] learned from the first bytes of an error
// body. The zero errorBody means "nothing": the body was empty, not JSON,
// truncated or unreadable.
type errorBody struct {
	// typ is error.type (Anthropic, OpenAI), or the top-level type of an
	// error object without an "error" member (Mistral).
	typ string
	// code is error.code as text: a string ("insufficient_quota"), a
	// number (429) or a numeric string ("1300") all read the same.
	code string
	// message is error.message, or the top-level message (Mistral), or
	// "error" itself when it is a string.
	message string
	// status is Gemini's error.status ("RESOURCE_EXHAUSTED", "UNAVAILABLE").
	status string
	// errorCode is Anthropic's error.details.error_code.
	errorCode string
	// hasDetails is whether error.details is present and not null.
	hasDetails bool
	// perDay is whether a Gemini QuotaFailure violation's quotaId contains
	// "PerDay".
	perDay bool
	// anthropicShape is whether the body is Anthropic's envelope:
	// {"type":"error","error":{…}}.
	anthropicShape bool
}

// peekErrorBody returns what resp's body says, reading at most peekLimit
// bytes of it and putting them back (see [peekedBody]). When resp.Body is
// already a peekedBody, it returns what that one decoded, without reading.
func peekErrorBody(resp *http.Response) errorBody {
	switch body := resp.Body.(type) {
	case nil:
		return errorBody{}
	case *peekedBody:
		return body.info
	default:
		if body == http.NoBody || resp.ContentLength == 0 {
			return errorBody{}
		}
	}
	pb := &peekedBody{rc: resp.Body}
	pb.buf, pb.err = readPrefix(resp.Body, resp.ContentLength)
	pb.info = decodeErrorBody(pb.buf)
	if len(pb.buf) == 0 {
		pb.buf = nil
	}
	resp.Body = pb
	return pb.info
}

// readPrefix reads from r until it has peekLimit bytes, or contentLength
// bytes when that is known and smaller, or r returns an error (io.EOF
// included), which it returns with what it read. Stopping at contentLength
// means a server that stalls after the last byte of its error body does not
// stall Classify. Like bufio, it gives up with io.ErrNoProgress on a Reader
// that keeps returning nothing and no error.
func readPrefix(r io.Reader, contentLength int64) ([]byte, error) {
	limit, size := peekLimit, 512
	if contentLength > 0 && contentLength < peekLimit {
		limit, size = int(contentLength), int(contentLength)
	}
	buf := make([]byte, 0, size)
	for empty := 0; len(buf) < limit; {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		end := min(cap(buf), limit)
		n, err := r.Read(buf[len(buf):end])
		if n < 0 || n > end-len(buf) {
			return buf, io.ErrNoProgress // a broken Reader; stop rather than panic
		}
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			return buf, io.ErrNoProgress
		}
	}
	return buf, nil
}

// peekedBody is a response body [Classify] has read the start of: it
// replays buf, then returns err if the peek ended with one (io.EOF or a read
// error), else continues with the original body rc. It also keeps what was
// decoded from buf, so that Classify called again on the same response does
// not read or decode anything.
//
// Read must not be called concurrently with itself (as for any body); Close
// may be called concurrently with Read and closes rc exactly once.
type peekedBody struct {
	rc     io.ReadCloser
	buf    []byte
	off    int
	err    error
	closed atomic.Bool
	info   errorBody
}

func (b *peekedBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.off < len(b.buf) {
		n := copy(p, b.buf[b.off:])
		b.off += n
		if b.off == len(b.buf) {
			b.buf, b.off = nil, 0 // replayed: let the buffer go
		}
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.rc.Read(p)
}

func (b *peekedBody) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	return b.rc.Close()
}

// decodeErrorBody decodes an error body: an object, or an array of objects
// (Gemini's OpenAI-compatible endpoint), of which the first counts. Anything
// that is not valid JSON — a truncated body included — gives the zero
// errorBody. encoding/json checks the whole input before decoding, so a
// syntax error never leaves a half-decoded value behind; values of an
// unexpected type are skipped.
func decodeErrorBody(buf []byte) errorBody {
	var eb errorBody
	i := 0
	for i < len(buf) && isJSONSpace(buf[i]) {
		i++
	}
	if i == len(buf) || (buf[i] != '{' && buf[i] != '[') {
		return eb
	}
	var w wireBody
	if buf[i] == '[' {
		var arr []wireBody
		if json.Unmarshal(buf, &arr) != nil || len(arr) == 0 {
			return eb
		}
		w = arr[0]
	} else if json.Unmarshal(buf, &w) != nil {
		return eb
	}
	e := w.Error
	eb.typ, eb.code, eb.message, eb.status = string(e.Type), string(e.Code), string(e.Message), string(e.Status)
	if !e.present {
		// No "error" member: the object itself is the error (Mistral).
		if w.Type != "error" {
			eb.typ = string(w.Type)
		}
		eb.code, eb.message = string(w.Code), string(w.Message)
	}
	eb.errorCode, eb.hasDetails, eb.perDay = e.Details.errorCode, e.Details.present, e.Details.perDay
	eb.anthropicShape = w.Type == "error" && e.present
	return eb
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// wireBody is the top level of an error body.
type wireBody struct {
	Type    jsonText  `json:"type"`
	Error   wireError `json:"error"`
	Message jsonText  `json:"message"`
	Code    jsonText  `json:"code"`
}

// wireError is the "error" member: an object, or a bare string (some
// gateways), which is taken as the message.
type wireError wireErrorFields

type wireErrorFields struct {
	present bool
	Type    jsonText    `json:"type"`
	Code    jsonText    `json:"code"`
	Message jsonText    `json:"message"`
	Status  jsonText    `json:"status"`
	Details wireDetails `json:"details"`
}

func (e *wireError) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '{':
		var f wireErrorFields
		_ = json.Unmarshal(b, &f) // type mismatches are skipped
		*e = wireError(f)
		e.present = true
	case len(b) > 0 && b[0] == '"':
		var s string
		if json.Unmarshal(b, &s) == nil {
			*e = wireError{present: true, Message: jsonText(s)}
		}
	}
	return nil
}

// wireDetails is error.details: Anthropic's object ({"error_code":…}) or
// Google's array of typed details (QuotaFailure, RetryInfo, …).
type wireDetails struct {
	present   bool
	errorCode string
	perDay    bool
}

func (d *wireDetails) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	d.present = true
	switch b[0] {
	case '{':
		var o struct {
			ErrorCode jsonText `json:"error_code"`
		}
		_ = json.Unmarshal(b, &o)
		d.errorCode = string(o.ErrorCode)
	case '[':
		var arr []struct {
			Violations []struct {
				QuotaID jsonText `json:"quotaId"`
			} `json:"violations"`
		}
		_ = json.Unmarshal(b, &arr)
		for _, det := range arr {
			for _, v := range det.Violations {
				if containsFold(string(v.QuotaID), "PerDay") {
					d.perDay = true
				}
			}
		}
	}
	return nil
}

// jsonText is a JSON string, or a number kept as its literal text; any other
// JSON value reads as "". It never fails to decode.
type jsonText string

func (t *jsonText) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0:
	case b[0] == '"' && len(b) >= 2 && bytes.IndexByte(b, '\\') < 0:
		*t = jsonText(b[1 : len(b)-1]) // no escapes: the text between the quotes
	case b[0] == '"':
		var s string
		if json.Unmarshal(b, &s) == nil {
			*t = jsonText(s)
		}
	case b[0] == '-' || ('0' <= b[0] && b[0] <= '9'):
		*t = jsonText(b)
	}
	return nil
}

// parseNonNegFloat parses a finite, non-negative decimal number.
func parseNonNegFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return f, true
}
