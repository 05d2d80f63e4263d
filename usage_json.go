package llmhttp

import (
	"bytes"
	"strconv"
)

// This file is the JSON half of the usage tap (see [TapUsage]): a push
// lexer that reads a JSON document in pieces of any size, byte for byte,
// without buffering it, and picks out the few values usage accounting
// needs. Its memory is a fixed-size struct whatever the document's length or
// depth: a value is never kept, only counted (text) or, for a handful of
// short error strings, copied into fixed arrays and truncated.

// Lexer states.
const (
	lexValue   uint8 = iota // a value is expected
	lexKey                  // a key or '}' is expected
	lexColon                // ':' is expected
	lexAfter                // after a value: ',' or a closing bracket
	lexString               // inside a string
	lexNumber               // inside a number
	lexLiteral              // inside true, false or null
	lexDone                 // the top-level value is complete
	lexBroken               // not JSON: the rest is ignored
)

// Container classes: where an object sits in the document, as far as usage
// is concerned. Arrays and everything else are clsOther.
const (
	clsOther      uint8 = iota
	clsRoot             // the top-level object
	clsMessage          // root.message: Anthropic's message_start
	clsResponse         // root.response: OpenAI Responses API events
	clsUsage            // a usage object that reports final counts
	clsUsageStart       // root.message.usage: message_start's counts so far
	clsDetails          // usage.prompt_tokens_details / input_tokens_details
	clsError            // root.error (or root.response.error)
)

// clsArray marks a container on the lexer's stack as an array.
const clsArray = 0x80

// Member keys the lexer tells apart; every other key is keyOther.
const (
	keyOther uint8 = iota
	keyUsage
	keyMessage
	keyResponse
	keyError
	keyType
	keyCode
	keyInput      // input_tokens
	keyOutput     // output_tokens
	keyCacheWrite // cache_creation_input_tokens
	keyCacheRead  // cache_read_input_tokens
	keyPrompt     // prompt_tokens
	keyCompletion // completion_tokens
	keyCached     // cached_tokens
	keyDetails    // prompt_tokens_details, input_tokens_details
	keyText       // text, content, partial_json, thinking, arguments, reasoning_content, delta
)

// keyID returns the id of a member key.
func keyID(k []byte) uint8 {
	switch string(k) {
	case "usage":
		return keyUsage
	case "message":
		return keyMessage
	case "response":
		return keyResponse
	case "error":
		return keyError
	case "type":
		return keyType
	case "code":
		return keyCode
	case "input_tokens":
		return keyInput
	case "output_tokens":
		return keyOutput
	case "cache_creation_input_tokens":
		return keyCacheWrite
	case "cache_read_input_tokens":
		return keyCacheRead
	case "prompt_tokens":
		return keyPrompt
	case "completion_tokens":
		return keyCompletion
	case "cached_tokens":
		return keyCached
	case "prompt_tokens_details", "input_tokens_details":
		return keyDetails
	case "text", "content", "partial_json", "thinking", "arguments", "reasoning_content", "delta":
		return keyText
	}
	return keyOther
}

// Where a string value goes.
const (
	dstNone     uint8 = iota
	dstText           // counted, as generated text
	dstRootType       // the top-level "type" of an SSE event's data
	dstErrType        // error.type
	dstErrCode        // error.code
	dstErrMsg         // error.message
)

// Sizes of the fixed buffers.
const (
	lexMaxDepth  = 32  // containers whose class is tracked; deeper ones are clsOther
	lexKeyMax    = 32  // longer keys are keyOther
	errFieldMax  = 64  // error.type, error.code and the event type are truncated to this
	errMsgMax    = 256 // error.message is truncated to this
	numMaxDigits = 18  // a count with more digits saturates
)

// usageAcc accumulates what the lexer found in a body (for a stream, over
// all its events). Counts are -1 until seen; a later value replaces an
// earlier one (Anthropic's message_delta usage is cumulative).
type usageAcc struct {
	input, output, outputStart  int64 // input_tokens; final output; message_start's output
	cacheWrite, cacheRead       int64 // Anthropic cache_creation / cache_read_input_tokens
	prompt, cached              int64 // OpenAI prompt_tokens; *_tokens_details.cached_tokens
	textBytes                   int64 // bytes of generated text seen
	anthropic                   bool  // Anthropic-only keys were seen
	errSeen                     bool  // an error object or event was seen
	errType, errCode            [errFieldMax]byte
	errMsg                      [errMsgMax]byte
	errTypeN, errCodeN, errMsgN uint16
	rootType                    [errFieldMax]byte // the current event's top-level "type"
	rootTypeN                   uint16
	errCapture                  bool // the error fields are being filled (the first error wins)
	jsonClosed                  bool // a JSON body's top-level value was closed
}

func (a *usageAcc) reset() {
	*a = usageAcc{input: -1, output: -1, outputStart: -1, cacheWrite: -1, cacheRead: -1, prompt: -1, cached: -1}
}

