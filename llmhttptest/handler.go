package llmhttptest

import (
	"context"
	"errors"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Handler is the fake API as an [http.Handler]: it serves the Anthropic and
// OpenAI endpoints, limits them per credential and model, injects faults and
// counts what it saw. Serve it with [NewServer], with [NewTransport] (no
// sockets; works inside testing/synctest bubbles), or mount it in a server
// of your own.
//
// Endpoints:
//
//	POST /v1/messages                 Anthropic Messages, JSON or SSE ("stream": true)
//	POST /v1/messages/count_tokens    {"input_tokens": n}; not limited, not faulted
//	POST /v1/chat/completions         OpenAI Chat Completions, JSON or SSE
//
// Anything else is answered 404 (405 for a wrong method) in the provider's
// error shape: Anthropic's when the request carries x-api-key or
// anthropic-version, OpenAI's otherwise.
//
// A Handler reads the time with the time package alone and starts no
// goroutine of its own: every bucket refills lazily from time.Now(), and
// every wait is a timer raced against the request's context. Under
// testing/synctest it therefore runs on the bubble's fake clock. Create it
// inside the bubble.
//
// A Handler is safe for concurrent use by multiple goroutines.
type Handler struct {
	cfg    Config
	window time.Duration
	start  time.Time

	mu     sync.Mutex
	seq    int64
	parts  map[key]*partition
	faults []*activeFault
	stats  Stats
}

// NewHandler returns a Handler configured by cfg (see [Config] for the
// defaults of its zero fields). The fault script's clock starts now.
func NewHandler(cfg Config) *Handler {
	cfg.Models = maps.Clone(cfg.Models)
	cfg.APIKeys = slices.Clone(cfg.APIKeys)
	h := &Handler{
		cfg:    cfg,
		window: cfg.window(),
		start:  time.Now(),
		parts:  map[key]*partition{},
		stats:  Stats{ByStatus: map[int]int64{}, Partitions: map[Key]PartitionStats{}},
	}
	for _, f := range cfg.Faults {
		h.faults = append(h.faults, activate(f, h.start))
	}
	return h
}

// Inject adds f to the fault script, with f.Start measured from now:
// Inject(Fault{Kind: Overloaded, Count: 3}) answers the next three requests
// 529 (Anthropic) or 503 (OpenAI).
func (h *Handler) Inject(f Fault) {
	now := time.Now()
	h.mu.Lock()
	h.faults = append(h.faults, activate(f, now))
	h.mu.Unlock()
}

// ClearFaults removes every fault, scripted or injected.
func (h *Handler) ClearFaults() {
	h.mu.Lock()
	clear(h.faults)
	h.faults = h.faults[:0]
	h.mu.Unlock()
}

// endpoint is a route of the fake API.
type endpoint int

const (
	epUnknown endpoint = iota
	epMessages
	epCountTokens
	epChat
)

// route returns r's endpoint and dialect.
func route(r *http.Request) (endpoint, Provider) {
	switch r.URL.Path {
	case "/v1/messages":
		return epMessages, Anthropic
	case "/v1/messages/count_tokens":
		return epCountTokens, Anthropic
	case "/v1/chat/completions":
		return epChat, OpenAI
	}
	if r.Header.Get("X-Api-Key") != "" || r.Header.Get("Anthropic-Version") != "" {
		return epUnknown, Anthropic
	}
	return epUnknown, OpenAI
}

// exchange is one request being served.
type exchange struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	p     Provider
	seq   int64
	id    ids
	reqID string
	start time.Time
	part  *partition // once known
	fast  bool       // on part's fast-mode limits
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ep, p := route(r)
	h.mu.Lock()
	h.seq++
	seq := h.seq
	h.stats.Requests++
	h.mu.Unlock()

	x := &exchange{h: h, w: w, r: r, p: p, seq: seq, id: newIDs(h.cfg.Seed, seq), start: start}
	w.Header().Set("Date", start.UTC().Format(http.TimeFormat))
	if p == Anthropic {
		x.reqID = x.id.next("req_011C", 20, base62)
		w.Header().Set("request-id", x.reqID)
		w.Header().Set("anthropic-organization-id", "00000000-0000-4000-8000-000000000000")
	} else {
		x.reqID = x.id.next("req_", 32, "0123456789abcdef")
		w.Header().Set("x-request-id", x.reqID)
		w.Header().Set("openai-organization", "org-llmhttptest")
		w.Header().Set("openai-version", "2020-10-01")
	}

	if ep == epUnknown {
		x.fail(errNotFound(p, r.Method, r.URL.Path), 0)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		x.fail(errMethod(p, r.Method, r.URL.Path), 0)
		return
	}
	raw, apiKey := credential(r)
	if apiKey == "" {
		x.fail(errNoKey(p), 0)
		return
	}
	if len(h.cfg.APIKeys) > 0 && !slices.Contains(h.cfg.APIKeys, apiKey) {
		x.fail(errBadKey(p), 0)
		return
	}
	limit := h.cfg.MaxBodyBytes
	if limit <= 0 {
		limit = defaultMaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			x.fail(errTooLarge(p), 0)
		} else {
			x.fail(errInvalidJSON(p, "could not read the request body"), 0)
		}
		return
	}

	var req parsed
	var bad *apiError
	switch ep {
	case epMessages:
		req, bad = parseAnthropic(body, false)
	case epCountTokens:
		req, bad = parseAnthropic(body, true)
	case epChat:
		req, bad = parseOpenAI(body)
	}
	if bad != nil {
		x.fail(*bad, 0)
		return
	}
	if ep == epCountTokens {
		x.writeJSON(http.StatusOK, []byte(`{"input_tokens":`+strconv.FormatInt(req.inputTokens, 10)+`}`))
		return
	}
	x.serve(req, Fingerprint(raw))
}

