package llmhttptest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// anthropicReq returns a Messages body with text as the user's message.
func anthropicReq(model string, maxTokens int, text string, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model": model, "max_tokens": maxTokens, "stream": stream,
		"messages": []any{map[string]any{"role": "user", "content": text}},
	})
	return string(b)
}

// openAIReq returns a Chat Completions body; maxTokens 0 leaves it out.
func openAIReq(model string, maxTokens int, text string, stream, includeUsage bool) string {
	m := map[string]any{
		"model": model, "stream": stream,
		"messages": []any{map[string]any{"role": "user", "content": text}},
	}
	if maxTokens > 0 {
		m["max_completion_tokens"] = maxTokens
	}
	if includeUsage {
		m["stream_options"] = map[string]any{"include_usage": true}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// chars returns a text of n tokens by the server's rule (4n characters).
func chars(n int) string { return strings.Repeat("abcd", n) }

// send posts body to path through rt with the provider's key header.
func send(t *testing.T, rt http.RoundTripper, path, apiKey, body string) (*http.Response, error) {
	t.Helper()
	return sendCtx(context.Background(), rt, path, apiKey, body)
}

func sendCtx(ctx context.Context, rt http.RoundTripper, path, apiKey, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://fake.test"+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		if strings.Contains(path, "/messages") {
			req.Header.Set("x-api-key", apiKey)
			req.Header.Set("anthropic-version", "2023-06-01")
		} else {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
	}
	return rt.RoundTrip(req)
}

// do is send that fails the test on a transport error and reads the body.
func do(t *testing.T, rt http.RoundTripper, path, apiKey, body string) (*http.Response, string) {
	t.Helper()
	resp, err := send(t, rt, path, apiKey, body)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// event is one server-sent event.
type event struct{ name, data string }

// readEvents parses an SSE stream strictly: each event is optional
// "event:" and one "data:" line, then a blank line.
func readEvents(t *testing.T, r io.Reader) ([]event, error) {
	t.Helper()
	var evs []event
	var cur event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data == "" {
				return evs, fmt.Errorf("blank line without data after %d events", len(evs))
			}
			evs = append(evs, cur)
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if cur.data != "" {
				return evs, fmt.Errorf("two data lines in one event")
			}
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			return evs, fmt.Errorf("unexpected line %q", line)
		}
	}
	if cur != (event{}) {
		return evs, fmt.Errorf("unterminated event %+v", cur)
	}
	return evs, sc.Err()
}

// jsonField decodes s and returns the value at the dotted path.
func jsonField(t *testing.T, s, path string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
