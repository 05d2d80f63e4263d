package llmhttp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

// usChunks is a body that returns its chunks one Read at a time, then
// final (io.EOF when nil).
type usChunks struct {
	chunks [][]byte
	final  error
	closed int
}

func (r *usChunks) Read(p []byte) (int, error) {
	if r.closed > 0 {
		return 0, errors.New("read after close")
	}
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		if r.final != nil {
			return 0, r.final
		}
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

func (r *usChunks) Close() error { r.closed++; return nil }

// usResponse returns a response to a request of provider p whose body reads
// chunks.
func usResponse(p llmhttp.Provider, contentType string, body io.ReadCloser) *http.Response {
	url := "https://api.openai.com/v1/chat/completions"
	if p == llmhttp.ProviderAnthropic {
		url = "https://api.anthropic.com/v1/messages"
	}
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return &http.Response{StatusCode: 200, Header: h, Body: body, Request: req}
}

// usRead taps a response whose body yields chunks, reads it all through a
// small buffer, closes it, and returns the usage reported (failing unless
// it was reported exactly once) and the bytes read.
func usRead(t testing.TB, p llmhttp.Provider, contentType string, chunks [][]byte) (llmhttp.Usage, []byte) {
	t.Helper()
	var calls []llmhttp.Usage
	resp := usResponse(p, contentType, &usChunks{chunks: chunks})
	llmhttp.TapUsage(resp, func(u llmhttp.Usage) { calls = append(calls, u) })
	var out bytes.Buffer
	buf := make([]byte, 7)
	for {
		n, err := resp.Body.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	require.NoError(t, resp.Body.Close())
	require.Len(t, calls, 1, "usage reported once")
	return calls[0], out.Bytes()
}

// usFixture reads testdata/usage/name.
func usFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "usage", name))
	require.NoError(t, err)
	return b
}

// usCase is a fixture and the usage it reports.
type usCase struct {
	file        string
	provider    llmhttp.Provider
	contentType string
	want        llmhttp.Usage
}

func usCases() []usCase {
	anth, oai := llmhttp.ProviderAnthropic, llmhttp.ProviderOpenAI
	const sse, js = "text/event-stream; charset=utf-8", "application/json"
	return []usCase{
		{"anthropic_stream.sse", anth, sse, llmhttp.Usage{
			Provider: anth, InputTokens: 25 + 1200 + 3000, CacheReadTokens: 3000, CacheWriteTokens: 1200,
			OutputTokens: 15, HasInput: true, HasOutput: true, Stream: true, Complete: true}},
		{"anthropic_message.json", anth, js, llmhttp.Usage{
			Provider: anth, InputTokens: 2095 + 1800, CacheReadTokens: 1800,
			OutputTokens: 503, HasInput: true, HasOutput: true, Complete: true}},
		{"anthropic_error.sse", anth, sse, llmhttp.Usage{
			// Cut by the error after "Twelve bytes" of text: 12/4 output
			// tokens estimated.
			Provider: anth, InputTokens: 1000, OutputTokens: 3, HasInput: true, Stream: true,
			Err: &llmhttp.StreamError{Type: "overloaded_error", Message: "Overloaded", Class: llmhttp.ClassOverloaded}}},
		{"openai_stream.sse", oai, sse, llmhttp.Usage{
			Provider: oai, InputTokens: 2006, CacheReadTokens: 1920, OutputTokens: 300,
			HasInput: true, HasOutput: true, Stream: true, Complete: true}},
		{"openai_stream_nousage.sse", oai, sse, llmhttp.Usage{
			// No include_usage: 36 bytes of text, 9 tokens estimated.
			Provider: oai, OutputTokens: 9, Stream: true, Complete: true}},
		{"openai_completion.json", oai, js, llmhttp.Usage{
			Provider: oai, InputTokens: 1117, CacheReadTokens: 1024, OutputTokens: 46,
			HasInput: true, HasOutput: true, Complete: true}},
		{"openai_error.sse", oai, sse, llmhttp.Usage{
			Provider: oai, OutputTokens: 2, Stream: true,
			Err: &llmhttp.StreamError{Type: "server_error", Message: "The server had an error while processing your request. Sorry about that!", Class: llmhttp.ClassServer}}},
		{"openai_error_200.json", oai, js, llmhttp.Usage{
			Provider: oai,
			Err:      &llmhttp.StreamError{Code: "502", Message: "Provider returned error", Class: llmhttp.ClassServer}}},
		{"responses_stream.sse", oai, sse, llmhttp.Usage{
			Provider: oai, InputTokens: 37, CacheReadTokens: 11, OutputTokens: 11,
			HasInput: true, HasOutput: true, Stream: true, Complete: true}},
	}
}

