package llmhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Provider is the API dialect of a request, which decides the shape of local
// replies and how output tokens are charged.
type Provider int

const (
	// ProviderOpenAI is the OpenAI-compatible dialect (OpenAI, Azure, Groq,
	// Mistral, OpenRouter, DeepSeek, …); the default.
	ProviderOpenAI Provider = iota
	// ProviderAnthropic is Anthropic's Messages API.
	ProviderAnthropic
)

// String returns "openai" or "anthropic".
func (p Provider) String() string {
	if p == ProviderAnthropic {
		return "anthropic"
	}
	return "openai"
}

// DetectProvider guesses the dialect of req: Anthropic when it carries an
// x-api-key or anthropic-version header or its path ends in /v1/messages,
// otherwise OpenAI.
func DetectProvider(req *http.Request) Provider {
	return detectProvider(req, header(req.Header, "X-Api-Key"))
}

// detectProvider is DetectProvider for a request whose x-api-key is apiKey.
func detectProvider(req *http.Request, apiKey string) Provider {
	if apiKey != "" || header(req.Header, "Anthropic-Version") != "" {
		return ProviderAnthropic
	}
	if req.URL != nil && strings.Contains(req.URL.Path, "/messages") && !strings.Contains(req.URL.Path, "/threads/") {
		return ProviderAnthropic
	}
	return ProviderOpenAI
}

// A Partition names the unit llmhttp keeps state for: the pacer keeps one per
// (Host, Credential, Model, Lane), the breaker one per (Host, Model, Lane).
type Partition struct {
	// Host is the request's scheme and host, as in "https://api.anthropic.com".
	Host string
	// Credential is a fingerprint of the request's API key (see
	// [Fingerprint]), never the key itself; "" when the request has none.
	Credential string
	// Model is the JSON body's top-level "model", or the deployment name in
	// an Azure path; "" when there is none.
	Model string
	// Lane is the pool of capacity the request draws on within its model:
	// "" for the standard one, [LaneFast] for Anthropic's fast mode.
	Lane string
}

// LaneFast is the [Partition.Lane] of an Anthropic request in fast mode
// (a top-level "speed": "fast" in its body). Fast mode has token limits of
// its own, separate from the model's standard ones, reported in the
// anthropic-fast-{input,output}-tokens-* headers and enforced with 429s of
// their own: its requests are paced against those limits, behind a gate
// and a circuit of their own, so that running out of one pool never holds
// back the other.
const LaneFast = "fast"

// String returns the partition as "host|credential|model", safe to log,
// followed by "|" and the lane when there is one.
func (p Partition) String() string {
	s := p.Host + "|" + p.Credential + "|" + p.Model
	if p.Lane != "" {
		s += "|" + p.Lane
	}
	return s
}

// credential returns the raw credential of req: x-api-key, api-key (Azure)
// or the Authorization header.
func credential(req *http.Request) string {
	return credentialOf(req, header(req.Header, "X-Api-Key"))
}

// credentialOf is credential for a request whose x-api-key is apiKey.
func credentialOf(req *http.Request, apiKey string) string {
	if apiKey != "" {
		return apiKey
	}
	if k := header(req.Header, "Api-Key"); k != "" {
		return k
	}
	return header(req.Header, "Authorization")
}

