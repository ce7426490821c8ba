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
	a := &Lock{KV: c, Group: "db", ID: "a", Backoff: fast}
	b := &Lock{KV: c, Group: "db", ID: "b", Backoff: fast}

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
}

// TestHostsNeverWriteMax (issue 11, item 8): the operator sizes the group
// once; hosts read the size and keep it, where each used to overwrite it
// with its own configured value (default 1).
func TestHostsNeverWriteMax(t *testing.T) {
	c := reboottest.Client(t, reboottest.StartEtcd(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A group nobody sized: the first host creates it with one slot.
	if err := (&Lock{KV: c, Group: "fresh", ID: "a", Backoff: fast}).TryLock(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := Read(ctx, c, "fresh", 0); s.Max != DefaultMax {
		t.Errorf("new group: got max %d, want %d", s.Max, DefaultMax)
	}
	if err := SetMax(ctx, c, "db", 3); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		h := &Lock{KV: c, Group: "db", ID: id, Backoff: fast}
		if err := h.TryLock(ctx); err != nil {
			t.Fatalf("host %s: %v", id, err)
		}
		if err := h.SteadyState(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := (&Lock{KV: c, Group: "db", ID: id, Backoff: fast}).TryLock(ctx); err != nil {
			t.Fatalf("host %s: %v", id, err)
		}
	}
	if err := (&Lock{KV: c, Group: "db", ID: "d", Backoff: fast}).TryLock(ctx); !errors.Is(err, ErrFull) {
		t.Errorf("fourth host: got %v, want ErrFull", err)
	}
	s, _, err := Read(ctx, c, "db", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Semaphore{Semaphore: 0, Max: 3, Holders: []string{"a", "b", "c"}}); fmt.Sprint(s) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if err := SetMax(ctx, c, "db", 0); err == nil {
		t.Error("SetMax 0: got nil error")
	}
}

func TestPreRebootWaitsForContext(t *testing.T) {
	c := reboottest.Client(t, reboottest.StartEtcd(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := (&Lock{KV: c, ID: "holder"}).PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	err := (&Lock{KV: c, ID: "waiter", Backoff: fast}).PreReboot(short)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestFleetOf50 runs 49 hosts and a dead one against a real etcd with 3
// slots; the operator releases the dead host's slot.
func TestFleetOf50(t *testing.T) {
	c := reboottest.Client(t, reboottest.StartEtcd(t))
	if err := SetMax(context.Background(), c, "workers", 3); err != nil {
		t.Fatal(err)
	}
	reboottest.Fleet{
		Hosts: 49, Slots: 3,
		New: func(id string) reboottest.Locker {
			return &Lock{KV: c, Group: "workers", ID: id, Backoff: fast}
		},
		Holders: func(ctx context.Context) ([]string, error) {
			s, _, err := Read(ctx, c, "workers", 3)
			return s.Holders, err
		},
		Release: func(ctx context.Context, id string) error { return Release(ctx, c, "workers", id) },
	}.Run(t)
}