// usExpect returns c.want for a body of n bytes.
func (c usCase) usExpect(n int) llmhttp.Usage {
	w := c.want
	w.Bytes = int64(n)
	return w
}

// TestTapUsageFixtures reads every fixture whole, split in two at every byte
// boundary, and a byte at a time; with and without a Content-Type (then
// the tap sniffs JSON from events); and each event stream again with CRLF
// and with CR line ends. The usage must always be the same, and the bytes
// pass through unchanged.
func TestTapUsageFixtures(t *testing.T) {
	for _, c := range usCases() {
		t.Run(c.file, func(t *testing.T) {
			body := usFixture(t, c.file)
			variants := map[string][]byte{"lf": body}
			if c.want.Stream {
				variants["crlf"] = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
				variants["cr"] = bytes.ReplaceAll(body, []byte("\n"), []byte("\r"))
			}
			for name, b := range variants {
				want := c.usExpect(len(b))
				for _, ct := range []string{c.contentType, ""} {
					u, out := usRead(t, c.provider, ct, [][]byte{bytes.Clone(b)})
					assert.Equal(t, want, u, "%s whole, content type %q", name, ct)
					assert.Equal(t, b, out)
				}
				for i := 0; i <= len(b); i++ {
					u, out := usRead(t, c.provider, c.contentType, [][]byte{bytes.Clone(b[:i]), bytes.Clone(b[i:])})
					if !assert.Equal(t, want, u, "%s split at %d", name, i) {
						return
					}
					require.Equal(t, b, out)
				}
				ones := make([][]byte, len(b))
				for i := range b {
					ones[i] = []byte{b[i]}
				}
				u, out := usRead(t, c.provider, c.contentType, ones)
				assert.Equal(t, want, u, "%s a byte at a time", name)
				assert.Equal(t, b, out)
			}
		})
	}
}

// TestTapUsageCutStream cuts each event stream in the middle of its events:
// what was seen is reported, marked incomplete, whether the body then
// reports EOF or a read error, or is closed without being read further.
func TestTapUsageCutStream(t *testing.T) {
	body := usFixture(t, "anthropic_stream.sse")
	cut := bytes.Index(body, []byte("event: content_block_stop")) // after the text, before message_delta
	require.Positive(t, cut)
	errCut := errors.New("connection reset by peer")

	for _, end := range []string{"eof", "error", "close"} {
		t.Run(end, func(t *testing.T) {
			var got []llmhttp.Usage
			src := &usChunks{chunks: [][]byte{bytes.Clone(body[:cut])}}
			if end == "error" {
				src.final = errCut
			}
			resp := usResponse(llmhttp.ProviderAnthropic, "text/event-stream", src)
			llmhttp.TapUsage(resp, func(u llmhttp.Usage) { got = append(got, u) })
			if end == "close" {
				buf := make([]byte, cut)
				_, err := io.ReadFull(resp.Body, buf)
				require.NoError(t, err)
			} else {
				_, err := io.ReadAll(resp.Body)
				if end == "error" {
					require.ErrorIs(t, err, errCut)
				} else {
					require.NoError(t, err)
				}
			}
			require.Empty(t, got[:min(len(got), 0)])
			require.NoError(t, resp.Body.Close())
			require.NoError(t, resp.Body.Close())
			require.Len(t, got, 1)
			require.Equal(t, 1, src.closed, "the underlying body is closed once")
			u := got[0]
			assert.False(t, u.Complete)
			assert.True(t, u.HasInput)
			assert.Equal(t, int64(4225), u.InputTokens, "message_start's input counts")
			assert.False(t, u.HasOutput)
			// "Hello" and the second delta's 54 bytes of text (escapes as
			// one byte each, \u00e9 as six): 59 bytes, 15 tokens.
			assert.Equal(t, int64(15), u.OutputTokens, "estimated from the text seen")
			assert.Equal(t, int64(cut), u.Bytes)
		})
	}
}

