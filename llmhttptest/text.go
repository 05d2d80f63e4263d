package llmhttptest

import (
	"math/rand/v2"
	"strings"
)

// words are the generated text: each output token is one three-letter word
// and a space, so the text of n tokens has 4n−1 characters and counts as n
// tokens by the characters/4 rule.
var words = [...]string{"the", "fox", "saw", "two", "big", "owl", "fly", "off", "and", "one", "red", "ant", "ran", "far"}

// outputText returns tokens [from, to) of a generation of n tokens.
func outputText(from, to, n int64) string {
	var b strings.Builder
	b.Grow(int(4 * (to - from)))
	for i := from; i < to; i++ {
		b.WriteString(words[i%int64(len(words))])
		if i < n-1 {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// idSalt separates the id stream from the other draws of a request.
const idSalt = 0x9e3779b97f4a7c15

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ids derives a request's identifiers from the seed and its arrival number,
// so they are stable across runs.
type ids struct{ rng *rand.Rand }

func newIDs(seed uint64, seq int64) ids {
	return ids{rand.New(rand.NewPCG(seed^idSalt, uint64(seq)))}
}

// next returns prefix followed by n characters of alphabet.
func (g ids) next(prefix string, n int, alphabet string) string {
	b := make([]byte, 0, len(prefix)+n)
	b = append(b, prefix...)
	for range n {
		b = append(b, alphabet[g.rng.IntN(len(alphabet))])
	}
	return string(b)
}
