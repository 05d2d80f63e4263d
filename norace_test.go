//go:build !race

package llmhttp_test

// raceEnabled reports a build with the race detector, under which
// sync.Pool drops what it is given at random (its misses allocate).
const raceEnabled = false