// header returns the first value of h's canonical key k: h.Get without
// canonicalising a key that is canonical already.
func header(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// requestInfo is what llmhttp learns from a request before sending it. It is
// computed once per request and shared by every layer: handed from layer
// to layer by this package's own (see infoTripper), found in the request's
// context by a layer behind another RoundTripper when an outer one
// attached it (see withInfo), or computed by the first layer that needs it.
//
// A context outlives its request: a caller may build a new request with an
// earlier one's context (resp.Request.Context()), which then carries the
// earlier request's info. So an info records the request it describes
// (req, id), and [infoOf] checks it against the request in hand before
// trusting it.
type requestInfo struct {
	// parent is the context the info was attached to (see withInfo); nil
	// until then.
	parent context.Context
	// req is the request the info was computed for (see describes).
	req *http.Request

	partition Partition
	provider  Provider
	stream    bool
	// maxTokens is max_tokens / max_completion_tokens / max_output_tokens;
	// 0 when absent.
	maxTokens int64
	// inputTokens is the estimated input tokens of the body's text: text
	// characters / 4, plus a flat cost per base64 attachment (see
	// describeBody).
	inputTokens int64

	// pacer is what the pacer remembers about the request across its
	// attempts (the retry layer sends every attempt with the same context).
	// It is guarded by the lock of the request's pacer partition.
	pacer pacerMemo

	// ref is the partition's identity, where the layers keep their state
	// of it (see partRef).
	ref *partRef

	// derived are the infos of other requests made with this info's
	// context (see infoOf); nil until there is one.
	derived atomic.Pointer[derivedInfos]
}

// derivedInfos are the infos of other requests made with an info's
// context, most recent last.
type derivedInfos struct {
	mu    sync.Mutex
	infos []*requestInfo
}

// maxDerived bounds the infos an info keeps for other requests made with
// its context: a context reused for many requests at once costs a
// re-description of those beyond it, never unbounded memory.
const maxDerived = 8

// funcPointer returns the closure f points to: distinct for every closure
// that captures something (http.NewRequest's GetBody captures its body), the
// same for f and its copies.
func funcPointer(f func() (io.ReadCloser, error)) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&f))
}

// describes reports whether info is req's: computed for req itself, or for
// a request req is a clone of. [http.Request.Clone] copies the URL and the
// headers but keeps the same GetBody function value, ContentLength and
// Method (and the retry layer's attempts are such clones, with a fresh
// Body from GetBody); a request made anew has its own GetBody closure
// (http.NewRequest's captures its body). A request without GetBody is told
// apart by its URL and credential.
func (info *requestInfo) describes(req *http.Request) bool {
	o := info.req
	if o == req {
		return true
	}
	if o == nil || funcPointer(req.GetBody) != funcPointer(o.GetBody) || req.ContentLength != o.ContentLength || req.Method != o.Method {
		return false
	}
	if (req.URL == nil) != (o.URL == nil) {
		return false
	}
	if u, v := req.URL, o.URL; u != nil && (u.Scheme != v.Scheme || u.Host != v.Host || u.Path != v.Path || u.RawQuery != v.RawQuery) {
		return false
	}
	return req.GetBody != nil || Fingerprint(credential(req)) == info.partition.Credential
}

// derivedFor returns the info of req, a request made with info's context
// that info does not describe, computing it on first use.
func (info *requestInfo) derivedFor(req *http.Request) *requestInfo {
	ds := info.derived.Load()
	if ds == nil {
		info.derived.CompareAndSwap(nil, new(derivedInfos))
		ds = info.derived.Load()
	}
	ds.mu.Lock()
	for _, d := range ds.infos {
		if d.describes(req) {
			ds.mu.Unlock()
			return d
		}
	}
	ds.mu.Unlock()
	d := describe(req) // outside the lock: it may read a large body
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, o := range ds.infos {
		if o.describes(req) {
			return o // described meanwhile by another layer
		}
	}
	if len(ds.infos) == maxDerived {
		copy(ds.infos, ds.infos[1:])
		ds.infos = ds.infos[:maxDerived-1]
	}
	ds.infos = append(ds.infos, d)
	return d
}

// pacerMemo is the pacer's per-request memory, kept in requestInfo so that a
// retried attempt keeps its place in the queue and is not made to wait
// twice for the same closed gate.
type pacerMemo struct {
	// seq is the request's arrival number in the pacer's queue order; 0
	// until its first attempt reaches the pacer.
	seq uint64
	// ticket is when the gate that this request's own answer closed opens
	// again: an attempt arriving after it skips the staggered release.
	ticket time.Time
	// est and hasEst are the request's estimate, computed once.
	est    Estimate
	hasEst bool
	// flight is the request's first flight, allocated with its info by a
	// Transport that paces (see pacedInfo); nil otherwise. The pacer that
	// claims it with flightTaken uses it; later attempts, and another
	// pacer, allocate their own. It is never reused.
	flight      *flightBody
	flightTaken atomic.Bool
}

