package llmhttptest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

// closeCounter counts Close calls on a request body.
type closeCounter struct {
	io.Reader
	closes atomic.Int32
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

func TestTransportContract(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(2)})
		body := &closeCounter{Reader: strings.NewReader(anthropicReq("m", 10, "x", false))}
		req, _ := http.NewRequest(http.MethodPost, "https://api.anthropic.com/v1/messages", body)
		req.Header.Set("x-api-key", "k")
		before := req.Header.Clone()
		resp, err := h.Transport().RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if n := body.closes.Load(); n != 1 {
			t.Errorf("request body closed %d times, want 1", n)
		}
		if resp.Request != req {
			t.Error("resp.Request is not the request")
		}
		if len(req.Header) != len(before) {
			t.Errorf("request headers changed: %v", req.Header)
		}
		if resp.StatusCode != 200 || resp.Status != "200 OK" || resp.ProtoMajor != 1 || resp.ContentLength <= 0 {
			t.Errorf("response = %d %q proto %d length %d", resp.StatusCode, resp.Status, resp.ProtoMajor, resp.ContentLength)
		}
		b, _ := io.ReadAll(resp.Body)
		if int64(len(b)) != resp.ContentLength {
			t.Errorf("body %d bytes, ContentLength %d", len(b), resp.ContentLength)
		}
		resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
			t.Error("Read after Close succeeded")
		}

		// Through an http.Client, with CloseIdleConnections.
		c := &http.Client{Transport: h.Transport()}
		req, _ = http.NewRequest(http.MethodPost, "http://x/v1/chat/completions", strings.NewReader(openAIReq("m", 10, "x", false, false)))
		req.Header.Set("Authorization", "Bearer k")
		resp, err = c.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("client: %v %v", resp, err)
		}
		resp.Body.Close()
		c.CloseIdleConnections()
	})
}

func TestTransportCancelDuringLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Latency: 10 * time.Second, Output: fixedOutput(2)})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		resp, err := sendCtx(ctx, h.Transport(), chat, "k", openAIReq("m", 10, "x", false, false))
		if resp != nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, %v; want DeadlineExceeded", resp, err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("returned after %v, want 1s", d)
		}
		synctest.Wait() // the handler's goroutine has ended or is blocked: it must end
		if st := h.Stats(); st.Canceled != 1 {
			t.Errorf("Canceled = %d", st.Canceled)
		}
		// An already cancelled context never reaches the handler.
		cancel()
		if _, err := sendCtx(ctx, h.Transport(), chat, "k", openAIReq("m", 10, "x", false, false)); err == nil {
			t.Error("a cancelled request succeeded")
		}
		if st := h.Stats(); st.Requests != 1 {
			t.Errorf("Requests = %d, want 1", st.Requests)
		}
	})
}

// A client leaving a non-streamed request mid-generation is charged the
// output generated until then.
func TestTransportCancelMidGeneration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Latency: time.Second, TokenLatency: 100 * time.Millisecond, Output: fixedOutput(50),
		})
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if _, err := sendCtx(ctx, h.Transport(), msgs, "k", anthropicReq("m", 100, "x", false)); err == nil {
			t.Fatal("no error")
		}
		synctest.Wait()
		for _, p := range h.Stats().Partitions {
			if p.OutputTokens != 20 || p.Canceled != 1 {
				t.Errorf("partition %+v, want 20 output tokens charged and 1 canceled", p)
			}
		}
	})
}

func TestTransportStreamCloseAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{TokenLatency: time.Second, Output: fixedOutput(100)})
		rt := h.Transport()

		// Closing the body mid-stream ends the handler.
		resp, err := send(t, rt, msgs, "a", anthropicReq("m", 200, "x", true))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		for got := ""; !strings.Contains(got, "content_block_delta"); {
			n, err := resp.Body.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got += string(buf[:n])
		}
		resp.Body.Close()
		synctest.Wait()

		// Cancelling the context mid-stream fails the read at once.
		ctx, cancel := context.WithCancel(t.Context())
		resp, err = sendCtx(ctx, rt, msgs, "b", anthropicReq("m", 200, "x", true))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(5 * time.Second)
			cancel()
		}()
		start := time.Now()
		_, err = io.ReadAll(resp.Body)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("read returned after %v, want 5s", d)
		}
		resp.Body.Close()
		synctest.Wait()
		st := h.Stats()
		if st.Canceled != 2 {
			t.Errorf("Canceled = %d, want 2", st.Canceled)
		}
		for k, p := range st.Partitions {
			if p.OutputTokens <= 0 || p.OutputTokens >= 100 {
				t.Errorf("%v: %d output tokens charged, want part of 100", k.Credential, p.OutputTokens)
			}
		}
	})
}

func TestTransportForeignHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		do := func(h http.HandlerFunc, method string) (*http.Response, error) {
			req, _ := http.NewRequest(method, "http://x/", nil)
			return llmhttptest.NewTransport(h).RoundTrip(req)
		}
		// A plain handler: buffered, implicit 200, sniffed content type.
		resp, err := do(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }, "GET")
		if err != nil || resp.StatusCode != 200 || resp.ContentLength != 5 || resp.Header.Get("Content-Type") == "" {
			t.Fatalf("plain: %+v %v", resp, err)
		}
		resp.Body.Close()
		// HEAD has no body.
		resp, err = do(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }, "HEAD")
		if err != nil || resp.Body != http.NoBody {
			t.Fatalf("HEAD: %+v %v", resp, err)
		}
		// A panic is an error, not a crash.
		_, err = do(func(w http.ResponseWriter, r *http.Request) { panic("boom") }, "GET")
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("panic: %v", err)
		}
		_, err = do(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }, "GET")
		if !errors.Is(err, llmhttptest.ErrConnReset) {
			t.Errorf("abort: %v", err)
		}
		// A panic after a flush breaks the body.
		resp, err = do(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, "GET")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if string(b) != "part" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("body %q, err %v", b, err)
		}
		resp.Body.Close()
		// A nil Handler is an error.
		if _, err := (&llmhttptest.Transport{}).RoundTrip(httpReq()); err == nil {
			t.Error("nil Handler: no error")
		}
	})
}

func httpReq() *http.Request {
	req, _ := http.NewRequest("GET", "http://x/", nil)
	return req
}
