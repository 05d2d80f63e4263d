package llmhttptest

import (
	"net/http"
	"net/http/httptest"
)

// Server is a fake Anthropic / OpenAI API listening on a loopback address,
// like [httptest.Server], serving a [Handler].
//
// A Server uses real sockets, so it cannot run inside a testing/synctest
// bubble: there, use [NewHandler] with [NewTransport] (or
// [Handler.Transport]) instead.
type Server struct {
	// URL is the base URL of the server, "http://127.0.0.1:port", for
	// option.WithBaseURL or as the prefix of the endpoints' paths.
	URL string

	// Handler is the server's handler; its methods (Stats, Capacity,
	// Inject, Transport, …) are the server's.
	*Handler
	srv *httptest.Server
}

// NewServer starts and returns a new Server with cfg. The caller should
// call Close when finished, to shut it down.
func NewServer(cfg Config) *Server {
	h := NewHandler(cfg)
	srv := httptest.NewServer(h)
	return &Server{URL: srv.URL, Handler: h, srv: srv}
}

// Close shuts the server down and blocks until all outstanding requests on
// it have completed.
func (s *Server) Close() { s.srv.Close() }

// Client returns an HTTP client configured for requests to the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Transport returns an in-memory [Transport] serving requests with h, for
// tests that must run without sockets (inside testing/synctest bubbles).
// It shares h's limits, faults and counters.
func (h *Handler) Transport() *Transport { return NewTransport(h) }