// serve runs an admitted Messages or Chat Completions request: faults,
// limits, generation.
func (x *exchange) serve(req parsed, cred string) {
	h, ctx := x.h, x.r.Context()
	rng := rand.New(rand.NewPCG(h.cfg.Seed, uint64(x.seq)))
	k := key{x.p, cred, req.model}

	h.mu.Lock()
	pl := h.pickFaults(time.Now(), x.p, req.model, req.stream, rng)
	part := h.parts[k]
	if part == nil {
		part = newPartition(x.p, req.model, h.cfg.limitsFor(x.p, req.model), h.cfg.chargeFor(x.p), h.window, time.Now())
		h.parts[k] = part
	}
	part.stats.Requests++
	x.part, x.fast = part, req.fast && part.hasFast()
	h.mu.Unlock()

	if !sleep(ctx, pl.delay) {
		x.canceled()
		return
	}
	var cut *Fault // StreamError or StreamCut, applied during generation
	if f := pl.fault; f != nil {
		ra := int64(0)
		if f.RetryAfter > 0 {
			ra = retryAfterSeconds(f.RetryAfter)
		}
		switch f.Kind {
		case Overloaded:
			x.fail(errOverloaded(x.p), ra)
			return
		case ServerError:
			x.fail(errServer(x.p), ra)
			return
		case Timeout:
			x.fail(errTimeout(x.p), ra)
			return
		case Quota:
			x.fail(errQuota(x.p, f.Code), 0)
			return
		case SlowDown:
			x.fail(errSlowDown(x.p), ra)
			return
		case RateLimit:
			if x.p == Anthropic {
				x.w.Header().Set("x-should-retry", "true")
			}
			x.fail(errForcedRateLimit(x.p, req.model), ra)
			return
		case TooLarge:
			x.fail(errTooLarge(x.p), 0)
			return
		case Reset:
			x.reset()
			return
		case StreamError, StreamCut:
			cut = f
		}
	}

	// The limiter.
	now := time.Now()
	h.mu.Lock()
	adm, rej := part.admit(req.inputTokens, req.maxTokens, x.fast, h.cfg.RejectedCost, now)
	if rej != nil {
		h.setLimitHeaders(x.w.Header(), part, x.fast, now)
		h.mu.Unlock()
		ra := int64(0)
		if !rej.never {
			ra = retryAfterSeconds(rej.wait)
		}
		x.w.Header().Set("x-should-retry", strconv.FormatBool(!rej.never))
		x.fail(errLimited(x.p, req.model, rej), ra)
		return
	}
	h.mu.Unlock()

	r := Request{
		Provider: x.p, Model: req.model, Credential: cred, Stream: req.stream, Fast: x.fast,
		MaxTokens: req.maxTokens, InputTokens: req.inputTokens, Seq: x.seq, Rand: rng,
	}
	g := &generation{x: x, req: req, adm: adm, out: h.cfg.outputTokens(r), cut: cut}
	if req.stream {
		g.stream()
	} else {
		g.whole()
	}
}

// fail sends e (with retry-after when ra > 0) and counts it.
func (x *exchange) fail(e apiError, ra int64) {
	e.write(x.w, x.p, x.reqIDFor(), ra)
	x.record(e.status)
}

// reqIDFor returns the request id to put in an error body: Anthropic's
// bodies carry it, OpenAI's do not.
func (x *exchange) reqIDFor() string {
	if x.p == Anthropic {
		return x.reqID
	}
	return ""
}

// writeJSON sends a 200-class JSON body and counts it.
func (x *exchange) writeJSON(status int, b []byte) {
	x.w.Header().Set("Content-Type", "application/json")
	x.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	x.setProcessing()
	x.w.WriteHeader(status)
	x.w.Write(b)
	x.record(status)
}

// setProcessing adds OpenAI's openai-processing-ms header.
func (x *exchange) setProcessing() {
	if x.p == OpenAI {
		x.w.Header().Set("openai-processing-ms", strconv.FormatInt(time.Since(x.start).Milliseconds(), 10))
	}
}

// record counts a response with status.
func (x *exchange) record(status int) {
	x.h.mu.Lock()
	defer x.h.mu.Unlock()
	x.h.stats.ByStatus[status]++
	if x.part != nil {
		x.part.stats.ByStatus[status]++
	}
}

// canceled counts a request whose client went away before it was answered.
func (x *exchange) canceled() {
	x.h.mu.Lock()
	defer x.h.mu.Unlock()
	x.h.stats.Canceled++
	if x.part != nil {
		x.part.stats.Canceled++
	}
}

// reset drops the connection: on a net/http server it hijacks the
// connection and closes it with an RST; elsewhere (the in-memory Transport,
// HTTP/2) it aborts the handler with [http.ErrAbortHandler], which servers
// take as "close the connection" and the Transport as a reset.
func (x *exchange) reset() {
	x.h.mu.Lock()
	x.h.stats.Resets++
	if x.part != nil {
		x.part.stats.Resets++
	}
	x.h.mu.Unlock()
	if hj, ok := x.w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // close with RST, not FIN
			}
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// sleep waits d, or until ctx ends; it reports whether the whole wait
// passed. It is the one waiting idiom of the package: a timer raced against
// the context, which testing/synctest's fake clock drives.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// mulDur returns n×d, saturating instead of overflowing.
func mulDur(n int64, d time.Duration) time.Duration {
	if n <= 0 || d <= 0 {
		return 0
	}
	if n > int64(math.MaxInt64/d) {
		return math.MaxInt64
	}
	return time.Duration(n) * d
}
