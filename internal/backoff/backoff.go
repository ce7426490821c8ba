package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy bounds the waits between attempts. The zero value uses Default.
type Policy struct {
	Min time.Duration // first wait
	Max time.Duration // cap; waits double up to it
}

// Default suits a real fleet: a host notices a freed slot within a minute,
// and a fleet of thousands does not hammer the lock server.
var Default = Policy{Min: time.Second, Max: time.Minute}

// Waiter yields successive waits of one retry loop. Not safe for concurrent use.
type Waiter struct {
	p    Policy
	next time.Duration
}

// New starts a retry loop under p.
func New(p Policy) *Waiter {
	if p.Min <= 0 {
		p.Min = Default.Min
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	return &Waiter{p: p, next: p.Min}
}

// Next returns the next wait: uniformly jittered in [d/2, d] so that hosts
// that failed together do not retry together, d doubling up to Max.
func (w *Waiter) Next() time.Duration {
	d := w.next
	w.next = min(w.next*2, w.p.Max)
	half := d / 2
	return half + rand.N(half+1)
}

// Sleep waits Next() or until ctx ends, whichever is first, and returns
// ctx.Err() in the latter case.
func (w *Waiter) Sleep(ctx context.Context) error {
	t := time.NewTimer(w.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
