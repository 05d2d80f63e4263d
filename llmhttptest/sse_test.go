package llmhttptest_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmhttp/llmhttp/llmhttptest"
)

func TestAnthropicStreamFraming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(10)})
		resp, b := do(t, h.Transport(), msgs, "k", anthropicReq("claude-test", 100, chars(40), true))
		wantStatus(t, resp, b, 200)
		evs, err := readEvents(t, strings.NewReader(b))
		if err != nil {
			t.Fatalf("%v in\n%s", err, b)
		}
		var names []string
		var text strings.Builder
		for _, e := range evs {
			names = append(names, e.name)
			if got := jsonField(t, e.data, "type"); got != e.name {
				t.Errorf("event %s carries type %v", e.name, got)
			}
			if e.name == "content_block_delta" {
				text.WriteString(jsonField(t, e.data, "delta.text").(string))
			}
		}
		want := "message_start content_block_start ping content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop"
		if got := strings.Join(names, " "); got != want {
			t.Errorf("events:\n got %s\nwant %s", got, want)
		}
		if got, want := text.String(), "the fox saw two big owl fly off and one"; got != want {
			t.Errorf("text = %q, want %q", got, want)
		}
		if got := jsonField(t, evs[0].data, "message.usage.input_tokens"); got != 40.0 {
			t.Errorf("message_start input_tokens = %v", got)
		}
		md := evs[len(evs)-2].data
		if jsonField(t, md, "usage.output_tokens") != 10.0 || jsonField(t, md, "delta.stop_reason") != "end_turn" {
			t.Errorf("message_delta = %s", md)
		}
	})
}

func TestOpenAIStreamFraming(t *testing.T) {
	for _, usage := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			h := llmhttptest.NewHandler(llmhttptest.Config{Output: fixedOutput(6)})
			resp, b := do(t, h.Transport(), chat, "k", openAIReq("gpt-test", 6, chars(8), true, usage))
			wantStatus(t, resp, b, 200)
			evs, err := readEvents(t, strings.NewReader(b))
			if err != nil {
				t.Fatalf("%v in\n%s", err, b)
			}
			last := evs[len(evs)-1]
			if last.data != "[DONE]" || last.name != "" {
				t.Fatalf("last event = %+v, want data: [DONE]", last)
			}
			evs = evs[:len(evs)-1]
			// role chunk, 2 content chunks (4+2 tokens), finish chunk, usage chunk
			want := 4
			if usage {
				want = 5
			}
			if len(evs) != want {
				t.Fatalf("%d chunks, want %d:\n%s", len(evs), want, b)
			}
			var id string
			for i, e := range evs {
				var c struct {
					ID      string           `json:"id"`
					Object  string           `json:"object"`
					Choices []map[string]any `json:"choices"`
					Usage   *json.RawMessage `json:"usage"`
				}
				if err := json.Unmarshal([]byte(e.data), &c); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					id = c.ID
				}
				if c.ID != id || c.Object != "chat.completion.chunk" {
					t.Errorf("chunk %d: id %s object %s", i, c.ID, c.Object)
				}
				hasUsageKey := strings.Contains(e.data, `"usage":`)
				if hasUsageKey != usage {
					t.Errorf("chunk %d: usage key present = %v, want %v", i, hasUsageKey, usage)
				}
				if usage && i == len(evs)-1 {
					if len(c.Choices) != 0 || jsonField(t, e.data, "usage.completion_tokens") != 6.0 || jsonField(t, e.data, "usage.prompt_tokens") != 8.0 {
						t.Errorf("usage chunk = %s", e.data)
					}
				}
			}
			fin := evs[3].data
			if jsonField(t, fin, "choices") == nil || !strings.Contains(fin, `"finish_reason":"length"`) {
				t.Errorf("finish chunk = %s", fin)
			}
		})
	}
}

// A stream is delivered as it is generated: the first delta arrives after
// Latency + one delta's tokens, not after the whole generation.
func TestStreamIsIncremental(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output:       fixedOutput(40),
			Latency:      500 * time.Millisecond,
			TokenLatency: 10 * time.Millisecond,
		})
		start := time.Now()
		resp, err := send(t, h.Transport(), msgs, "k", anthropicReq("m", 100, "hi", true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if d := time.Since(start); d != 0 {
			t.Errorf("head after %v, want at once", d)
		}
		buf := make([]byte, 64<<10)
		var got strings.Builder
		for !strings.Contains(got.String(), "content_block_delta") {
			n, err := resp.Body.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d != 540*time.Millisecond {
			t.Errorf("first delta after %v, want 540ms", d)
		}
		rest, err := io.ReadAll(resp.Body)
		if err != nil || !strings.Contains(string(rest), "message_stop") {
			t.Fatalf("rest: %v %s", err, rest)
		}
		if d := time.Since(start); d != 900*time.Millisecond {
			t.Errorf("stream done after %v, want 900ms", d)
		}
	})
}

// A non-streamed reply takes Latency + TokenLatency × output.
func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := llmhttptest.NewHandler(llmhttptest.Config{
			Output:       fixedOutput(40),
			Latency:      500 * time.Millisecond,
			TokenLatency: 10 * time.Millisecond,
		})
		start := time.Now()
		resp, b := do(t, h.Transport(), chat, "k", openAIReq("m", 100, "hi", false, false))
		wantStatus(t, resp, b, 200)
		if d := time.Since(start); d != 900*time.Millisecond {
			t.Errorf("reply after %v, want 900ms", d)
		}
		wantHeader(t, resp, "openai-processing-ms", "900")
	})
}
