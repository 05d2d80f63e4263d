// Package redis shares llmhttp's pacing and budgets between processes
// through Redis, so that many replicas of a service on one API key pace
// and spend as one (design.md §8).
//
// Each replica's pacer alone sees only its own traffic: the first burst
// after a deploy, or a 429 that reaches every replica at once, is met by
// each on its own. A [Store] on a Redis every replica reaches gives their
// pacers one set of buckets and one gate per partition, and their budget
// layers one count per budget:
//
//	rdb := goredis.NewClient(&goredis.Options{Addr: "redis:6379", ContextTimeoutEnabled: true})
//	store := redis.NewStore(rdb, redis.Settings{Logger: logger})
//	client := &http.Client{Transport: llmhttp.New(nil,
//		llmhttp.WithPacerSettings(llmhttp.PacerSettings{Store: store.Pacer()}),
//		llmhttp.WithBudgetSettings(llmhttp.BudgetSettings{Budgets: budgets, Store: store.Budgets()}),
//	)}
//
// # Pacing
//
// Each partition (scheme+host, credential fingerprint, model) has a GCRA
// bucket per rate-limit dimension — requests, requests per day, tokens,
// input and output tokens — in the format of
// github.com/go-redis/redis_rate/v10, and a "closed until" gate. A request
// is admitted by its pacer's own queue first (priorities, concurrency cap
// and slow-down stay local), then reserves its cost in the shared buckets
// in one round trip, and waits as long as they say (a wait beyond a
// horizon is not reserved ahead: the request queues a ticket in Redis and
// asks again when its turn is near); its answer settles it in another: the
// unused part of its reservation comes back (never above a bucket's
// capacity), output beyond the estimate is force-debited, a 429 closes the
// gate for every replica, and the rate-limit headers of every answer
// resynchronise the buckets, so that the replicas converge on the server's
// count even when clients outside llmhttp use the key. See
// [Store.Pacer].
//
// # Budgets
//
// [Store.Budgets] keeps each budget's counts in one Redis hash of one field
// per slot of its window: every replica charges and reads the same budget.
//
// # When Redis is down or slow
//
// Every call is bounded by [Settings.Timeout]. A call that fails or times
// out switches the store to its local fallback: the pacers pace from their
// own view of the headers (as without a store), the budgets are counted in
// the process. No request fails because Redis does. One probe at a time
// tries Redis again, with backoff; when it answers the store is shared
// again. Each switch is reported to [Settings.OnFallback], to the OnStore
// hook of [Settings.Observer] (an llmhttp.StoreEvent with Store "redis": the
// otel and prom adapters export it as metrics) and to [Settings.Logger],
// and counted in [Store.Stats] (the pacer counts the failed calls too, in
// llmhttp's PacerStats.StoreErrors):
//
//	c, err := prom.New(prometheus.DefaultRegisterer)
//	…
//	store := redis.NewStore(rdb, redis.Settings{Logger: logger, Observer: c.Observer()})
//
// # Keys
//
// Keys start with [Settings.Prefix] ("llmhttp:") and name a partition by
// its host, credential fingerprint ([llmhttp.Fingerprint]: a hash, never
// the key) and model. A partition's keys share a Redis Cluster hash slot;
// every script touches one partition. Every key expires on its own: a
// bucket when it is full again, the gate when it opens, a partition's
// limits after a day without use, the queue when its last ticket lapses, a
// budget when its window has passed.
//
//	rate:{llmhttp:pacer:<host>|<fingerprint>|<model>}:<dimension>   GCRA state (redis_rate)
//	{llmhttp:pacer:<host>|<fingerprint>|<model>}:limits             capacities, refills, claim, young debits
//	{llmhttp:pacer:<host>|<fingerprint>|<model>}:gate               closed until
//	{llmhttp:pacer:<host>|<fingerprint>|<model>}:queue              tickets of declined reservations
//	llmhttp:budget:<budget>[|<tenant>]                               counts per slot
//
// # Cost
//
// A request costs two round trips (one to reserve, one to settle; a stream
// settles once more when its body ends, and a request queued behind the
// horizon asks once or twice more), each one EVALSHA of a script of about
// a dozen commands. The Redis clock (TIME) is used throughout, so replicas
// whose clocks disagree still agree. See the benchmarks for figures.
package redis
