package hostctl

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// TestVerifyUsrCmd checks the booted slot of a fake host whose /usr
// partitions hold a real build: sound, it passes and reboots nothing;
// with one byte of a data block flipped on the partition, it fails naming
// the damage, records it for status and, with no blessed slot to go to,
// leaves the boot selection alone and does not reboot.
func TestVerifyUsrCmd(t *testing.T) {
	_, host, v1 := keyedHost(t)
	root := string(host.Root)
	rec := &run.Recorder{}

	out, _, err := runHostctl(t, root, rec, "verify-usr", "--reboot")
	if err != nil || !strings.Contains(out, "/usr of slot a matches its root hash") || rec.Transcript() != "" {
		t.Fatalf("sound slot: %q, %v, commands %q", out, err, rec.Transcript())
	}

	damageUsrA(t, host, v1, 5*4096+7)
	before, _, _ := slots.Host{Root: host.Root}.BootState()
	out, _, err = runHostctl(t, root, rec, "verify-usr", "--reboot")
	if !errors.Is(err, slots.ErrUsrCorrupt) || !strings.Contains(err.Error(), "no blessed build") || rec.Transcript() != "" {
		t.Errorf("damaged slot, nowhere to go: %q, %v, commands %q", out, err, rec.Transcript())
	}
	if after, _, _ := (slots.Host{Root: host.Root}).BootState(); after != before {
		t.Errorf("boot selection changed to %+v with nowhere better to go", after)
	}
	out, _, _ = runHostctl(t, root, rec, "status")
	if !strings.Contains(out, "/usr failed its check") || !strings.Contains(out, "root hash mismatch") {
		t.Errorf("status does not report the damage:\n%s", out)
	}
}

// TestBlessChecksTrialUsr: a slot on trial is blessed only after its /usr
// passes its check; a damaged one gives up its trial, is not blessed, and
// the host reboots to the default. verify-usr leaves trials to bless.
func TestBlessChecksTrialUsr(t *testing.T) {
	for _, damaged := range []bool{false, true} {
		_, host, v1 := keyedHost(t)
		h := slots.Host{Root: host.Root}
		// Booted a stands in for a freshly written slot on trial; b for
		// the default it falls back to.
		_, env, _ := h.BootState()
		if err := h.WriteBootState(bootcfg.State{Default: "b", Try: "a", TriesLeft: 2}, env); err != nil {
			t.Fatal(err)
		}
		if damaged {
			damageUsrA(t, host, v1, 9*4096)
		}
		rec := &run.Recorder{}
		out, _, err := runHostctl(t, string(host.Root), rec, "verify-usr", "--reboot")
		if err != nil || !strings.Contains(out, "hostctl bless checks its /usr") {
			t.Errorf("verify-usr on a trial: %q, %v, want it left to bless", out, err)
		}
		out, _, err = runHostctl(t, string(host.Root), rec, "bless")
		st, _, _ := h.BootState()
		blessed, _ := h.Proven("a")
		switch {
		case !damaged && (err != nil || st != bootcfg.State{Default: "a"} || !blessed || !strings.Contains(out, "matches its root hash")):
			t.Errorf("sound trial: %q, %v, state %+v, blessed %v; want blessed and default a", out, err, st, blessed)
		case damaged && (!errors.Is(err, slots.ErrUsrCorrupt) || st != bootcfg.State{Default: "b"} || blessed ||
			rec.Transcript() != "systemctl reboot --no-block\n" || !strings.Contains(out, "gives up its trial")):
			t.Errorf("damaged trial: %q, %v, state %+v, blessed %v, commands %q; want the trial given up, a reboot, no blessing", out, err, st, blessed, rec.Transcript())
		}
	}
}

// damageUsrA flips the byte at off of slot a's /usr partition.
func damageUsrA(t *testing.T, host updatertest.Host, b updatertest.Build, off int64) {
	t.Helper()
	f, err := os.OpenFile(host.Root.Join("/parts/usr-a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{^b.Usr[off]}, off); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyUsrCannotReadConfirmsBoot: a check that cannot run (here the
// data partition's link is gone) fails naming it, records no damage, and
// still confirms the boot, so GRUB's count of boots that restart before
// the check does not climb.
func TestVerifyUsrCannotReadConfirmsBoot(t *testing.T) {
	_, host, _ := keyedHost(t)
	h := slots.Host{Root: host.Root}
	st, env, _ := h.BootState()
	env["bulkhead_boots"] = "2"
	if err := h.WriteBootState(st, env); err != nil {
		t.Fatal(err)
	}
	d, err := h.BootedUsr()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d.Data); err != nil {
		t.Fatal(err)
	}
	rec := &run.Recorder{}
	_, _, err = runHostctl(t, string(host.Root), rec, "verify-usr", "--reboot")
	if err == nil || errors.Is(err, slots.ErrUsrCorrupt) || !strings.Contains(err.Error(), d.Data) || rec.Transcript() != "" {
		t.Errorf("got %v, commands %q; want an error naming %s, not damage, and no reboot", err, rec.Transcript(), d.Data)
	}
	if _, env, _ := h.BootState(); env["bulkhead_boots"] != "0" {
		t.Errorf("boots %q after a check that could not run, want 0", env["bulkhead_boots"])
	}
	if c, _ := h.Corrupt("a"); c {
		t.Error("slot a recorded corrupt")
	}
}

// TestVerifyUsrAtBoot: the boot-time mode reads /usr only after a boot
// that did not end with --clean-stop, and confirms the boot either way.
func TestVerifyUsrAtBoot(t *testing.T) {
	_, host, v1 := keyedHost(t)
	h := slots.Host{Root: host.Root}
	root := string(host.Root)
	rec := &run.Recorder{}
	setBoots := func() {
		st, env, _ := h.BootState()
		env["bulkhead_boots"] = "2"
		if err := h.WriteBootState(st, env); err != nil {
			t.Fatal(err)
		}
	}
	boots := func() string { _, env, _ := h.BootState(); return env["bulkhead_boots"] }

	// First boot of the disk: nothing before it to have ended badly.
	damageUsrA(t, host, v1, 3*4096)
	setBoots()
	out, _, err := runHostctl(t, root, rec, "verify-usr", "--boot", "--reboot")
	if err != nil || !strings.Contains(out, "not read") || boots() != "0" {
		t.Errorf("first boot: %q, %v, boots %s; want /usr not read and the boot confirmed", out, err, boots())
	}
	// A clean shutdown, then a boot: still not read.
	if _, _, err := runHostctl(t, root, rec, "verify-usr", "--clean-stop"); err != nil {
		t.Fatal(err)
	}
	setBoots()
	if out, _, err := runHostctl(t, root, rec, "verify-usr", "--boot", "--reboot"); err != nil || !strings.Contains(out, "not read") || boots() != "0" {
		t.Errorf("after a clean shutdown: %q, %v, boots %s", out, err, boots())
	}
	// No clean shutdown (a restart at the damaged block): /usr is read and
	// the damage found.
	out, _, err = runHostctl(t, root, rec, "verify-usr", "--boot", "--reboot")
	if !errors.Is(err, slots.ErrUsrCorrupt) || !strings.Contains(out, "did not end cleanly") {
		t.Errorf("after an unclean end: %q, %v; want the damage found", out, err)
	}
	if c, _ := h.Corrupt("a"); !c {
		t.Error("slot a not recorded corrupt")
	}
}
