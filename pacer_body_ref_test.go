package llmhttp

import "bytes"

// scanUsageRef is usageScan.scan as it was before its keys were matched by
// suffix (a copy kept for FuzzUsageScan's differential check, with
// bytes.Index for indexTokens): it finds every `…_tokens"`, takes the key
// from the quote before it, and switches on the whole key.
func scanUsageRef(b []byte) usageScan {
	s := usageScan{output: -1, input: -1, cacheWrite: -1}
	for i := 0; i < len(b); {
		j := bytes.Index(b[i:], []byte(tokensSuffix))
		if j < 0 {
			return s
		}
		keyEnd := i + j + len(tokensSuffix) - 1 // the closing quote
		q := bytes.LastIndexByte(b[i:i+j], '"')
		start := i
		i = keyEnd + 1
		if q < 0 {
			continue
		}
		v, ok := countAt(b[i:])
		if !ok {
			continue
		}
		s.refCount(string(b[start+q+1:keyEnd]), v)
	}
	return s
}

// refCount records count v of key as the test references read keys: the
// last output count, the first input and cache-write counts.
func (s *usageScan) refCount(key string, v int64) {
	switch key {
	case "output_tokens", "completion_tokens":
		s.output = v
	case "input_tokens", "prompt_tokens":
		if s.input < 0 {
			s.input = v
		}
	case "cache_creation_input_tokens":
		if s.cacheWrite < 0 {
			s.cacheWrite = v
		}
	}
}
