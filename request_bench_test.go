package llmhttp

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkDescribe measures describe (scan the body through GetBody,
// fingerprint the key) on chat bodies of 1 KiB, 100 KiB and 1 MiB, against
// the json.Unmarshal of the whole body it replaced.
func BenchmarkDescribe(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10, 1 << 20} {
		body := []byte(`{"model":"claude-bench","max_tokens":1024,"messages":[{"role":"user","content":"` +
			strings.Repeat("lorem ipsum ", size/12) + `"}]}`)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodPost, "https://api.anthropic.test/v1/messages", bytes.NewReader(body))
			req.Header.Set("X-Api-Key", "sk-ant-bench")
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if info := describe(req); info.partition.Model != "claude-bench" {
					b.Fatal(info.partition.Model)
				}
			}
		})
	}
}
