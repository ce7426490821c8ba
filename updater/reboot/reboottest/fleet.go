package reboottest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Locker is the part of reboot.Strategy a fleet test drives.
type Locker interface {
	PreReboot(ctx context.Context) error
	SteadyState(ctx context.Context) error
}

// Fleet is the conformance scenario every lock-based strategy passes:
// Hosts hosts, each with its own id, go through steady state, pre-reboot, a
// simulated reboot and steady state. One more host ("dead-host") takes a
// slot first and never comes back; once 10 hosts are done, the operator
// finds it among the holders and releases it.
type Fleet struct {
	Hosts, Slots int
	New          func(id string) Locker
	Holders      func(ctx context.Context) ([]string, error)
	Release      func(ctx context.Context, id string) error // the operator's
}

// Run plays the scenario and checks that at most Slots hosts (the dead one
// included) were rebooting at once, that every host updated, and that no
// slot is held at the end.
func (f Fleet) Run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rebooting, peak atomic.Int32
	enter := func() {
		n := rebooting.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
	}
	if err := f.New("dead-host").PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	enter()

	var wg sync.WaitGroup
	var done atomic.Int32
	errs := make(chan error, f.Hosts)
	for i := range f.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := f.New(fmt.Sprintf("host-%03d", i))
			for _, step := range []func(context.Context) error{h.SteadyState, h.PreReboot} {
				if err := step(ctx); err != nil {
					errs <- err
					return
				}
			}
			enter()
			time.Sleep(2 * time.Millisecond) // the reboot
			rebooting.Add(-1)
			if err := h.SteadyState(ctx); err != nil {
				errs <- err
				return
			}
			done.Add(1)
		}()
	}

	for done.Load() < 10 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	hs, err := f.Holders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(hs, "dead-host") {
		t.Errorf("holders %q do not include dead-host", hs)
	}
	// The dead host leaves the count before its slot is freed, as every
	// other host does: the other order lets a host take the freed slot and
	// count itself while the dead one is still counted.
	rebooting.Add(-1)
	if err := f.Release(ctx, "dead-host"); err != nil {
		t.Fatalf("operator release: %v", err)
	}

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := peak.Load(); got > int32(f.Slots) {
		t.Errorf("got %d hosts rebooting at once, want at most %d", got, f.Slots)
	}
	if got := done.Load(); got != int32(f.Hosts) {
		t.Errorf("got %d hosts updated, want %d", got, f.Hosts)
	}
	if hs, err := f.Holders(ctx); err != nil || len(hs) != 0 {
		t.Errorf("got holders %q (%v) at the end, want none", hs, err)
	}
}
