package reboot

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/updater/reboot/etcdlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/fleetlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/reboottest"
)

var fixedNow = func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }

// TestOperatorEtcd: this host takes the lock through the configured
// strategy, a dead host holds the other slot, the operator sees both and
// releases the dead one.
func TestOperatorEtcd(t *testing.T) {
	ep := reboottest.StartEtcd(t)
	root := hostRoot(t, `
strategy: etcd-lock
etcd: {endpoints: [`+ep+`], group: workers}
window: {days: [mon], start: "02:00", length: 1h, timezone: UTC}
`)
	cfg, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := reboottest.Client(t, ep)
	if err := (Operator{Root: root, Cfg: cfg}).SetMax(ctx, "", 2); err != nil {
		t.Fatal(err)
	}
	dead := &etcdlock.Lock{KV: c, Group: "workers", ID: "0123456789abcdef0123456789abcdef"}
	if err := dead.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	// This host takes its slot as hostd would (the window is open at 02:30).
	s, err := New(cfg, Options{Root: root, Now: func() time.Time { return time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}

	op := Operator{Root: root, Cfg: cfg, Now: fixedNow}
	var out bytes.Buffer
	if err := op.Status(ctx, &out, ""); err != nil {
		t.Fatal(err)
	}
	out.WriteString("-- release --id dead\n")
	id, err := op.Release(ctx, dead.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	out.WriteString("released " + id + "\n")
	if _, err := op.Release(ctx, dead.ID, ""); !errors.Is(err, etcdlock.ErrNotExist) {
		t.Errorf("second release: got %v, want ErrNotExist", err)
	}
	out.WriteString("-- steady state\n")
	if err := s.SteadyState(ctx); err != nil {
		t.Fatal(err)
	}
	if err := op.Status(ctx, &out, ""); err != nil {
		t.Fatal(err)
	}
	out.WriteString("-- other group\n")
	if err := op.Status(ctx, &out, "db"); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "operator-etcd.txt", out.Bytes())
}

func TestOperatorFleetLock(t *testing.T) {
	srv := reboottest.StartFleetLock(t, 1)
	root := hostRoot(t, "strategy: fleetlock\nfleetlock: {base_url: '"+srv.URL+"', group: workers}\n")
	cfg, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A dead host took the only slot.
	dead := &fleetlock.Client{BaseURL: srv.URL, ID: "0123456789abcdef0123456789abcdef", Group: "workers"}
	if err := dead.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	op := Operator{Root: root, Cfg: cfg, Now: fixedNow}
	var out bytes.Buffer
	if err := op.Status(ctx, &out, ""); err != nil {
		t.Fatal(err)
	}
	id, err := op.Release(ctx, dead.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	out.WriteString("released " + id + "\n")
	// Now this host gets the slot through its strategy, and gives it back.
	s, err := New(cfg, Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	if hs := srv.Holders("workers"); len(hs) != 1 || hs[0] != "975228d46dc94622b9bbe16671e2b58d" {
		t.Errorf("got holders %q, want this host", hs)
	}
	if _, err := op.Release(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if hs := srv.Holders("workers"); len(hs) != 0 {
		t.Errorf("got holders %q, want none", hs)
	}
	golden.Assert(t, "operator-fleetlock.txt", []byte(strings.ReplaceAll(out.String(), srv.URL, "http://fleetlock")))

	none := Operator{Root: root, Cfg: Config{}}
	if _, err := none.Release(ctx, "x", ""); !errors.Is(err, ErrNoLock) {
		t.Errorf("immediate: got %v, want ErrNoLock", err)
	}
}
