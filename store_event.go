package llmhttp

import "time"

// StoreEvent describes a shared store ([PacerSettings.Store],
// [BudgetSettings.Store]) switching to its local fallback, because the
// state it shares (in Redis, say) failed or was too slow, or back to shared
// state when it answers again, for [Observer.OnStore]. A store serves
// every partition, so the event names none; it carries no credential.
type StoreEvent struct {
	// Store is the name the store gives itself ("redis" for
	// github.com/llmhttp/llmhttp/redis).
	Store string
	// Shared is true when the store's state is shared again (it
	// recovered), false when it fell back to the process's own local
	// state.
	Shared bool
	// Err is the failure that made the store fall back; nil on recovery.
	Err error
	// Since is when the previous mode began: when the store last became
	// shared (zero if it never fell back before) for a fallback, when it
	// fell back for a recovery. Down, on recovery, is how long the store
	// was local; 0 for a fallback.
	Since time.Time
	Down  time.Duration
}