// pacedInfo allocates a request's info and its first flight together: one
// allocation per request fewer when the request is paced.
type pacedInfo struct {
	requestInfo
	flight flightBody
}

type infoKey struct{}

// infoOf returns req's requestInfo, from its context when an outer llmhttp
// layer already computed it for req (or for the request req is a clone of),
// else computed now. A context carrying another request's info — a request
// made with an earlier one's context — gets req's own info, computed once
// and kept with the other's (see derivedFor), so that every layer and
// attempt of req finds the same.
func infoOf(req *http.Request) *requestInfo {
	info, ok := req.Context().Value(infoKey{}).(*requestInfo)
	switch {
	case !ok:
		return describe(req)
	case info.describes(req):
		return info
	}
	return info.derivedFor(req)
}

// ownInfo returns req's own requestInfo: the one its context carries when
// that describes req, else one computed now, not attached to any context.
// Unlike infoOf, a context carrying another request's info gives a new
// info, never one shared with other requests.
func ownInfo(req *http.Request, paced bool) *requestInfo {
	if info, ok := req.Context().Value(infoKey{}).(*requestInfo); ok && info.describes(req) {
		return info
	}
	if paced {
		pi := &pacedInfo{}
		pi.pacer.flight = &pi.flight
		return describeInto(&pi.requestInfo, req)
	}
	return describe(req)
}

// withInfo returns a shallow copy of req whose context carries info. The
// context is info itself (see requestInfo.Value): one allocation, the
// request's copy, instead of two.
func withInfo(req *http.Request, info *requestInfo) *http.Request {
	if info.parent != nil { // attached already, to another context
		return req.WithContext(context.WithValue(req.Context(), infoKey{}, info))
	}
	info.parent = req.Context()
	return req.WithContext(info)
}

// Deadline, Done, Err and Value make an attached requestInfo the context
// of its request: its parent's, plus itself under infoKey.
func (info *requestInfo) Deadline() (time.Time, bool) { return info.parent.Deadline() }
func (info *requestInfo) Done() <-chan struct{}       { return info.parent.Done() }
func (info *requestInfo) Err() error                  { return info.parent.Err() }
func (info *requestInfo) Value(key any) any {
	if key == (infoKey{}) {
		return info
	}
	return info.parent.Value(key)
}

var _ context.Context = (*requestInfo)(nil)

// DefaultPartition returns req's partition: scheme+host, the fingerprint of
// its credential, its model and its lane ([LaneFast] for an Anthropic
// request in fast mode).
func DefaultPartition(req *http.Request) Partition { return infoOf(req).partition }

// describe computes req's requestInfo. The body is read through GetBody, so
// req.Body is untouched; a request without GetBody is described from its
// headers and URL alone.
//
// Reading the body is cheap: when GetBody returns an in-memory reader (as
// http.NewRequest and both official SDKs arrange: a bytes.Reader behind
// io.NopCloser), its WriteTo hands the whole body over in one call and the
// body is scanned in place, without a copy. Other readers are copied into a
// pooled buffer of at most describeReadMax bytes; the text of a longer body
// is extrapolated from its ContentLength. The scan ([scanBody]) jumps from
// quote to quote with bytes.IndexByte and decodes nothing but the top-level
// "model", "stream" and max-token fields.
func describe(req *http.Request) *requestInfo { return describeInto(new(requestInfo), req) }

// describeInto is describe, into the zero info.
func describeInto(info *requestInfo, req *http.Request) *requestInfo {
	apiKey := header(req.Header, "X-Api-Key")
	info.req, info.provider = req, detectProvider(req, apiKey)
	if req.URL != nil {
		info.partition.Host = partitionHost(req.URL.Scheme, req.URL.Host)
	}
	info.partition.Credential = Fingerprint(credentialOf(req, apiKey))
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if s, ok := describeBody(req); ok {
			info.partition.Model = s.model
			if s.fast && info.provider == ProviderAnthropic {
				info.partition.Lane = LaneFast
			}
			info.stream = s.stream
			info.maxTokens = s.maxTokens
			info.inputTokens = s.inputTokens()
		}
	}
	if info.partition.Model == "" && req.URL != nil {
		info.partition.Model = azureDeployment(req.URL.Path)
	}
	info.ref = refOf(&info.partition)
	return info
}

