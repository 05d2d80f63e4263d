package llmhttp

import (
	"bytes"
	"strings"
)

// This file frames a response body for the usage lexer: it tells JSON from
// server-sent events, and for events splits lines (LF, CR or CRLF, in any
// chunking), keeps the event name, hands every data line to the lexer and
// resets it between events, as the WHATWG EventSource parser does. Like the
// lexer it holds a fixed-size state: a line is never buffered.

// Body modes.
const (
	modeSniff uint8 = iota // nothing significant read yet
	modeJSON
	modeSSE
)

// Line states of the event parser.
const (
	sseLineStart uint8 = iota // at the start of a line
	sseField                  // reading a field name
	sseSpace                  // after "field:", an optional space
	sseValue                  // reading a field's value
)

// Field kinds.
const (
	fieldOther uint8 = iota
	fieldData
	fieldEvent
)

// Sizes of the event parser's buffers.
const (
	sseFieldMax = 5  // "event"; longer names are fieldOther
	sseNameMax  = 32 // longer event names are kept truncated
	sseDoneLen  = 6  // len("[DONE]")
)

// usageParser reads a whole response body: the mode, the event framing and
// the lexer. The zero value, after reset, is ready.
type usageParser struct {
	mode  uint8
	lex   usageLexer
	acc   usageAcc
	bytes int64

	// Event framing.
	line   uint8
	cr     bool // the last byte was '\r': a '\n' right after it is part of the same line end
	field  [sseFieldMax]byte
	flen   uint8
	fkind  uint8
	fbad   bool
	name   [sseNameMax]byte
	nameN  uint8
	data   bool // the event has had a data line
	dataN  int64
	head   [sseDoneLen]byte // the first bytes of the event's data
	events int64

	terminal bool // the stream's closing event was seen
}

func (p *usageParser) reset(mode uint8) {
	*p = usageParser{mode: mode}
	p.acc.reset()
}

// feed parses the next bytes of the body.
func (p *usageParser) feed(b []byte) {
	p.bytes += int64(len(b))
	if p.mode == modeSniff {
		i := 0
		for i < len(b) && (isSpace(b[i]) || b[i] == 0xEF || b[i] == 0xBB || b[i] == 0xBF) {
			i++ // whitespace, and a UTF-8 byte order mark
		}
		if i == len(b) {
			return
		}
		p.mode = modeSSE
		if b[i] == '{' || b[i] == '[' {
			p.mode = modeJSON
		}
		b = b[i:]
	}
	if p.mode == modeJSON {
		p.lex.feed(b, &p.acc)
		return
	}
	p.sse(b)
}

// sse parses event-stream bytes.
func (p *usageParser) sse(b []byte) {
	nextCR := -1 // index of the next '\r' at or after i; len(b) when none
	for i := 0; i < len(b); {
		c := b[i]
		if p.cr {
			p.cr = false
			if c == '\n' {
				i++
				continue
			}
		}
		switch p.line {
		case sseLineStart:
			switch c {
			case '\n', '\r':
				p.dispatch()
				p.cr = c == '\r'
				i++
				continue
			case ':': // a comment
				p.line, p.fkind = sseValue, fieldOther
				i++
				continue
			}
			p.line, p.flen, p.fbad = sseField, 0, false
		case sseField:
			switch c {
			case ':':
				p.line = sseSpace
				p.startValue()
				i++
			case '\n', '\r':
				p.startValue() // a field with an empty value
				p.endLine()
				p.cr = c == '\r'
				i++
			default:
				if p.flen < sseFieldMax {
					p.field[p.flen] = c
					p.flen++
				} else {
					p.fbad = true
				}
				i++
			}
		case sseSpace:
			p.line = sseValue
			if c == ' ' {
				i++
			}
		case sseValue:
			if nextCR < i {
				nextCR = len(b)
				if k := bytes.IndexByte(b[i:], '\r'); k >= 0 {
					nextCR = i + k
				}
			}
			end := nextCR
			if k := bytes.IndexByte(b[i:end], '\n'); k >= 0 {
				end = i + k
			}
			p.value(b[i:end])
			i = end
			if i < len(b) {
				p.endLine()
				p.cr = b[i] == '\r'
				i++
			}
		}
	}
}

// startValue classifies the field just named, before its value.
func (p *usageParser) startValue() {
	p.fkind = fieldOther
	if p.fbad {
		return
	}
	switch string(p.field[:p.flen]) {
	case "data":
		p.fkind = fieldData
		if p.data {
			nl := [1]byte{'\n'}
			p.lex.feed(nl[:], &p.acc) // data lines are joined with LF
		}
		p.data = true
	case "event":
		p.fkind = fieldEvent
		p.nameN = 0
	}
}

// value takes a piece of the current field's value.
func (p *usageParser) value(v []byte) {
	switch p.fkind {
	case fieldData:
		if p.dataN < sseDoneLen {
			copy(p.head[p.dataN:], v)
		}
		p.dataN += int64(len(v))
		p.lex.feed(v, &p.acc)
	case fieldEvent:
		p.nameN += uint8(copy(p.name[p.nameN:], v))
	}
}

