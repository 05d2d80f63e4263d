package llmhttp

import (
	"io"
	"net/http"
	"sync"
)

// Usage is the token usage a response reports in its body: the `usage`
// object of a non-streamed JSON reply, or of a stream's events (Anthropic's
// message_start and message_delta, OpenAI's final usage chunk, the
// Responses API's response.completed). The counts are the same whatever the
// provider: InputTokens is every prompt token, and the cache counts say
// which part of it was read from or written to the prompt cache.
type Usage struct {
	// Provider is the dialect the usage was read in: told by the keys
	// themselves (prompt_tokens is OpenAI's, cache_read_input_tokens
	// Anthropic's), else by the request.
	Provider Provider

	// InputTokens is every prompt token the provider processed, cache reads
	// and writes included: Anthropic's input_tokens +
	// cache_creation_input_tokens + cache_read_input_tokens, OpenAI's
	// prompt_tokens (or the Responses API's input_tokens).
	InputTokens int64
	// CacheReadTokens is the part of InputTokens read from the prompt
	// cache: Anthropic's cache_read_input_tokens, OpenAI's
	// prompt_tokens_details.cached_tokens (input_tokens_details).
	// Anthropic does not count them toward its input rate limit for most
	// models.
	CacheReadTokens int64
	// CacheWriteTokens is the part of InputTokens written to the prompt
	// cache: Anthropic's cache_creation_input_tokens; 0 for OpenAI.
	CacheWriteTokens int64
	// OutputTokens is the generated tokens: output_tokens or
	// completion_tokens as last reported (a stream's message_delta is
	// cumulative). When HasOutput is false it is an estimate: the larger of
	// message_start's early count and the generated text seen / 4.
	OutputTokens int64

	// HasInput reports that the body reported the input counts.
	HasInput bool
	// HasOutput reports that the body reported a final output count.
	HasOutput bool

	// Stream reports a server-sent event stream.
	Stream bool
	// Complete reports that the body reached its proper end: a JSON body
	// its closing brace, a stream its closing event (Anthropic
	// message_stop, OpenAI data: [DONE], Responses response.completed),
	// without an error. A body cut, failed or closed before that is
	// incomplete; its counts are what was seen.
	Complete bool
	// Err is the error the body reported after a successful head: an SSE
	// error event (Anthropic "event: error", OpenAI "data: {"error":…}"),
	// or a JSON body holding a top-level error object. nil when none.
	Err *StreamError
	// Bytes is the number of body bytes read.
	Bytes int64
}

// Tokens returns InputTokens + OutputTokens.
func (u Usage) Tokens() int64 { return u.InputTokens + u.OutputTokens }

// StreamError is an error reported inside a response whose head was a
// success: it arrives after the caller got the response, so it is observed
// (the breaker counts it, hooks see it) but never retried — the output was
// already consumed (design.md §6, llm-wire §1.4).
type StreamError struct {
	// Type is error.type ("overloaded_error", "server_error"); may be empty.
	Type string
	// Code is error.code (OpenAI), as text; may be empty.
	Code string
	// Message is error.message, truncated to 256 bytes.
	Message string
	// Class is what the error means: ClassOverloaded for an overload,
	// ClassServer for anything not recognised, ….
	Class Class
}

// Error returns "llmhttp: error in response body: <type or code>: <message>".
func (e *StreamError) Error() string {
	what := e.Type
	if what == "" {
		what = e.Code
	}
	if what == "" {
		what = e.Class.String()
	}
	if e.Message == "" {
		return "llmhttp: error in response body: " + what
	}
	return "llmhttp: error in response body: " + what + ": " + e.Message
}

// TapUsage replaces resp.Body with a reader that passes every byte through
// unchanged and, as the caller reads, picks up the body's [Usage]. fn is
// called exactly once, from the goroutine that reads to EOF, hits a read
// error, or closes the body, whichever comes first, outside any lock; a
// body closed or cut early reports what was seen, with Complete false.
// A response without a body (nil or [http.NoBody]) calls fn at once with a
// zero Usage.
//
// The tap buffers nothing: it reads the bytes the caller's Read returns, in
// place, with a state machine of fixed size (about 1 KiB per response,
// allocated once), so a stream of any length passes through with no added
// latency and no allocation per chunk. Its body is safe to Close
// concurrently with Read.
//
// llmhttp's layers share one tap per response: when resp.Body is already
// a tap, fn is added to it. fn must be fast: it runs before the Read or
// Close that ends the body returns.
func TapUsage(resp *http.Response, fn func(Usage)) {
	if resp == nil || resp.Body == nil || resp.Body == http.NoBody {
		fn(Usage{})
		return
	}
	if b, ok := resp.Body.(*usageBody); ok {
		b.subscribe(fn)
		return
	}
	b := &usageBody{rc: resp.Body, prov: ProviderOpenAI}
	if resp.Request != nil {
		b.prov = DetectProvider(resp.Request)
	}
	mode := modeSniff
	switch ct := resp.Header.Get("Content-Type"); {
	case isMediaType(ct, "text/event-stream"):
		mode = modeSSE
	case isMediaType(ct, "application/json"):
		mode = modeJSON
	}
	b.p.reset(mode)
	b.subs = b.first[:0]
	b.subs = append(b.subs, fn)
	resp.Body = b
}

// usageBody is the body TapUsage installs.
type usageBody struct {
	rc   io.ReadCloser
	prov Provider

	mu    sync.Mutex
	p     usageParser
	done  bool
	final Usage
	subs  []func(Usage)
	first [2]func(Usage)

	closeOnce sync.Once
	cerr      error
}

var _ io.ReadCloser = (*usageBody)(nil)

// Read implements io.Reader.
func (b *usageBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.mu.Lock()
		if !b.done {
			b.p.feed(p[:n])
		}
		b.mu.Unlock()
	}
	if err != nil {
		b.finish()
	}
	return n, err
}

// Close implements io.Closer: it closes the underlying body once and
// reports the usage seen, if it was not reported yet.
func (b *usageBody) Close() error {
	b.closeOnce.Do(func() { b.cerr = b.rc.Close() })
	b.finish()
	return b.cerr
}

// subscribe adds fn; when the usage was already reported, fn is called now.
func (b *usageBody) subscribe(fn func(Usage)) {
	b.mu.Lock()
	if b.done {
		u := b.final
		b.mu.Unlock()
		fn(u)
		return
	}
	b.subs = append(b.subs, fn)
	b.mu.Unlock()
}

// finish reports the usage to every subscriber, once.
func (b *usageBody) finish() {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.p.finish()
	b.final = b.p.result(b.prov)
	u, subs := b.final, b.subs
	b.subs = nil
	b.mu.Unlock()
	for _, fn := range subs {
		fn(u)
	}
}

// isMediaType reports whether the Content-Type value ct is of media type mt
// (lower case), ignoring case, surrounding space and parameters. It does
// not allocate.
func isMediaType(ct, mt string) bool {
	i := 0
	for i < len(ct) && (ct[i] == ' ' || ct[i] == '\t') {
		i++
	}
	ct = ct[i:]
	if len(ct) < len(mt) {
		return false
	}
	for j := 0; j < len(mt); j++ {
		if lowerASCII(ct[j]) != mt[j] {
			return false
		}
	}
	rest := ct[len(mt):]
	return rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t'
}
