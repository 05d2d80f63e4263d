package llmhttp

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"
)

// usageWindow is how much of the start and of the end of a response body
// the pacer keeps to find its usage: Anthropic's message_start event and
// both providers' JSON bodies put it near the start or the end.
const usageWindow = 1024

// pacerBody wraps a successful response's body. It keeps the first and the
// last usageWindow bytes read; at EOF it reads the usage the body reports
// (output and input tokens) and teaches it to the partition; and for a
// streamed response it settles the request's flight when the body ends or
// is closed, whichever comes first.
//
// Read must not be called concurrently with itself, as for any body; Close
// may be called concurrently with Read, and closes the body once.
type pacerBody struct {
	rc   io.ReadCloser
	pp   *pacerPart
	f    *pflight
	open bool // the flight is still open (a stream)

	mu       sync.Mutex
	win      *usageWin // from usageWinPool; nil before the first byte and after finish
	total    int64
	finished bool
	closed   bool
	cerr     error
}

// usageWin holds the first and the last usageWindow bytes of a body.
type usageWin struct {
	head, tail   [usageWindow]byte
	nhead, ntail int
}

// usageWinPool recycles the windows of finished bodies (a cache, not state).
var usageWinPool = sync.Pool{New: func() any { return new(usageWin) }}

// Read implements io.Reader.
func (b *pacerBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.mu.Lock()
		if !b.finished {
			b.record(p[:n])
		}
		b.mu.Unlock()
	}
	if err == io.EOF {
		b.finish(true)
	}
	return n, err
}

// Close implements io.Closer.
func (b *pacerBody) Close() error {
	b.mu.Lock()
	if b.closed {
		err := b.cerr
		b.mu.Unlock()
		return err
	}
	b.closed = true
	b.mu.Unlock()
	err := b.rc.Close()
	b.mu.Lock()
	b.cerr = err
	u, done := b.finishLocked(false)
	b.mu.Unlock()
	if done {
		b.pp.bodyDone(b.f, b.open, u)
	}
	return err
}

// record keeps p's bytes in the head and tail windows.
func (b *pacerBody) record(p []byte) {
	if b.win == nil {
		b.win = usageWinPool.Get().(*usageWin)
		b.win.nhead, b.win.ntail = 0, 0
	}
	w := b.win
	b.total += int64(len(p))
	if w.nhead < usageWindow {
		w.nhead += copy(w.head[w.nhead:], p)
	}
	if len(p) >= usageWindow {
		w.ntail = copy(w.tail[:], p[len(p)-usageWindow:])
		return
	}
	keep := min(w.ntail, usageWindow-len(p))
	copy(w.tail[:keep], w.tail[w.ntail-keep:w.ntail])
	w.ntail = keep + copy(w.tail[keep:], p)
}

// finish settles what the body's end settles, once: the usage (at EOF
// only: a body closed early may hold a partial count) and the flight of a
// stream.
func (b *pacerBody) finish(eof bool) {
	b.mu.Lock()
	u, done := b.finishLocked(eof)
	b.mu.Unlock()
	if done {
		b.pp.bodyDone(b.f, b.open, u)
	}
}

// finishLocked is finish's part under b.mu: it reports whether this call
// finishes the body, and the usage the body reported.
func (b *pacerBody) finishLocked(eof bool) (usage, bool) {
	if b.finished {
		return usage{}, false
	}
	b.finished = true
	u := usage{output: -1, input: -1}
	if w := b.win; w != nil {
		if eof {
			u = w.usage(b.total)
		}
		b.win = nil
		usageWinPool.Put(w)
	}
	return u, true
}

// usage is what a response body reports of its token counts; -1 when it
// does not say.
type usage struct{ output, input int64 }

// usage finds the token counts of a body of total bytes in the windows:
// the last output count (a stream's final message_delta is cumulative),
// the first input count (Anthropic's message_start comes first), plus
// Anthropic's cache writes, which count toward its input limit. Cache reads
// do not.
func (w *usageWin) usage(total int64) usage {
	var first, last usageScan
	first.scan(w.head[:w.nhead])
	if total > usageWindow {
		last.scan(w.tail[:w.ntail])
	} else {
		last = first
	}
	u := usage{output: last.output, input: first.input}
	if u.input < 0 {
		u.input = last.input
	}
	if u.input >= 0 && first.cacheWrite > 0 {
		u.input += first.cacheWrite
	}
	return u
}

