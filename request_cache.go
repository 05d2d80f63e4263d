package llmhttp

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"sync/atomic"
	"unsafe"
)

// The caches below spare describe the work and the allocations that every
// request of a partition would otherwise repeat: hashing its API key and
// building its host and model strings. Like the pools of request.go and
// pacer_body.go they are caches, not state: nothing depends on what they
// hold, and a miss only costs the work they save. Each is a small
// direct-mapped table of immutable entries behind atomic pointers, so a hit
// costs a hash and a load, and concurrent requests never wait on a lock.

// cacheSlots is the number of entries of each cache: far more than the
// credentials, hosts or models a program usually talks to.
const cacheSlots = 64

var (
	// cacheSeed and cacheSeed2 seed the caches' hashes, afresh in each
	// process.
	cacheSeed, cacheSeed2 = maphash.MakeSeed(), maphash.MakeSeed()

	fingerprints [cacheSlots]atomic.Pointer[fpEntry]
	hosts        [cacheSlots]atomic.Pointer[hostEntry]
	models       [cacheSlots]atomic.Pointer[string]
)

// fpEntry is a cached fingerprint, found by two independent 64-bit hashes
// of the key (with seeds drawn at random per process): the key itself is
// never kept. Two keys of the same 128 bits of hash would share a
// fingerprint, which the 2^-128 odds make a non-event.
type fpEntry struct {
	h1, h2 uint64
	fp     string
}

// Fingerprint returns a short, stable, non-reversible name for an API key:
// 16 hex digits of its SHA-256. It returns "" for "".
func Fingerprint(key string) string {
	if key == "" {
		return ""
	}
	h1, h2 := maphash.String(cacheSeed, key), maphash.String(cacheSeed2, key)
	slot := &fingerprints[h1%cacheSlots]
	if e := slot.Load(); e != nil && e.h1 == h1 && e.h2 == h2 {
		return e.fp
	}
	sum := sha256.Sum256([]byte(key))
	fp := hex.EncodeToString(sum[:8])
	slot.Store(&fpEntry{h1: h1, h2: h2, fp: fp})
	return fp
}

// hostEntry is a cached partition host, scheme + "://" + host.
type hostEntry struct{ scheme, host, joined string }

// partitionHost returns scheme + "://" + host, the same string for every
// request to the same endpoint.
func partitionHost(scheme, host string) string {
	if len(host) > internMax {
		return scheme + "://" + host
	}
	slot := &hosts[maphash.String(cacheSeed, host)%cacheSlots]
	if e := slot.Load(); e != nil && e.host == host && e.scheme == scheme {
		return e.joined
	}
	e := &hostEntry{scheme: scheme, host: host, joined: scheme + "://" + host}
	slot.Store(e)
	return e.joined
}

// internMax bounds the strings internModel keeps.
const internMax = 256

// internModel returns string(b), the same string for every request of the
// same model (of at most internMax bytes).
func internModel(b []byte) string {
	if len(b) > internMax {
		return string(b)
	}
	slot := &models[maphash.Bytes(cacheSeed, b)%cacheSlots]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}

// partRef is the identity of one partition, shared by the requests of the
// partition: each layer keeps in it the state it found for the partition
// last (its counters, its pacer state, its circuit), so that the next
// request finds it without a lookup in the layer's own table keyed by the
// partition's strings. Each slot names its owner and is checked against the
// layer asking; a partition's state in a layer never changes once created
// (a forgotten circuit is marked), so a slot is a hint that is either
// right or ignored.
type partRef struct {
	key      Partition
	counters atomic.Pointer[countersRef]
	pacer    atomic.Pointer[pacerPart]
	circuit  atomic.Pointer[circuitRef]
}

// countersRef is a partition's counters in the statsTable table.
type countersRef struct {
	table *statsTable
	c     *partCounters
}

// circuitRef is a partition's circuit in the Breaker b.
type circuitRef struct {
	b *Breaker
	c *circuit
}

// refSlots is the number of entries of the partRef cache.
const refSlots = 256

// partRefs caches the partRef of recent partitions, found by the strings
// of the partition themselves: the caches above hand every request of a
// partition the same host, credential and model strings, so hashing
// their addresses finds the partition's entry without reading the strings;
// equal strings elsewhere (past a cache's bound) still match by content.
var partRefs [refSlots]atomic.Pointer[partRef]

// refOf returns the partRef of p, creating it when it is not cached.
func refOf(p *Partition) *partRef {
	h := uint64(uintptr(unsafe.Pointer(unsafe.StringData(p.Host))))
	h = (h ^ uint64(uintptr(unsafe.Pointer(unsafe.StringData(p.Credential))))) * 0x9e3779b97f4a7c15
	h = (h ^ uint64(uintptr(unsafe.Pointer(unsafe.StringData(p.Model))))) * 0x9e3779b97f4a7c15
	// The lane is LaneFast or none: its length tells them apart.
	h = (h ^ uint64(len(p.Lane))) * 0x9e3779b97f4a7c15
	slot := &partRefs[h>>56] // refSlots = 256
	if r := slot.Load(); r != nil && r.key == *p {
		return r
	}
	r := &partRef{key: *p}
	slot.Store(r)
	return r
}
