package llmhttptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// ErrConnReset is the error, wrapped together with io.ErrUnexpectedEOF, that
// the in-memory [Transport] returns when the handler drops the connection
// (a Reset fault, or a handler that panics with [http.ErrAbortHandler]).
var ErrConnReset = errors.New("llmhttptest: connection reset by peer")

// Transport is an [http.RoundTripper] that serves each request with Handler
// in memory, without sockets, so that clients can be tested inside
// testing/synctest bubbles, on fake time, with no real I/O. The request's
// scheme and host are ignored.
//
// It keeps the RoundTripper contract: the request body is read and closed
// before the handler runs; the response's Request is the request;
// cancelling the request's context ends a wait at once (RoundTrip returns
// the context's error, and a body being read returns it too); a response
// the handler flushes (server-sent events) is streamed as it is written,
// with back-pressure, through a pipe; the handler's goroutine ends when it
// returns, when the body is closed, or when the context ends, whichever
// comes first, as long as the handler heeds its request's context (this
// package's [Handler] does). A connection drop by the handler becomes an
// error wrapping [ErrConnReset] and io.ErrUnexpectedEOF, before the head
// from RoundTrip, after it from the body's Read. Any other panic in the
// handler becomes an error too.
//
// The zero Transport is not usable: Handler must be set. A Transport is
// safe for concurrent use by multiple goroutines.
type Transport struct {
	// Handler serves the requests.
	Handler http.Handler
}

// NewTransport returns a Transport serving requests with h.
func NewTransport(h http.Handler) *Transport { return &Transport{Handler: h} }

// CloseIdleConnections does nothing: a Transport has no connections. It is
// there so that the method is forwarded cleanly through client layers.
func (t *Transport) CloseIdleConnections() {}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("llmhttptest: reading the request body: %w", err)
		}
		body = b
	}
	if t.Handler == nil {
		return nil, errors.New("llmhttptest: Transport.Handler is nil")
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(req.Context())
	sreq := req.Clone(ctx)
	sreq.Body = io.NopCloser(bytes.NewReader(body))
	sreq.ContentLength = int64(len(body))
	sreq.GetBody = nil
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "192.0.2.1:1234"
	sreq.Proto, sreq.ProtoMajor, sreq.ProtoMinor = "HTTP/1.1", 1, 1
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}

	w := &memWriter{header: http.Header{}, head: make(chan struct{})}
	w.pr, w.pw = io.Pipe()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				w.abort(p)
			}
		}()
		t.Handler.ServeHTTP(w, sreq)
		w.finish()
	}()

	select {
	case <-w.head:
	case <-req.Context().Done():
		cancel()
		return nil, req.Context().Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		cancel()
		return nil, w.err
	}
	resp := &http.Response{
		Status:     strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode: w.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  w.sent,
		Request: req,
	}
	if w.streaming {
		resp.ContentLength = -1
		// Cancelling the request unblocks a pending Read (which then reports
		// the context's error).
		stop := context.AfterFunc(req.Context(), func() { w.pr.CloseWithError(req.Context().Err()) })
		resp.Body = &memBody{r: w.pr, ctx: req.Context(), release: func() {
			stop()
			w.pr.CloseWithError(errBodyClosed)
			cancel()
		}}
	} else {
		// The handler returned before flushing: the whole body is buffered.
		cancel()
		b := w.buf.Bytes()
		resp.ContentLength = int64(len(b))
		resp.Body = &memBody{r: bytes.NewReader(b)}
	}
	if req.Method == http.MethodHead {
		resp.Body.Close()
		resp.Body = http.NoBody
	}
	return resp, nil
}

// errBodyClosed is what the handler's writes return once the client has
// closed the response body.
var errBodyClosed = errors.New("llmhttptest: response body closed")

// memBody is a response body. Close is idempotent, Read after Close fails
// as on a real connection, and reading to EOF or closing releases the
// exchange (its context and the handler's goroutine).
type memBody struct {
	r       io.Reader
	ctx     context.Context // the request's, for a streamed body; else nil
	release func()          // nil for a buffered body
	once    sync.Once
	closed  atomic.Bool
}

func (b *memBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errors.New("http: read on closed response body")
	}
	n, err := b.r.Read(p)
	if err != nil && b.ctx != nil && b.ctx.Err() != nil {
		err = b.ctx.Err() // cancelled mid-stream, as net/http reports it
	}
	if err == io.EOF {
		b.done()
	}
	return n, err
}

func (b *memBody) Close() error {
	b.closed.Store(true)
	b.done()
	return nil
}

func (b *memBody) done() {
	b.once.Do(func() {
		if b.release != nil {
			b.release()
		}
	})
}

// memWriter is the handler's ResponseWriter. Until the handler flushes, or
// returns, everything is buffered; the first flush commits the head and
// turns the response into a stream through the pipe.
type memWriter struct {
	header http.Header // the handler's, mutable
	head   chan struct{}
	pr     *io.PipeReader
	pw     *io.PipeWriter

	// Only the handler's goroutine touches these before head is closed;
	// after, RoundTrip reads them under mu.
	mu        sync.Mutex
	sent      http.Header // the header as committed
	status    int
	wrote     bool // WriteHeader done
	committed bool // head closed
	streaming bool
	buf       bytes.Buffer
	err       error // a reset before the head
}

func (w *memWriter) Header() http.Header { return w.header }

func (w *memWriter) WriteHeader(code int) {
	if w.wrote || code < 200 { // 1xx informational headers are dropped
		return
	}
	w.wrote = true
	w.status = code
	w.sent = w.header.Clone()
}

func (w *memWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		if w.header.Get("Content-Type") == "" {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.streaming {
		return w.pw.Write(p)
	}
	return w.buf.Write(p)
}

// Flush commits the head and sends what is buffered; from then on, writes
// go through the pipe, each blocking until the client reads it.
func (w *memWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting a closed body; http.ResponseController
// uses it.
func (w *memWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.streaming {
		w.mu.Lock()
		w.streaming = true
		w.commit()
		w.mu.Unlock()
	}
	if w.buf.Len() > 0 {
		_, err := w.pw.Write(w.buf.Bytes())
		w.buf.Reset()
		return err
	}
	return nil
}

// commit releases RoundTrip. The caller holds mu.
func (w *memWriter) commit() {
	if !w.committed {
		w.committed = true
		if w.sent == nil {
			w.sent = w.header.Clone()
		}
		close(w.head)
	}
}

// finish ends a handler that returned normally.
func (w *memWriter) finish() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	w.mu.Lock()
	streaming := w.streaming
	w.commit()
	w.mu.Unlock()
	if streaming {
		if w.buf.Len() > 0 {
			w.pw.Write(w.buf.Bytes())
			w.buf.Reset()
		}
		w.pw.Close()
	}
}

// abort ends a handler that panicked: before the head, RoundTrip returns an
// error; after it, the body's Read does.
func (w *memWriter) abort(p any) {
	var err error
	if e, ok := p.(error); ok && errors.Is(e, http.ErrAbortHandler) {
		err = fmt.Errorf("%w (%w)", ErrConnReset, io.ErrUnexpectedEOF)
	} else {
		err = fmt.Errorf("llmhttptest: handler panic: %v (%w)", p, io.ErrUnexpectedEOF)
	}
	w.mu.Lock()
	if !w.committed {
		w.err = err
		w.committed = true
		close(w.head)
	}
	w.mu.Unlock()
	w.pw.CloseWithError(err)
}