// usageScan is what one pass over a window found: the last output count,
// the first input and cache-write counts; -1 when absent.
type usageScan struct{ output, input, cacheWrite int64 }

// scan finds every `…_tokens": n` in b, in one pass. A key is recognised
// by the name before its "_tokens" suffix and the quote that opens it,
// which must lie after the previous match.
func (s *usageScan) scan(b []byte) {
	s.output, s.input, s.cacheWrite = -1, -1, -1
	for i := 0; i < len(b); {
		j := indexTokens(b[i:])
		if j < 0 {
			return
		}
		p := i + j // the suffix's underscore
		key := b[i:p]
		i = p + len(tokensSuffix)
		v, ok := countAt(b[i:])
		if !ok {
			continue
		}
		switch {
		case quotedEnd(key, "output"), quotedEnd(key, "completion"):
			s.output = v
		case quotedEnd(key, "input"), quotedEnd(key, "prompt"):
			if s.input < 0 {
				s.input = v
			}
		case quotedEnd(key, "cache_creation_input"):
			if s.cacheWrite < 0 {
				s.cacheWrite = v
			}
		}
	}
}

// quotedEnd reports whether b ends with a quote and then name.
func quotedEnd(b []byte, name string) bool {
	n := len(b) - len(name)
	return n > 0 && b[n-1] == '"' && string(b[n:]) == name
}

// tokensSuffix ends every token count's key.
const tokensSuffix = `_tokens"`

// indexTokens is bytes.Index(b, tokensSuffix), by way of the underscores:
// a response has few, and IndexByte calls cost less than Index's for so
// short a needle.
func indexTokens(b []byte) int {
	for off := 0; ; {
		k := bytes.IndexByte(b[off:], '_')
		if k < 0 {
			return -1
		}
		p := off + k
		if len(b)-p >= len(tokensSuffix) && string(b[p:p+len(tokensSuffix)]) == tokensSuffix {
			return p
		}
		off = p + 1
	}
}

// countAt parses `: 123` at the start of b.
func countAt(b []byte) (int64, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	var v int64
	n := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && n < 18; i++ {
		v = v*10 + int64(b[i]-'0')
		n++
	}
	return v, n > 0
}

// bodyDone learns a response body's usage and, for a stream, settles its
// flight.
func (pp *pacerPart) bodyDone(f *pflight, open bool, u usage) {
	if s := f.later; s != nil {
		// The store keeps charged the output generated, not the
		// estimate (f's cost, less what was given back at its head).
		f.later = nil
		if u.output >= 0 {
			diff := float64(u.output) - f.cost[pdOutput]
			s.Refund[pdOutput], s.Debit[pdOutput] = max(-diff, 0), max(diff, 0)
			s.Refund[pdTokens], s.Debit[pdTokens] = s.Refund[pdOutput], s.Debit[pdOutput]
		}
		defer pp.settleShared(context.Background(), s)
	}
	if !open && u.output < 0 && u.input < 0 {
		return
	}
	pp.mu.Lock()
	if u.output >= 0 {
		pp.learn.observeOutput(u.output)
	}
	if u.input >= 0 {
		pp.learn.observeInput(f.estInput, u.input)
	}
	var shared *Settlement
	if open {
		now := time.Now()
		pp.observeServed(now.Sub(f.sent))
		refund, debit := pp.settle(now, f, true, u.output)
		if pp.p.s.Store != nil {
			shared = &Settlement{Now: now, Limits: pp.limitsLocked(), Refund: Amounts(refund), Debit: Amounts(debit)}
		}
		if h := pp.queue.head(); h != nil {
			h.notify()
		}
	}
	pp.mu.Unlock()
	if shared != nil {
		pp.settleShared(context.Background(), shared)
	}
}
