package llmhttp

import "net/http"

// PacerSettings configures a Pacer. (Skeleton: the pacer issue fills it in.)
type PacerSettings struct{}

// Pacer paces requests per partition. (Skeleton.)
type Pacer struct{}

// NewPacer returns a Pacer. (Skeleton.)
func NewPacer(s PacerSettings) *Pacer { return &Pacer{} }

// Wrap returns next behind the pacer; p.Wrap is a Middleware. (Skeleton: passes through.)
func (p *Pacer) Wrap(next http.RoundTripper) http.RoundTripper { return next }
