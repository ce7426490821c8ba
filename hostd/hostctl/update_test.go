package hostctl

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
	"github.com/bulkhead-os/bulkhead/updater/reboot/reboottest"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// TestUpdateIntentCLI drives issue 11's operator verbs in-process: upgrade
// --to pins and --reboot goes through the configured reboot strategy (a
// real FleetLock server sees the lock taken) unless --now; rollback refuses
// a slot that never booted, naming its state, and --force puts it on trial;
// bless gives up on a held lock after --lock-timeout; the early
// record-trial step records a spent trial, after which upgrade refuses the
// version unless --allow-bad names it, and forget-bad clears the record.
func TestUpdateIntentCLI(t *testing.T) {
	dir, host, _ := keyedHost(t)
	root := string(host.Root)
	v2 := updatertest.MakeBuild(t, dir, "1.1.0", 24)
	repoDir := filepath.Join(dir, "repo")
	runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), v2.Dir)
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	defer srv.Close()
	fl := reboottest.StartFleetLock(t, 1)
	updatertest.WriteFile(t, host.Root.Join(reboot.ConfigPath), []byte("strategy: fleetlock\nfleetlock: {base_url: \""+fl.URL+"\"}\n"))
	rec := &run.Recorder{}
	h := slots.Host{Root: host.Root}

	out, _, err := runHostctl(t, root, rec, "upgrade", "--from", srv.URL, "--to", "1.1.0", "--reboot")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "through the fleetlock reboot strategy") || rec.Transcript() != "systemctl reboot\n" {
		t.Errorf("upgrade --reboot: got %q, commands %q", out, rec.Transcript())
	}
	if got := fl.Holders("default"); len(got) != 1 {
		t.Errorf("--reboot did not take the fleet lock first: holders %v", got)
	}
	if pin, _ := updater.ReadPin(host.Root); pin == nil || pin.Version != "1.1.0" {
		t.Errorf("upgrade --to did not hold 1.1.0: %+v", pin)
	}
	if out, _, err := runHostctl(t, root, rec, "update", "unpin"); err != nil || !strings.Contains(out, "Unpinned") {
		t.Errorf("unpin: %q, %v", out, err)
	}
	if pin, _ := updater.ReadPin(host.Root); pin != nil {
		t.Errorf("pin left after unpin: %+v", pin)
	}

	// Slot b is on trial and never booted: rollback refuses it by state.
	before := host.Snapshot(t)
	_, _, err = runHostctl(t, root, rec, "rollback")
	if !errors.Is(err, updater.ErrSlotUnproven) || !strings.Contains(err.Error(), "state pending") {
		t.Errorf("rollback to a never-booted slot: got %v", err)
	}
	updatertest.SameSnapshot(t, before, host.Snapshot(t))
	if _, _, err := runHostctl(t, root, rec, "rollback", "--allow-bad", "1.1.0"); err == nil || !strings.Contains(err.Error(), "--allow-bad needs --force") {
		t.Errorf("--allow-bad without --force: got %v", err)
	}
	// Cancel the trial by hand: --force puts b back on trial, a stays default.
	_, env, _ := h.BootState()
	h.WriteBootState(bootcfg.State{Default: bootcfg.SlotA}, env)
	rec = &run.Recorder{}
	out, _, err = runHostctl(t, root, rec, "rollback", "--force", "--reboot", "--now")
	if err != nil || !strings.Contains(out, "is on trial for 3 boots; slot a stays the default") {
		t.Fatalf("rollback --force: %q, %v", out, err)
	}
	if st, _, _ := h.BootState(); st != (bootcfg.State{Default: "a", Try: "b", TriesLeft: 3}) {
		t.Errorf("rollback --force: got %+v", st)
	}
	if rec.Transcript() != "systemctl reboot\n" {
		t.Errorf("--now: got commands %q", rec.Transcript())
	}

	// Bless gives up on a stuck writer with a clear error.
	l, err := updater.TryLock(host.Root)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = runHostctl(t, root, rec, "bless", "--lock-timeout", "100ms")
	l.Unlock()
	if !errors.Is(err, updater.ErrLocked) {
		t.Errorf("bless with the lock held: got %v, want ErrLocked", err)
	}

	// b's tries are spent and GRUB booted a: the early unit records 1.1.0.
	_, env, _ = h.BootState()
	h.WriteBootState(bootcfg.State{Default: bootcfg.SlotA, Try: bootcfg.SlotB}, env)
	if out, _, err := runHostctl(t, root, rec, "update", "record-trial"); err != nil || !strings.Contains(out, "trial of version 1.1.0 failed") {
		t.Errorf("record-trial: %q, %v", out, err)
	}
	if _, _, err := runHostctl(t, root, rec, "upgrade", "--from", srv.URL); !errors.Is(err, updater.ErrVersionBad) {
		t.Errorf("upgrade to the failed version: got %v, want ErrVersionBad", err)
	}
	if _, _, err := runHostctl(t, root, rec, "upgrade", "--from", srv.URL, "--allow-bad", "1.1.0"); err != nil {
		t.Errorf("upgrade --allow-bad 1.1.0: %v", err)
	}
	if _, _, err := runHostctl(t, root, rec, "update", "forget-bad", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runHostctl(t, root, rec, "update", "forget-bad", "1.1.0"); !errors.Is(err, slots.ErrNotRecordedBad) {
		t.Errorf("forget-bad twice: got %v", err)
	}
	if out, _, err := runHostctl(t, root, rec, "update", "pin", "1.0.0"); err != nil || !strings.Contains(out, "hold version 1.0.0") {
		t.Errorf("pin: %q, %v", out, err)
	}
}
