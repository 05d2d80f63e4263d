package redis

import (
	"sync"
	"time"

	"github.com/llmhttp/llmhttp"
)

// tickets remembers the queue tickets of this process's declined
// reservations (see reserve.lua), so that a request that comes back keeps
// its place: by partition and Reservation.ID. Without an ID, by partition
// and cost: a ticket is handed to the next reservation of that partition
// and cost — the same request, or one that can take its place at no loss
// to anyone, since it costs the same.
type tickets struct {
	mu    sync.Mutex
	m     map[ticketKey][]ticket
	sweep int
}

type ticketKey struct {
	p  llmhttp.Partition
	id uint64          // the request's, when the core names it
	c  llmhttp.Amounts // its cost, when not
}

type ticket struct {
	n     int64
	until time.Time // when the queue forgets it
}

// take returns the oldest live ticket of k, 0 when none.
func (ts *tickets) take(k ticketKey, now time.Time) int64 {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	l := ts.m[k]
	for len(l) > 0 && now.After(l[0].until) {
		l = l[1:]
	}
	if len(l) == 0 {
		delete(ts.m, k)
		return 0
	}
	ts.m[k] = l
	return l[0].n
}

// done records the outcome of a reservation of k that presented ticket
// had (0: none): reserved, or declined with ticket got, valid until.
func (ts *tickets) done(k ticketKey, had int64, reserved bool, got int64, until time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m == nil {
		ts.m = make(map[ticketKey][]ticket)
	}
	l := ts.m[k]
	if had != 0 {
		for i := range l {
			if l[i].n == had {
				l = append(l[:i:i], l[i+1:]...)
				break
			}
		}
	}
	if !reserved && got != 0 {
		i := len(l)
		for i > 0 && l[i-1].n > got {
			i--
		}
		l = append(l[:i], append([]ticket{{n: got, until: until}}, l[i:]...)...)
	}
	if len(l) == 0 {
		delete(ts.m, k)
	} else {
		ts.m[k] = l
	}
	ts.clean(time.Now())
}

// clean forgets lapsed tickets once the map has doubled since the last
// time, so that requests that gave up while declined do not pile up.
func (ts *tickets) clean(now time.Time) {
	if len(ts.m) < max(ts.sweep, 64) {
		return
	}
	for k, l := range ts.m {
		for len(l) > 0 && now.After(l[0].until) {
			l = l[1:]
		}
		if len(l) == 0 {
			delete(ts.m, k)
		} else {
			ts.m[k] = l
		}
	}
	ts.sweep = 2 * len(ts.m)
}
