package updater

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

func (e *env) setBootState(st bootcfg.State) {
	e.t.Helper()
	h := slots.Host{Root: e.host.Root}
	_, env, err := h.BootState()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := h.WriteBootState(st, env); err != nil {
		e.t.Fatal(err)
	}
}

// TestRollbackOnlyToProvenSlot (issue 11, item 1): rollback refuses a slot
// whose build never booted to a blessing, naming its state; --force puts it
// on trial, never straight to default; a slot blessed with its build is
// rolled back to at once. Today's code made any complete slot the default.
func TestRollbackOnlyToProvenSlot(t *testing.T) {
	e := newEnv(t)
	v2 := e.publish("1.1.0", "")
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	// On trial, not booted yet.
	_, err := e.u.Rollback(context.Background(), RollbackOptions{})
	if !errors.Is(err, ErrSlotUnproven) || !strings.Contains(err.Error(), "state pending") {
		t.Errorf("slot on trial: got %v, want ErrSlotUnproven naming state pending", err)
	}
	// The trial cancelled (by hand): slot b holds 1.1.0 that never booted.
	e.setBootState(bootcfg.State{Default: bootcfg.SlotA})
	before := e.host.Snapshot(t)
	_, err = e.u.Rollback(context.Background(), RollbackOptions{})
	if !errors.Is(err, ErrSlotUnproven) || !strings.Contains(err.Error(), "state unproven") {
		t.Errorf("never-booted slot: got %v, want ErrSlotUnproven naming state unproven", err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
	r, err := e.u.Rollback(context.Background(), RollbackOptions{Force: true})
	if err != nil || !r.Trial || !r.Changed {
		t.Fatalf("--force: got %+v, %v", r, err)
	}
	if got, want := e.bootState(), (bootcfg.State{Default: "a", Try: "b", TriesLeft: bootcfg.DefaultTries}); got != want {
		t.Errorf("--force: got %+v, want %+v (on trial, a still the fallback)", got, want)
	}
	// b boots and is blessed; a, the fallback it replaced, is proven too.
	e.boot(bootcfg.SlotB, v2)
	if _, err := (slots.Host{Root: e.host.Root}).Bless(); err != nil {
		t.Fatal(err)
	}
	r, err = e.u.Rollback(context.Background(), RollbackOptions{})
	if err != nil || r.Trial || r.To != bootcfg.SlotA {
		t.Fatalf("rollback to the blessed slot: got %+v, %v", r, err)
	}
	if got := e.bootState(); got != (bootcfg.State{Default: "a"}) {
		t.Errorf("got %+v, want default a", got)
	}
	if pin, err := ReadPin(e.host.Root); err != nil || pin == nil || pin.Version != "1.0.0" {
		t.Errorf("rollback did not hold 1.0.0: got %+v, %v", pin, err)
	}
}

// TestRollbackRefusesBadSlotUnlessNamed: a recorded-bad version goes on
// trial only with --force --allow-bad naming it.
func TestRollbackRefusesBadSlotUnlessNamed(t *testing.T) {
	e := newEnv(t)
	e.publish("1.1.0", "")
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	e.setBootState(bootcfg.State{Default: bootcfg.SlotA})
	slots.Host{Root: e.host.Root}.MarkBad("1.1.0")
	for _, o := range []RollbackOptions{{}, {Force: true}, {Force: true, AllowBad: "1.2.0"}} {
		if _, err := e.u.Rollback(context.Background(), o); !errors.Is(err, ErrVersionBad) {
			t.Errorf("%+v: got %v, want ErrVersionBad", o, err)
		}
	}
	r, err := e.u.Rollback(context.Background(), RollbackOptions{Force: true, AllowBad: "1.1.0"})
	if err != nil || !r.Trial {
		t.Fatalf("got %+v, %v, want a trial", r, err)
	}
}

// TestFailedTrialNotRestaged (issue 11, item 2): after GRUB fell back from a
// trial whose tries are spent, the periodic check used to cancel the spent
// trial and stage the same version again (update, 3 failed boots, fallback,
// forever). The early unit's step records it bad; the check then refuses it
// and writes nothing; only --allow-bad naming it, or forget-bad, brings it
// back.
func TestFailedTrialNotRestaged(t *testing.T) {
	e := newEnv(t)
	rec := &run.Recorder{}
	e.u.Runner = rec
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte(fmt.Sprintf("url: %s\n", e.srv.URL)))
	e.publish("1.1.0", "")
	if err := e.u.AutoUpdate(context.Background(), reboot.Immediate{}); err != nil {
		t.Fatal(err)
	}
	// Three failed boots of b: GRUB counted the tries down and booted a.
	e.setBootState(bootcfg.State{Default: bootcfg.SlotA, Try: bootcfg.SlotB, TriesLeft: 0})
	h := slots.Host{Root: e.host.Root}
	if v, err := h.RecordFailedTrial(); err != nil || v != "1.1.0" {
		t.Fatalf("early unit: got %q, %v, want 1.1.0 recorded", v, err)
	}
	before := e.host.Snapshot(t)
	rec = &run.Recorder{}
	e.u.Runner = rec
	if err := e.u.AutoUpdate(context.Background(), reboot.Immediate{}); !errors.Is(err, ErrVersionBad) {
		t.Errorf("periodic check after the fallback: got %v, want ErrVersionBad", err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
	if rec.Transcript() != "" {
		t.Errorf("got commands %q, want no reboot", rec.Transcript())
	}
	var out strings.Builder
	ReadUpdateStatus(e.host.Root).Print(&out)
	if !strings.Contains(out.String(), "version 1.1.0 failed its trial here") {
		t.Errorf("status does not list the bad version:\n%s", out.String())
	}
	// By name, the operator may take it anyway.
	o := e.opts()
	o.AllowBad = "1.1.0"
	if p, err := e.u.Upgrade(context.Background(), o); err != nil || !p.Ready() {
		t.Fatalf("--allow-bad 1.1.0: got %+v, %v", p, err)
	}
	if err := h.ForgetBad("1.1.0"); err != nil {
		t.Fatal(err)
	}
	if bad, _ := h.BadVersions(); len(bad) != 0 {
		t.Errorf("forget-bad left %v", bad)
	}
	if err := h.ForgetBad("1.1.0"); !errors.Is(err, slots.ErrNotRecordedBad) {
		t.Errorf("forgetting twice: got %v, want ErrNotRecordedBad", err)
	}
}

// TestPlanRecordsSpentTrialItself: even without the early unit (hostd
// restarted, unit masked), a check never takes a spent trial for a slot to
// refill with the same version.
func TestPlanRecordsSpentTrialItself(t *testing.T) {
	e := newEnv(t)
	e.publish("1.1.0", "")
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	e.setBootState(bootcfg.State{Default: bootcfg.SlotA, Try: bootcfg.SlotB, TriesLeft: 0})
	before := e.host.Snapshot(t)
	h := slots.Host{Root: e.host.Root}
	o := e.opts()
	o.DryRun = true
	if _, err := e.u.Upgrade(context.Background(), o); !errors.Is(err, ErrVersionBad) {
		t.Errorf("dry run: got %v, want ErrVersionBad", err)
	}
	if bad, _ := h.BadVersions(); len(bad) != 0 {
		t.Errorf("a dry run recorded %v", bad)
	}
	if _, err := e.u.Upgrade(context.Background(), e.opts()); !errors.Is(err, ErrVersionBad) {
		t.Errorf("got %v, want ErrVersionBad", err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
	if bad, _ := h.BadVersions(); len(bad) != 1 || bad[0] != "1.1.0" {
		t.Errorf("got bad versions %v, want [1.1.0]", bad)
	}
}

// TestDownloadDoesNotHoldUpdateLock (issue 11, item 5): while a download
// stalls, the update lock that bless and rollback take is free. Today's
// Upgrade held it from the first byte.
func TestDownloadDoesNotHoldUpdateLock(t *testing.T) {
	for _, full := range []bool{true, false} {
		t.Run(map[bool]string{true: "full", false: "delta"}[full], func(t *testing.T) { testDownloadLock(t, full) })
	}
}

// testDownloadLock stalls the full download of usr.erofs, or the delta
// update's first chunk.
func testDownloadLock(t *testing.T, full bool) {
	e := newEnv(t)
	e.noChunks = full
	e.publish("1.1.0", "")
	stalled, release := make(chan struct{}), make(chan struct{})
	files := http.FileServer(http.Dir(e.repoDir))
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/usr.erofs") || strings.HasPrefix(r.URL.Path, "/chunks/") {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-release
		}
		files.ServeHTTP(w, r)
	})
	done := make(chan error, 1)
	go func() {
		_, err := e.u.Upgrade(context.Background(), e.opts())
		done <- err
	}()
	select {
	case <-stalled:
	case err := <-done:
		t.Fatalf("upgrade ended before the download: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the download never started")
	}
	l, err := TryLock(e.host.Root)
	if err != nil {
		close(release)
		t.Fatalf("update lock during a stalled download: %v", err)
	}
	l.Unlock()
	// A second upgrade meanwhile is refused at once, not run alongside.
	if _, err := e.u.Upgrade(context.Background(), e.opts()); !errors.Is(err, ErrLocked) {
		t.Errorf("concurrent upgrade: got %v, want ErrLocked", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.bootState().Try != bootcfg.SlotB {
		t.Error("update not staged")
	}
}

// TestWaitLockForBound: the bounded wait bless uses ends with ErrLocked.
func TestWaitLockForBound(t *testing.T) {
	e := newEnv(t)
	held, err := TryLock(e.host.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	if _, err := WaitLockFor(context.Background(), e.host.Root, 100*time.Millisecond); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "waited 100ms") {
		t.Errorf("got %v, want ErrLocked after 100ms", err)
	}
}

// TestAutoUpdatePolicies (issue 11, item 6): check reports only, stage
// writes and never reboots, off does nothing, and a pin holds the host at
// the pinned version whatever the channel says.
func TestAutoUpdatePolicies(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		pin        string
		staged     bool
		reboots    bool
		available  string
	}{
		{"off", "policy: off\n", "", false, false, ""},
		{"check", "policy: check\n", "", false, false, "1.1.0"},
		{"stage", "policy: stage\n", "", true, false, "1.1.0"},
		{"apply", "policy: apply\n", "", true, true, "1.1.0"},
		{"pinned to the booted version", "", "1.0.0", false, false, "1.0.0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			rec := &run.Recorder{}
			e.u.Runner = rec
			e.publish("1.1.0", "")
			updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte(fmt.Sprintf("url: %s\ninterval: 6h\n%s", e.srv.URL, c.yaml)))
			if c.pin != "" {
				if err := e.u.Hold(Pin{Version: c.pin, Reason: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			before := e.host.Snapshot(t)
			if err := e.u.AutoUpdate(context.Background(), reboot.Immediate{}); err != nil {
				t.Fatal(err)
			}
			if got := e.bootState().Try == bootcfg.SlotB; got != c.staged {
				t.Errorf("staged: got %v, want %v", got, c.staged)
			}
			if !c.staged {
				updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
			}
			if got := rec.Transcript() == "systemctl reboot\n"; got != c.reboots {
				t.Errorf("rebooted: got %q, want %v", rec.Transcript(), c.reboots)
			}
			last, _ := ReadLastCheck(e.host.Root)
			switch {
			case c.available == "" && last != nil:
				t.Errorf("policy off recorded a check: %+v", last)
			case c.available != "" && (last == nil || last.Available != c.available || last.Staged != c.staged || last.Pinned != c.pin):
				t.Errorf("got last check %+v", last)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"defaults", "", ""},
		{"all keys", "url: https://u.example/\nchannel: beta\npolicy: stage\ninterval: 30m\nstrategy: immediate\n", ""},
		{"unknown key", "url: https://u.example/\npolcy: stage\n", "field polcy not found"},
		{"bad policy", "policy: later\n", `policy: "later" is not one of off, check, stage, apply`},
		{"bad interval", "interval: hourly\n", `interval: "hourly" is not a duration`},
		{"short interval", "interval: 5s\n", "interval: 5s is shorter than 1m0s"},
		{"every problem at once", "policy: x\ninterval: 1s\nstrategy: y\n", "interval: 1s"},
		{"tries", "tries: 1\n", ""},
		{"too many tries", "tries: 10\n", "tries: 10 is not between 1 and 9"},
		{"negative tries", "tries: -1\n", "tries: -1 is not between 1 and 9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(c.yaml))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("got %v", err)
			case c.want != "" && (!errors.Is(err, reboot.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an ErrInvalidConfig with %q", err, c.want)
			case c.want == "" && cfg.Channel == "":
				t.Error("channel not defaulted")
			}
		})
	}
	cfg, _ := ParseConfig([]byte("interval: 30m\n"))
	if cfg.CheckEvery() != 30*time.Minute || cfg.PolicyName() != PolicyApply || cfg.TrialTries() != bootcfg.DefaultTries {
		t.Errorf("got interval %s policy %s tries %d", cfg.CheckEvery(), cfg.PolicyName(), cfg.TrialTries())
	}
	if cfg, _ := ParseConfig([]byte("tries: 5\n")); cfg.TrialTries() != 5 {
		t.Errorf("tries: 5 gave %d tries", cfg.TrialTries())
	}
}

// FuzzParseConfig: update.yaml comes from cloud-config; whatever
// ParseConfig accepts must validate.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("url: https://u.example/\npolicy: stage\ninterval: 2h\nstrategy: immediate\n"))
	f.Add([]byte("policy: check\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err == nil && len(cfg.Validate()) > 0 {
			t.Errorf("ParseConfig accepted a config that Validate rejects: %v", cfg.Validate())
		}
	})
}