// azureDeployment returns the deployment name of an Azure OpenAI path
// (".../openai/deployments/{name}/chat/completions"), or "".
func azureDeployment(path string) string {
	const marker = "/deployments/"
	i := strings.Index(path, marker)
	if i < 0 {
		return ""
	}
	rest := path[i+len(marker):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// describeReadMax bounds how much of a body that is not in memory describe
// copies.
const describeReadMax = 1 << 20

// describeBody scans the body of req, read through GetBody.
func describeBody(req *http.Request) (bodyScan, bool) {
	rc, err := req.GetBody()
	if err != nil || rc == nil {
		return bodyScan{}, false
	}
	defer rc.Close()
	c := getCollector()
	defer putCollector(c)
	if wt, ok := rc.(io.WriterTo); ok {
		_, err = wt.WriteTo(c)
	} else {
		_, err = c.readFrom(rc)
	}
	if c.done {
		return c.scan, true
	}
	if err != nil && !errors.Is(err, errCollectorFull) {
		return bodyScan{}, false
	}
	s := scanBody(c.buf)
	if c.full && req.ContentLength > int64(len(c.buf)) && len(c.buf) > 0 {
		// Only the start was read: extrapolate its text to the whole body.
		s.textBytes = int64(float64(s.textBytes) * float64(req.ContentLength) / float64(len(c.buf)))
	}
	return s, true
}

// errCollectorFull stops a WriteTo or a copy once describeReadMax bytes are
// in.
var errCollectorFull = errors.New("llmhttp: request body larger than the describe buffer")

// bodyCollector receives a request body for describe. A body written in one
// piece (bytes.Reader.WriteTo) is scanned in place; anything else is copied
// into buf, at most describeReadMax bytes.
type bodyCollector struct {
	buf  []byte
	scan bodyScan
	done bool // scan holds the scan of a complete body
	full bool // buf reached describeReadMax and the rest was dropped
}

// Write implements io.Writer.
func (c *bodyCollector) Write(p []byte) (int, error) {
	if c.done {
		return len(p), nil // bytes after a complete object: ignored
	}
	if len(c.buf) == 0 {
		if s := scanBody(p); s.complete {
			c.scan, c.done = s, true
			return len(p), nil
		}
	}
	room := describeReadMax - len(c.buf)
	if len(p) > room {
		c.buf = append(c.buf, p[:room]...)
		c.full = true
		return room, errCollectorFull
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// WriteString implements io.StringWriter, so that strings.Reader.WriteTo
// does not convert the whole body to a new byte slice.
func (c *bodyCollector) WriteString(s string) (int, error) {
	if c.done {
		return len(s), nil
	}
	room := describeReadMax - len(c.buf)
	if len(s) > room {
		c.buf = append(c.buf, s[:room]...)
		c.full = true
		return room, errCollectorFull
	}
	c.buf = append(c.buf, s...)
	return len(s), nil
}

// readFrom copies r into c.buf, at most describeReadMax bytes. Like bufio,
// it gives up with io.ErrNoProgress on a Reader that keeps returning
// nothing and no error.
func (c *bodyCollector) readFrom(r io.Reader) (int64, error) {
	var n int64
	for empty := 0; ; {
		if len(c.buf) >= describeReadMax {
			c.full = true
			return n, errCollectorFull
		}
		if len(c.buf) == cap(c.buf) {
			c.buf = append(c.buf, 0)[:len(c.buf)]
		}
		end := min(cap(c.buf), describeReadMax)
		m, err := r.Read(c.buf[len(c.buf):end])
		if m < 0 || m > end-len(c.buf) {
			return n, io.ErrNoProgress
		}
		c.buf = c.buf[:len(c.buf)+m]
		n += int64(m)
		if m > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			return n, io.ErrNoProgress
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