// usageLexer is the push lexer. The zero value is ready to read a document.
type usageLexer struct {
	state uint8
	depth int
	stack [lexMaxDepth]uint8 // class (| clsArray) of containers 1..lexMaxDepth
	key   uint8              // the current member's key in the innermost object

	// A string being read.
	strKey bool  // it is a key
	strDst uint8 // where a value goes
	esc    uint8 // 0; 1 after '\'; 2–5 while the hex digits of \u are read
	kbuf   [lexKeyMax]byte
	klen   uint8
	kbad   bool // the key is too long or escaped: keyOther

	// A number being read.
	num       int64
	numDigits uint8
	numNeg    bool
	numFrac   bool // after '.', 'e' or 'E': the rest is not counted
	numKey    uint8
	numCls    uint8
}

// top returns the innermost container's class (with clsArray), or clsOther
// with ok false at depth 0.
func (l *usageLexer) top() (uint8, bool) {
	if l.depth == 0 {
		return 0, false
	}
	if l.depth > lexMaxDepth {
		return clsOther, true
	}
	return l.stack[l.depth-1], true
}

// feed lexes p, recording what it finds in a.
func (l *usageLexer) feed(p []byte, a *usageAcc) {
	for i := 0; i < len(p); {
		switch l.state {
		case lexString:
			i = l.str(p, i, a)
		case lexNumber:
			i = l.number(p, i, a)
		case lexLiteral:
			for i < len(p) && !isDelim(p[i]) {
				i++
			}
			if i < len(p) {
				l.state = lexAfter
			}
		case lexDone, lexBroken:
			return
		default:
			c := p[i]
			i++
			if !isSpace(c) {
				l.structural(c, a)
			}
		}
	}
}

// structural handles a byte outside strings, numbers and literals.
func (l *usageLexer) structural(c byte, a *usageAcc) {
	switch l.state {
	case lexValue:
		if c == ']' {
			if cls, ok := l.top(); ok && cls&clsArray != 0 {
				l.pop(a) // an empty array, or a trailing comma
				return
			}
		}
		l.value(c, a)
	case lexKey:
		switch c {
		case '"':
			l.state, l.strKey, l.klen, l.kbad = lexString, true, 0, false
		case '}':
			l.pop(a)
		default:
			l.state = lexBroken
		}
	case lexColon:
		if c != ':' {
			l.state = lexBroken
			return
		}
		l.state = lexValue
	case lexAfter:
		cls, ok := l.top()
		switch {
		case !ok:
			l.state = lexBroken
		case c == ',':
			if cls&clsArray != 0 {
				l.state = lexValue
			} else {
				l.state = lexKey
			}
		case c == '}' && cls&clsArray == 0, c == ']' && cls&clsArray != 0:
			l.pop(a)
		default:
			l.state = lexBroken
		}
	}
}

// value starts the value whose first byte is c.
func (l *usageLexer) value(c byte, a *usageAcc) {
	parent, nested := l.top()
	key := keyOther
	if nested && parent&clsArray == 0 {
		key = l.key
	}
	switch {
	case c == '{':
		cls := clsRoot
		if nested {
			cls = childClass(parent, key)
		}
		if cls == clsError && !a.errSeen {
			a.errSeen, a.errCapture = true, true
		}
		l.push(cls)
		l.state = lexKey
	case c == '[':
		l.push(clsOther | clsArray)
		l.state = lexValue
	case c == '"':
		l.state, l.strKey, l.strDst = lexString, false, stringDst(parent, key, a)
	case c == '-' || '0' <= c && c <= '9':
		l.state = lexNumber
		l.num, l.numDigits, l.numNeg, l.numFrac = 0, 0, c == '-', false
		l.numKey, l.numCls = key, parent
		if c != '-' {
			l.num, l.numDigits = int64(c-'0'), 1
		}
	case c == 't' || c == 'f' || c == 'n':
		l.state = lexLiteral
	default:
		l.state = lexBroken
	}
}

// childClass returns the class of an object that is the value of key in a
// container of class parent.
func childClass(parent, key uint8) uint8 {
	switch parent {
	case clsRoot:
		switch key {
		case keyUsage:
			return clsUsage
		case keyMessage:
			return clsMessage
		case keyResponse:
			return clsResponse
		case keyError:
			return clsError
		}
	case clsMessage:
		if key == keyUsage {
			return clsUsageStart
		}
	case clsResponse:
		switch key {
		case keyUsage:
			return clsUsage
		case keyError:
			return clsError
		}
	case clsUsage, clsUsageStart:
		if key == keyDetails {
			return clsDetails
		}
	}
	return clsOther
}

// stringDst returns where the string value of key in a container of class
// parent goes.
func stringDst(parent, key uint8, a *usageAcc) uint8 {
	switch {
	case parent == clsError && a.errCapture:
		switch key {
		case keyType:
			a.errTypeN = 0
			return dstErrType
		case keyCode:
			a.errCodeN = 0
			return dstErrCode
		case keyMessage:
			a.errMsgN = 0
			return dstErrMsg
		}
	case parent == clsRoot && key == keyType:
		a.rootTypeN = 0
		return dstRootType
	case key == keyText && parent != clsUsage && parent != clsUsageStart && parent != clsError:
		return dstText
	}
	return dstNone
}