// TestTapUsageClosedEarly closes a body after its first bytes: the usage
// seen is reported once, at Close, and not again.
func TestTapUsageClosedEarly(t *testing.T) {
	body := usFixture(t, "openai_stream.sse")
	var got []llmhttp.Usage
	resp := usResponse(llmhttp.ProviderOpenAI, "", &usChunks{chunks: [][]byte{bytes.Clone(body)}})
	llmhttp.TapUsage(resp, func(u llmhttp.Usage) { got = append(got, u) })
	buf := make([]byte, 100)
	_, err := io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, resp.Body.Close())
	require.Len(t, got, 1)
	assert.Equal(t, llmhttp.Usage{Provider: llmhttp.ProviderOpenAI, Stream: true, Bytes: 100}, got[0])
	_, err = resp.Body.Read(buf)
	assert.Error(t, err, "read after close")
	require.Len(t, got, 1)
}

// TestTapUsageCompleteWithoutEOF: a caller that closes the body right after
// the closing event, without reading to EOF (as SDKs do), still gets a
// complete usage.
func TestTapUsageCompleteWithoutEOF(t *testing.T) {
	body := usFixture(t, "anthropic_stream.sse")
	var got llmhttp.Usage
	resp := usResponse(llmhttp.ProviderAnthropic, "text/event-stream", &usChunks{chunks: [][]byte{bytes.Clone(body)}})
	llmhttp.TapUsage(resp, func(u llmhttp.Usage) { got = u })
	_, err := io.ReadFull(resp.Body, make([]byte, len(body)))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.True(t, got.Complete)
	assert.Equal(t, int64(15), got.OutputTokens)
}

// TestTapUsageLongEvents streams events far larger than any buffer: a text
// delta of 4 MiB on one data line, then the usage. The tap keeps no copy
// of them: reading a 4 MiB stream allocates as much as reading a 4 KiB one.
func TestTapUsageLongEvents(t *testing.T) {
	stream := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n")
		b.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"")
		b.Write(bytes.Repeat([]byte(`ab\"c`), n/5))
		b.WriteString("\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":")
		b.WriteString(strings.Repeat("9", 5))
		b.WriteString("}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
		return b.Bytes()
	}
	big := stream(4 << 20)
	u, out := usRead(t, llmhttp.ProviderAnthropic, "text/event-stream", [][]byte{bytes.Clone(big)})
	require.Equal(t, big, out)
	assert.Equal(t, llmhttp.Usage{Provider: llmhttp.ProviderAnthropic, InputTokens: 7, OutputTokens: 99999,
		HasInput: true, HasOutput: true, Stream: true, Complete: true, Bytes: int64(len(big))}, u)

	allocs := func(b []byte) float64 {
		buf := make([]byte, 32<<10)
		return testing.AllocsPerRun(20, func() {
			resp := usResponse(llmhttp.ProviderAnthropic, "text/event-stream", &usChunks{chunks: [][]byte{b}})
			llmhttp.TapUsage(resp, func(llmhttp.Usage) {})
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
		})
	}
	small := stream(4 << 10)
	assert.Equal(t, allocs(small), allocs(big), "allocations grow with the stream")
}

