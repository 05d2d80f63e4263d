package redis

import (
	"sync"

	"github.com/llmhttp/llmhttp"
)

// Key layout, for a partition P = Prefix + "pacer:" + host|credential|model
// (the credential is its fingerprint, [llmhttp.Fingerprint]: a hash, never
// the key), all in one Redis Cluster hash slot through the {P} hash tag:
//
//	rate:{P}:<dimension>  a bucket: redis_rate v10's GCRA state (see BucketKey)
//	{P}:limits            hash: c<d> capacity and r<d> refill per second of dimension d (1-based)
//	{P}:gate              when the gate opens
//	{P}:queue             sorted set: the tickets of declined reservations
//	Prefix + "budget:" + name[|tenant]  a budget's counts (see Store.Budgets)
//
// Buckets expire when they are full again, the gate when it opens, the
// queue when its last ticket lapses, the limits after a day without use, a
// budget when its window has passed.

// redisRatePrefix is what redis_rate puts before the keys it is given.
const redisRatePrefix = "rate:"

// limitsTTL is how long the limits of a partition no request used are kept,
// in seconds.
const limitsTTL = 24 * 60 * 60

// partKeys are the keys of one partition, in the order the scripts take
// them: the buckets by dimension, the limits, the gate, the queue.
type partKeys [llmhttp.NumDimensions + 3]string

// keyCache builds each partition's keys once.
type keyCache struct {
	prefix string
	m      sync.Map // llmhttp.Partition → *partKeys
}

// tag returns the hash-tagged name of partition p: host|credential|model,
// and |lane for a lane of its own (see [llmhttp.Partition.String]).
func (c *keyCache) tag(p llmhttp.Partition) string {
	return "{" + c.prefix + "pacer:" + p.String() + "}"
}

func (c *keyCache) keys(p llmhttp.Partition) *partKeys {
	if k, ok := c.m.Load(p); ok {
		return k.(*partKeys)
	}
	tag := c.tag(p)
	k := new(partKeys)
	for d := range llmhttp.NumDimensions {
		k[d] = redisRatePrefix + tag + ":" + d.String()
	}
	k[llmhttp.NumDimensions] = tag + ":limits"
	k[llmhttp.NumDimensions+1] = tag + ":gate"
	k[llmhttp.NumDimensions+2] = tag + ":queue"
	v, _ := c.m.LoadOrStore(p, k)
	return v.(*partKeys)
}