// endLine ends a line that was not blank.
func (p *usageParser) endLine() {
	p.line = sseLineStart
	if p.fkind == fieldData && p.dataN > 0 {
		p.dataN++ // the LF that joins it to a next data line
	}
}

// dispatch ends the current event (at a blank line, or at the end of the
// body).
func (p *usageParser) dispatch() {
	p.line = sseLineStart
	if !p.data && p.nameN == 0 {
		return // nothing since the last event: a stray blank line
	}
	p.events++
	name := p.name[:p.nameN]
	typ := p.acc.rootType[:p.acc.rootTypeN]
	switch {
	case string(name) == "error" || string(typ) == "error":
		if !p.acc.errSeen {
			p.acc.errSeen = true // an error event without an error object
		}
	case string(name) == "message_stop" || string(typ) == "message_stop",
		string(typ) == "response.completed",
		p.dataN == sseDoneLen+1 && string(p.head[:]) == "[DONE]":
		p.terminal = true
	}
	p.lex = usageLexer{}
	p.acc.rootTypeN = 0
	p.acc.errCapture = false
	p.nameN, p.data, p.dataN = 0, false, 0
}

// finish ends the body: an event not closed by a blank line still counts.
func (p *usageParser) finish() {
	if p.mode == modeSSE && (p.data || p.nameN > 0) {
		if p.line == sseValue && p.fkind == fieldData && p.dataN > 0 {
			p.dataN++ // as if its line had ended
		}
		p.dispatch()
	}
}

// result returns the usage found so far, read as prov's dialect when the
// body itself does not tell.
func (p *usageParser) result(prov Provider) Usage {
	a := &p.acc
	u := Usage{Provider: prov, Stream: p.mode == modeSSE, Bytes: p.bytes}
	switch {
	case a.prompt >= 0: // OpenAI Chat Completions: prompt_tokens includes the cached part
		u.Provider = ProviderOpenAI
		u.InputTokens, u.HasInput = a.prompt, true
		u.CacheReadTokens = max(a.cached, 0)
	case a.input >= 0 && (a.anthropic || prov == ProviderAnthropic && a.cached < 0):
		// Anthropic: input_tokens excludes what was read from and written to
		// the cache.
		u.Provider = ProviderAnthropic
		u.CacheReadTokens, u.CacheWriteTokens = max(a.cacheRead, 0), max(a.cacheWrite, 0)
		u.InputTokens, u.HasInput = a.input+u.CacheReadTokens+u.CacheWriteTokens, true
	case a.input >= 0: // OpenAI Responses API: input_tokens includes the cached part
		u.Provider = ProviderOpenAI
		u.InputTokens, u.HasInput = a.input, true
		u.CacheReadTokens = max(a.cached, 0)
	}
	if a.output >= 0 {
		u.OutputTokens, u.HasOutput = a.output, true
	} else {
		u.OutputTokens = max(a.outputStart, (a.textBytes+charsPerOutputToken-1)/charsPerOutputToken, 0)
	}
	if u.Stream {
		u.Complete = p.terminal && !a.errSeen
	} else {
		u.Complete = a.jsonClosed && !a.errSeen
	}
	if a.errSeen {
		u.Err = newStreamError(string(a.errType[:a.errTypeN]), string(a.errCode[:a.errCodeN]), string(a.errMsg[:a.errMsgN]))
	}
	return u
}

// charsPerOutputToken converts generated text to an output estimate when
// the body does not report the count.
const charsPerOutputToken = 4

// newStreamError returns the error a body reported, classified.
func newStreamError(typ, code, msg string) *StreamError {
	return &StreamError{Type: typ, Code: code, Message: msg, Class: streamErrorClass(typ, code)}
}

// streamErrorClass classifies an error reported inside a successful
// response (llm-wire §1.4, §2.2): by Anthropic's error.type and OpenAI's
// error.type and error.code (a string, or a number for OpenRouter). An
// error it does not recognise is a server failure: the provider broke the
// response it had started.
func streamErrorClass(typ, code string) Class {
	has := func(s string) bool { return containsFold(typ, s) || containsFold(code, s) }
	switch {
	case has("overloaded"), typ == "service_unavailable_error", code == "503", code == "529":
		return ClassOverloaded
	case typ == "timeout_error", code == "timeout", code == "408", code == "504":
		return ClassTimeout
	case code == "slow_down":
		return ClassSlowDown
	case isBillingCode(typ), isBillingCode(code), code == "402":
		return ClassQuota
	case typ == "rate_limit_error", code == "rate_limit_exceeded", code == "429":
		return ClassRateLimited
	case typ == "authentication_error", typ == "permission_error", code == "401", code == "403":
		return ClassAuth
	case typ == "invalid_request_error", typ == "not_found_error", len(code) == 3 && strings.HasPrefix(code, "4"):
		return ClassClient
	}
	return ClassServer
}