// TestTapUsageSharedTap: a second TapUsage on a tapped body subscribes to
// the same tap; one subscribing after the usage was reported is called at
// once.
func TestTapUsageSharedTap(t *testing.T) {
	body := usFixture(t, "openai_completion.json")
	resp := usResponse(llmhttp.ProviderOpenAI, "application/json", &usChunks{chunks: [][]byte{bytes.Clone(body)}})
	var a, b, c []int64
	llmhttp.TapUsage(resp, func(u llmhttp.Usage) { a = append(a, u.OutputTokens) })
	tapped := resp.Body
	llmhttp.TapUsage(resp, func(u llmhttp.Usage) { b = append(b, u.OutputTokens) })
	require.Same(t, tapped, resp.Body)
	_, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	llmhttp.TapUsage(resp, func(u llmhttp.Usage) { c = append(c, u.OutputTokens) })
	resp.Body.Close()
	assert.Equal(t, []int64{46}, a)
	assert.Equal(t, []int64{46}, b)
	assert.Equal(t, []int64{46}, c)

	var none []llmhttp.Usage
	TapNoBody := &http.Response{StatusCode: 204, Body: http.NoBody}
	llmhttp.TapUsage(TapNoBody, func(u llmhttp.Usage) { none = append(none, u) })
	assert.Equal(t, []llmhttp.Usage{{}}, none)
}

// TestTapUsageConcurrentClose closes the body while another goroutine reads
// it (run with -race): the usage is reported once.
func TestTapUsageConcurrentClose(t *testing.T) {
	pr, pw := io.Pipe()
	resp := usResponse(llmhttp.ProviderAnthropic, "text/event-stream", pr)
	var mu sync.Mutex
	calls := 0
	llmhttp.TapUsage(resp, func(llmhttp.Usage) { mu.Lock(); calls++; mu.Unlock() })
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(io.Discard, resp.Body) })
	pw.Write([]byte("event: message_start\ndata: {\"type\":\"message_start\"}\n\n"))
	resp.Body.Close()
	pw.CloseWithError(errors.New("closed"))
	wg.Wait()
	resp.Body.Close()
	assert.Equal(t, 1, calls)
}