func (l *usageLexer) push(cls uint8) {
	if l.depth < lexMaxDepth {
		l.stack[l.depth] = cls
	}
	l.depth++
}

func (l *usageLexer) pop(a *usageAcc) {
	if cls, _ := l.top(); cls == clsError {
		a.errCapture = false
	}
	l.depth--
	if l.depth == 0 {
		l.state = lexDone
		a.jsonClosed = true
		return
	}
	l.state = lexAfter
}

// str reads string bytes from p[i:]; it returns where it stopped. It
// looks for the closing quote once per string (not once per escape), so a
// string full of escapes is read in linear time.
func (l *usageLexer) str(p []byte, i int, a *usageAcc) int {
	q := -1 // index in p of the next '"' at or after i; len(p) when none
	for i < len(p) {
		if l.esc != 0 {
			c := p[i]
			i++
			switch {
			case l.esc == 1 && c == 'u':
				l.esc = 5
				u := [2]byte{'\\', 'u'}
				l.put(u[:], a)
			case l.esc == 1:
				l.esc = 0
				l.putEscaped(c, a)
			default: // a hex digit of \uXXXX
				if l.esc--; l.esc == 1 {
					l.esc = 0
				}
				l.put(p[i-1:i], a)
			}
			continue
		}
		if q < i {
			q = len(p)
			if k := bytes.IndexByte(p[i:], '"'); k >= 0 {
				q = i + k
			}
		}
		if bs := bytes.IndexByte(p[i:q], '\\'); bs >= 0 {
			l.put(p[i:i+bs], a)
			i += bs + 1
			l.esc = 1
			if l.strKey {
				l.kbad = true
			}
			continue
		}
		l.put(p[i:q], a)
		if q == len(p) {
			return len(p)
		}
		l.endString(a)
		return q + 1
	}
	return i
}

// put takes the unescaped bytes b of the current string.
func (l *usageLexer) put(b []byte, a *usageAcc) {
	if len(b) == 0 {
		return
	}
	if l.strKey {
		if int(l.klen)+len(b) > lexKeyMax {
			l.kbad = true
			return
		}
		l.klen += uint8(copy(l.kbuf[l.klen:], b))
		return
	}
	switch l.strDst {
	case dstText:
		a.textBytes += int64(len(b))
	case dstRootType:
		a.rootTypeN += uint16(copy(a.rootType[a.rootTypeN:], b))
	case dstErrType:
		a.errTypeN += uint16(copy(a.errType[a.errTypeN:], b))
	case dstErrCode:
		a.errCodeN += uint16(copy(a.errCode[a.errCodeN:], b))
	case dstErrMsg:
		a.errMsgN += uint16(copy(a.errMsg[a.errMsgN:], b))
	}
}

// putEscaped takes the character of the escape \c.
func (l *usageLexer) putEscaped(c byte, a *usageAcc) {
	switch c {
	case 'n', 'r', 't', 'b', 'f':
		c = ' '
	}
	b := [1]byte{c}
	l.put(b[:], a)
}

// endString ends the current string at its closing quote.
func (l *usageLexer) endString(a *usageAcc) {
	if l.strKey {
		l.key = keyOther
		if !l.kbad {
			l.key = keyID(l.kbuf[:l.klen])
		}
		l.state = lexColon
		return
	}
	l.state = lexAfter
}

// number reads number bytes from p[i:]; it returns where it stopped (at the
// delimiter that ends the number, which is not consumed).
func (l *usageLexer) number(p []byte, i int, a *usageAcc) int {
	for ; i < len(p); i++ {
		c := p[i]
		switch {
		case '0' <= c && c <= '9':
			if l.numFrac {
				continue
			}
			if l.numDigits >= numMaxDigits {
				l.num = 1e18 // saturated: no real count is this large
				continue
			}
			l.num = l.num*10 + int64(c-'0')
			l.numDigits++
		case c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-':
			l.numFrac = true
		default:
			l.endNumber(a)
			l.state = lexAfter
			return i
		}
	}
	return i
}

// endNumber records a complete number where it belongs.
func (l *usageLexer) endNumber(a *usageAcc) {
	if l.numNeg || l.numDigits == 0 {
		return
	}
	v := l.num
	switch l.numCls {
	case clsUsage, clsUsageStart:
		switch l.numKey {
		case keyInput:
			a.input = v
		case keyOutput:
			if l.numCls == clsUsage {
				a.output = v
			} else {
				a.outputStart = v
			}
		case keyCacheWrite:
			a.cacheWrite, a.anthropic = v, true
		case keyCacheRead:
			a.cacheRead, a.anthropic = v, true
		case keyPrompt:
			a.prompt = v
		case keyCompletion:
			if l.numCls == clsUsage {
				a.output = v
			}
		}
	case clsDetails:
		if l.numKey == keyCached {
			a.cached = v
		}
	case clsError:
		if l.numKey == keyCode && a.errCapture {
			a.errCodeN = uint16(len(strconv.AppendInt(a.errCode[:0], v, 10)))
		}
	}
}
