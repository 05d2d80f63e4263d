package llmhttptest

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// deltaTokens is how many output tokens one streamed delta carries.
const deltaTokens = 4

// generation is an admitted request producing its output.
type generation struct {
	x   *exchange
	req parsed
	adm admission
	out int64  // output tokens to generate
	cut *Fault // StreamError or StreamCut, applied after half the output

	chatID string // OpenAI: the id every chunk shares
}

// settle charges the output generated, as the charging rule says.
func (g *generation) settle(generated int64) {
	h := g.x.h
	h.mu.Lock()
	g.x.part.settle(g.adm, generated, time.Now())
	h.mu.Unlock()
}

// generatedBy returns the output tokens generated after elapsed, for a
// non-streamed request whose client left early.
func (g *generation) generatedBy(elapsed time.Duration) int64 {
	c := &g.x.h.cfg
	elapsed -= c.Latency
	if elapsed < 0 {
		return 0
	}
	if c.TokenLatency <= 0 {
		return g.out
	}
	return min(int64(elapsed/c.TokenLatency), g.out)
}

// whole answers with one JSON body after the whole generation time.
func (g *generation) whole() {
	x, c := g.x, &g.x.h.cfg
	begin := time.Now()
	if !sleep(x.r.Context(), satAddDur(c.Latency, mulDur(g.out, c.TokenLatency))) {
		g.settle(g.generatedBy(time.Since(begin)))
		x.canceled()
		return
	}
	now := time.Now()
	x.h.mu.Lock()
	x.part.settle(g.adm, g.out, now)
	x.h.setLimitHeaders(x.w.Header(), x.part, x.fast, now)
	x.h.mu.Unlock()
	var body []byte
	if x.p == Anthropic {
		body = g.anthropicMessage()
	} else {
		body = g.openAICompletion()
	}
	x.writeJSON(http.StatusOK, body)
}

// stream answers with server-sent events: the head at once (its rate-limit
// headers as after admission), the first event after Config.Latency, the
// deltas TokenLatency per token apart. The output is charged at the end, or
// as far as it got when the client leaves or a fault cuts the stream.
func (g *generation) stream() {
	x, c := g.x, &g.x.h.cfg
	ctx := x.r.Context()
	now := time.Now()
	x.h.mu.Lock()
	x.h.setLimitHeaders(x.w.Header(), x.part, x.fast, now)
	x.h.mu.Unlock()
	hd := x.w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	x.setProcessing()
	x.w.WriteHeader(http.StatusOK)
	x.record(http.StatusOK)
	s := &sseWriter{w: x.w, rc: http.NewResponseController(x.w)}
	s.flush()

	var emitted int64
	settled := false
	defer func() {
		if !settled {
			g.settle(emitted)
		}
	}()
	gone := func() bool {
		if s.err != nil || ctx.Err() != nil {
			x.canceled()
			return true
		}
		return false
	}
	if !sleep(ctx, c.Latency) {
		x.canceled()
		return
	}
	g.streamStart(s)
	if s.flush(); gone() {
		return
	}
	cutAt := int64(-1)
	if g.cut != nil {
		cutAt = g.out / 2
	}
	for emitted < g.out && emitted != cutAt {
		k := min(deltaTokens, g.out-emitted)
		if cutAt > emitted {
			k = min(k, cutAt-emitted)
		}
		if !sleep(ctx, mulDur(k, c.TokenLatency)) {
			x.canceled()
			return
		}
		g.streamDelta(s, emitted, emitted+k)
		emitted += k // generated, whether or not the client takes it
		if s.flush(); gone() {
			return
		}
	}
	if g.cut != nil {
		if g.cut.Kind == StreamCut {
			g.settle(emitted)
			settled = true
			x.reset()
			return
		}
		g.streamError(s)
		s.flush()
		x.h.mu.Lock()
		x.h.stats.StreamErrors++
		x.part.stats.StreamErrors++
		x.h.mu.Unlock()
		return
	}
	g.streamEnd(s, emitted)
	s.flush()
}

// sseWriter writes events and remembers the first write error (the client
// went away).
type sseWriter struct {
	w   io.Writer
	rc  *http.ResponseController
	err error
}

// event writes one event: "event: name" (when name is set) and "data: …".
func (s *sseWriter) event(name string, data []byte) {
	if s.err != nil {
		return
	}
	buf := make([]byte, 0, len(name)+len(data)+16)
	if name != "" {
		buf = append(buf, "event: "...)
		buf = append(buf, name...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	_, s.err = s.w.Write(buf)
}

// flush sends what was written; a writer that cannot flush is left
// buffered.
func (s *sseWriter) flush() {
	if s.err != nil {
		return
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
	}
}

// satAddDur adds durations, saturating.
func satAddDur(a, b time.Duration) time.Duration { return time.Duration(satAdd(int64(a), int64(b))) }
