package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
	"github.com/bulkhead-os/bulkhead/updater/reboot/reboottest"
)

var fast = backoff.Policy{Min: time.Millisecond, Max: 20 * time.Millisecond}

func TestLockAgainstEtcd(t *testing.T) {
	c := reboottest.Client(t, reboottest.StartEtcd(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := &Lock{KV: c, Group: "db", ID: "a", Max: 1, Backoff: fast}
	b := &Lock{KV: c, Group: "db", ID: "b", Max: 1, Backoff: fast}

	if err := a.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.PreReboot(ctx); err != nil {
		t.Fatalf("recursive lock: %v", err)
	}
	if err := b.TryLock(ctx); !errors.Is(err, ErrFull) {
		t.Errorf("b.TryLock: got %v, want ErrFull", err)
	}
	s, _, err := Read(ctx, c, "db", 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Semaphore{Semaphore: 0, Max: 1, Holders: []string{"a"}}); fmt.Sprint(s) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
	// The default group is locksmith's key and is untouched.
	if resp, _ := c.Get(ctx, Key("")); len(resp.Kvs) != 0 {
		t.Errorf("default group key exists: %s", resp.Kvs[0].Value)
	}
	if err := a.SteadyState(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.SteadyState(ctx); err != nil {
		t.Fatalf("releasing twice: %v", err)
	}
	if err := b.TryLock(ctx); err != nil {
		t.Errorf("b.TryLock after a's release: %v", err)
	}
	if err := Release(ctx, c, "db", "nobody"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Release(nobody): got %v, want ErrNotExist", err)
	}
	// A host configured with more slots resizes the group.
	wide := &Lock{KV: c, Group: "db", ID: "c", Max: 2, Backoff: fast}
	if err := wide.TryLock(ctx); err != nil {
		t.Errorf("TryLock with max 2: %v", err)
	}
}

func TestPreRebootWaitsForContext(t *testing.T) {
	c := reboottest.Client(t, reboottest.StartEtcd(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := (&Lock{KV: c, ID: "holder", Max: 1}).PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	err := (&Lock{KV: c, ID: "waiter", Max: 1, Backoff: fast}).PreReboot(short)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestFleetOf50 runs 49 hosts and a dead one against a real etcd with 3
// slots; the operator releases the dead host's slot.
func TestFleetOf50(t *testing.T) {
	c := reboottest.Client(t, reboottest.StartEtcd(t))
	reboottest.Fleet{
		Hosts: 49, Slots: 3,
		New: func(id string) reboottest.Locker {
			return &Lock{KV: c, Group: "workers", ID: id, Max: 3, Backoff: fast}
		},
		Holders: func(ctx context.Context) ([]string, error) {
			s, _, err := Read(ctx, c, "workers", 3)
			return s.Holders, err
		},
		Release: func(ctx context.Context, id string) error { return Release(ctx, c, "workers", id) },
	}.Run(t)
}