// TestStreamErrorClass maps the errors providers send inside a response.
func TestStreamErrorClass(t *testing.T) {
	for _, c := range []struct {
		body string
		want llmhttp.Class
	}{
		{`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, llmhttp.ClassOverloaded},
		{`{"type":"error","error":{"type":"api_error","message":"Internal"}}`, llmhttp.ClassServer},
		{`{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}`, llmhttp.ClassRateLimited},
		{`{"type":"error","error":{"type":"timeout_error","message":"t"}}`, llmhttp.ClassTimeout},
		{`{"type":"error","error":{"type":"something_new","message":"?"}}`, llmhttp.ClassServer},
		{`{"error":{"message":"m","type":"service_unavailable_error","code":"server_is_overloaded"}}`, llmhttp.ClassOverloaded},
		{`{"error":{"message":"m","type":"server_error","code":null}}`, llmhttp.ClassServer},
		{`{"error":{"message":"m","type":"insufficient_quota","code":"insufficient_quota"}}`, llmhttp.ClassQuota},
		{`{"error":{"message":"m","type":"rate_limit_error","code":"slow_down"}}`, llmhttp.ClassSlowDown},
		{`{"error":{"message":"m","type":"invalid_request_error","code":"context_length_exceeded"}}`, llmhttp.ClassClient},
		{`{"error":{"code":529,"message":"Provider overloaded"}}`, llmhttp.ClassOverloaded},
		{`{"error":{"code":429,"message":"Rate limited"}}`, llmhttp.ClassRateLimited},
	} {
		body := "event: error\ndata: " + c.body + "\n\n"
		u, _ := usRead(t, llmhttp.ProviderOpenAI, "text/event-stream", [][]byte{[]byte(body)})
		if assert.NotNil(t, u.Err, c.body) {
			assert.Equal(t, c.want, u.Err.Class, c.body)
			assert.Contains(t, u.Err.Error(), "llmhttp: error in response body: ")
		}
		assert.False(t, u.Complete)
	}
	// An error event without an error object is still an error.
	u, _ := usRead(t, llmhttp.ProviderAnthropic, "text/event-stream", [][]byte{[]byte("event: error\ndata: oops\n\n")})
	require.NotNil(t, u.Err)
	assert.Equal(t, llmhttp.ClassServer, u.Err.Class)
}

// TestTapUsageLLMHTTPTest reads both providers' real replies from
// llmhttptest — JSON and streams, with include_usage, a mid-stream error
// and a cut stream — and checks the tap against the server's own counts.
func TestTapUsageLLMHTTPTest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{MeanOutput: 40})
		tr := h.Transport()
		type call struct {
			p      llmhttptest.Provider
			stream bool
			fault  llmhttptest.FaultKind
		}
		for _, c := range []call{
			{llmhttptest.Anthropic, false, 0}, {llmhttptest.Anthropic, true, 0},
			{llmhttptest.OpenAI, false, 0}, {llmhttptest.OpenAI, true, 0},
			{llmhttptest.Anthropic, true, llmhttptest.StreamError}, {llmhttptest.OpenAI, true, llmhttptest.StreamError},
			{llmhttptest.Anthropic, true, llmhttptest.StreamCut}, {llmhttptest.OpenAI, true, llmhttptest.StreamCut},
		} {
			if c.fault != 0 {
				h.Inject(llmhttptest.Fault{Kind: c.fault, Count: 1})
			}
			before := h.Stats()
			req := usLiveRequest(t.Context(), c.p, c.stream, "one two three four five six seven eight")
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode)
			var u llmhttp.Usage
			llmhttp.TapUsage(resp, func(got llmhttp.Usage) { u = got })
			_, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			input, output := usServerTokens(h.Stats())
			in0, out0 := usServerTokens(before)
			input, output = input-in0, output-out0
			what := c.p.String()
			if c.stream {
				what += " stream"
			}
			assert.Equal(t, c.stream, u.Stream, what)
			if c.fault == 0 || c.p == llmhttptest.Anthropic {
				// OpenAI reports the input only in its last chunk;
				// Anthropic in message_start.
				assert.Equal(t, input, u.InputTokens, what)
				assert.True(t, u.HasInput, what)
			} else {
				assert.False(t, u.HasInput, what)
			}
			switch c.fault {
			case 0:
				require.NoError(t, rerr)
				assert.True(t, u.Complete, what)
				assert.True(t, u.HasOutput, what)
				assert.Equal(t, output, u.OutputTokens, what)
				assert.Nil(t, u.Err, what)
			case llmhttptest.StreamError:
				assert.False(t, u.Complete, what)
				if assert.NotNil(t, u.Err, what) {
					assert.Equal(t, llmhttp.ClassOverloaded, u.Err.Class, what)
				}
				assert.InDelta(t, output, u.OutputTokens, float64(output)/2+2, what+": estimated from the text")
			case llmhttptest.StreamCut:
				require.ErrorIs(t, rerr, llmhttptest.ErrConnReset)
				assert.False(t, u.Complete, what)
				assert.Nil(t, u.Err, what)
				assert.InDelta(t, output, u.OutputTokens, float64(output)/2+2, what+": estimated from the text")
			}
		}
	})
}

// usLiveRequest is a request to llmhttptest.
func usLiveRequest(ctx context.Context, p llmhttptest.Provider, stream bool, text string) *http.Request {
	var url, body string
	s := "false"
	if stream {
		s = "true"
	}
	if p == llmhttptest.Anthropic {
		url = "https://api.anthropic.com/v1/messages"
		body = `{"model":"claude-sonnet-4-5","max_tokens":400,"stream":` + s + `,"messages":[{"role":"user","content":"` + text + `"}]}`
	} else {
		url = "https://api.openai.com/v1/chat/completions"
		body = `{"model":"gpt-4o","max_tokens":400,"stream":` + s + `,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"` + text + `"}]}`
		if !stream {
			body = `{"model":"gpt-4o","max_tokens":400,"messages":[{"role":"user","content":"` + text + `"}]}`
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if p == llmhttptest.Anthropic {
		req.Header.Set("X-Api-Key", "sk-ant-test")
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer sk-test")
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// usServerTokens sums the tokens llmhttptest charged over its partitions.
func usServerTokens(s llmhttptest.Stats) (input, output int64) {
	for _, p := range s.Partitions {
		input += p.InputTokens
		output += p.OutputTokens
	}
	return input, output
}
