package demo

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// Output runs an example's run for a test, failing t with what it printed
// if it fails; it logs the output and returns it.
func Output(t testing.TB, run func(w io.Writer) error) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	return out.String()
}

// Contains reports, as an error of t, each of want that got lacks.
func Contains(t testing.TB, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}
