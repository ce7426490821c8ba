package updater

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

func TestAutoUpdate(t *testing.T) {
	e := newEnv(t)
	rec := &run.Recorder{}
	e.u.Runner = rec
	// Without a url in update.yaml periodic updates are off.
	if err := e.u.AutoUpdate(context.Background(), reboot.Immediate{}); err != nil {
		t.Fatal(err)
	}
	if rec.Transcript() != "" {
		t.Errorf("got commands %q without a configured url", rec.Transcript())
	}
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte(fmt.Sprintf("url: %s\nchannel: stable\nstrategy: immediate\n", e.srv.URL)))
	e.publish("1.1.0", "")
	if err := e.u.AutoUpdate(context.Background(), reboot.Immediate{}); err != nil {
		t.Fatal(err)
	}
	if got := rec.Transcript(); got != "systemctl reboot\n" {
		t.Errorf("got commands %q, want systemctl reboot", got)
	}
	if e.bootState().Try != bootcfg.SlotB {
		t.Error("update not staged")
	}
	last, err := ReadLastCheck(e.host.Root)
	if err != nil || last.Available != "1.1.0" || !last.Staged || last.Channel != "stable" {
		t.Errorf("got last check %+v, %v", last, err)
	}
}

// TestAutoUpdateHonoursRollout: a rollout that has not reached this host's
// wariness holds the periodic update back (and records why), while a person
// running hostctl upgrade is not held.
func TestAutoUpdateHonoursRollout(t *testing.T) {
	e := newEnv(t)
	rec := &run.Recorder{}
	e.u.Runner = rec
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	e.u.Now = func() time.Time { return now }
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte(fmt.Sprintf("url: %s\nrollout_wariness: 0.9\n", e.srv.URL)))
	e.publish("1.1.0", "")
	if err := repo.SetChannel(e.repoDir, repo.Channel{Channel: "stable", Version: "1.1.0",
		Rollout: &rollout.Rollout{Start: now.Add(-time.Hour), Duration: 10 * time.Hour}}, []ed25519.PrivateKey{e.key.Private}, time.Now()); err != nil {
		t.Fatal(err)
	}
	before := e.host.Snapshot(t)
	if err := e.u.AutoUpdate(context.Background(), reboot.Immediate{}); err != nil {
		t.Fatal(err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
	if rec.Transcript() != "" {
		t.Errorf("got commands %q while held back", rec.Transcript())
	}
	last, _ := ReadLastCheck(e.host.Root)
	if last == nil || last.Held == "" || last.Staged {
		t.Errorf("got last check %+v, want held", last)
	}
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	if e.bootState().Try != bootcfg.SlotB {
		t.Error("a manual upgrade was held back by the rollout")
	}
}

func TestCheckSpace(t *testing.T) {
	dir := t.TempDir()
	updatertest.WriteFile(t, dir+"/vmlinuz", make([]byte, 100))
	cases := []struct {
		name string
		p    Plan
		ok   bool
	}{
		{"fits", Plan{DownloadBytes: 10, FreeDownload: 10, ESPBytes: 5, FreeESP: 5}, true},
		{"download too big", Plan{DownloadBytes: 11, FreeDownload: 10}, false},
		{"ESP fits once the old kernel goes", Plan{ESPBytes: 150, FreeESP: 50}, true},
		{"ESP too small", Plan{ESPBytes: 151, FreeESP: 50}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkSpace(&c.p, dir)
			if c.ok && err != nil || !c.ok && !errors.Is(err, ErrNoSpace) {
				t.Errorf("got %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// TestRunPeriodicRetriesConfigErrors: a broken update.yaml does not stop the
// loop for good (it used to return at once): the error is recorded for
// hostctl status, and once the file is fixed the next round checks and
// stages the update.
func TestRunPeriodicRetriesConfigErrors(t *testing.T) {
	e := newEnv(t)
	rec := &run.Recorder{}
	e.u.Runner = rec
	e.publish("1.1.0", "")
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte("strategy: nonsense\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- e.u.RunPeriodic(ctx, Schedule{Interval: 20 * time.Millisecond, First: time.Millisecond})
	}()
	waitFor(t, ctx, func() bool {
		c, _ := ReadLastCheck(e.host.Root)
		return c != nil && strings.Contains(c.Error, "strategy")
	})
	var out bytes.Buffer
	ReadUpdateStatus(e.host.Root).Print(&out)
	if !strings.Contains(out.String(), "update.yaml is invalid; periodic checks retry") {
		t.Errorf("status does not show the configuration error:\n%s", out.String())
	}
	select {
	case err := <-done:
		t.Fatalf("the loop stopped on a configuration error: %v", err)
	default:
	}
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte(fmt.Sprintf("url: %s\npolicy: stage\n", e.srv.URL)))
	waitFor(t, ctx, func() bool {
		c, _ := ReadLastCheck(e.host.Root)
		return c != nil && c.Staged
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.bootState().Try != bootcfg.SlotB {
		t.Error("update not staged after the configuration was fixed")
	}
	if rec.Transcript() != "" {
		t.Errorf("policy stage rebooted: %q", rec.Transcript())
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("timed out")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestUpdateStatus(t *testing.T) {
	e := newEnv(t)
	e.u.Now = func() time.Time { return time.Date(2026, 11, 23, 1, 2, 3, 0, time.UTC) }
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte("url: https://updates.example/bulkhead\nchannel: beta\n"))
	updatertest.WriteFile(t, e.host.Root.Join("/var/lib/bulkhead/updater/etc-conflicts.json"),
		[]byte(`{"conflicts":[{"path":"ssh/sshd_config","action":"conflict","reason":"changed locally and in the new defaults: kept the local file"},`+
			`{"path":"resolved","action":"conflict","reason":"the operator removed resolved.bulkhead-new","new":"resolved.bulkhead-new"}]}`))
	// The first conflict is still there (its local file), the second was
	// resolved since the merge: status lists the first only.
	updatertest.WriteFile(t, e.host.Root.Join("/etc/ssh/sshd_config"), []byte("Port 2222\n"))
	if err := e.u.RecordCheck(&Plan{Channel: "beta", From: "1.0.0", To: "1.1.0"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.u.Hold(Pin{Version: "1.1.0", Reason: "hostctl upgrade --to 1.1.0"}); err != nil {
		t.Fatal(err)
	}
	slots.Host{Root: e.host.Root}.MarkBad("1.2.0")
	var out bytes.Buffer
	ReadUpdateStatus(e.host.Root).Print(&out)
	golden.Assert(t, "update-status.txt", out.Bytes())
}

// TestRunPeriodicWaitsForBless: on a boot still on trial the loop does
// nothing (no SteadyState, no check) until blessed; here ctx ends first.
func TestRunPeriodicWaitsForBless(t *testing.T) {
	e := newEnv(t)
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte("strategy: nonsense\n"))
	h := slots.Host{Root: e.host.Root}
	_, env, _ := h.BootState()
	// Slot a booted on trial, b the default: not blessed yet.
	if err := h.WriteBootState(bootcfg.State{Default: bootcfg.SlotB, Try: bootcfg.SlotA, TriesLeft: 2}, env); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.u.RunPeriodic(ctx, Schedule{}); err != nil {
		t.Errorf("got %v, want nil: an unblessed boot must not even read update.yaml", err)
	}
}
