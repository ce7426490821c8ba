package slots

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk/bootdisktest"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
)

// fakeHost lays out a root with an ESP holding the given slots.
func fakeHost(t *testing.T, cmdline string, env grubenv.Env, versions map[bootcfg.Slot]string) Host {
	t.Helper()
	h := Host{Root: fsroot.Root(t.TempDir())}
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(h.Root.Join("/proc/cmdline"), cmdline+"\n")
	write(h.Root.Join("/usr/lib/os-release"), "NAME=\"Bulkhead\"\nID=bulkhead\nVERSION_ID=\"1.0.0\"\n")
	if err := os.MkdirAll(h.ESP("grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{bootcfg.ESPGrubEnv, bootcfg.ESPGrubEnvBackup} {
		if err := grubenv.Create(h.ESP(name), env); err != nil {
			t.Fatal(err)
		}
	}
	for s, v := range versions {
		write(h.ESP(string(s), bootcfg.ReleaseFile), "VERSION="+v+"\nROOTHASH=00\n")
	}
	return h
}

func TestStatusShipped(t *testing.T) {
	h := fakeHost(t, "root=x bulkhead.slot=a quiet", grubenv.Env{"bulkhead_default": "a"}, map[bootcfg.Slot]string{"a": "1.0.0"})
	s, err := h.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if s.Booted != "a" || s.OS != "Bulkhead" || s.Version != "1.0.0" {
		t.Errorf("got %+v", s)
	}
	if s.Slots[0].State != bootcfg.StateBooted || s.Slots[1].State != bootcfg.StateEmpty {
		t.Errorf("got slots %+v, want a booted, b empty", s.Slots)
	}
}

func TestBlessTrialPasses(t *testing.T) {
	h := fakeHost(t, "bulkhead.slot=b", grubenv.Env{"bulkhead_default": "a", "bulkhead_try": "b", "bulkhead_tries": "2"},
		map[bootcfg.Slot]string{"a": "1.0.0", "b": "2.0.0"})
	o, err := h.Bless()
	if err != nil || o != bootcfg.Blessed {
		t.Fatalf("got %s, %v, want blessed", o, err)
	}
	st, _, _ := h.BootState()
	if st != (bootcfg.State{Default: "b"}) {
		t.Errorf("got %+v, want default b", st)
	}
}

func TestBlessRecordsFailedTrial(t *testing.T) {
	h := fakeHost(t, "bulkhead.slot=a", grubenv.Env{"bulkhead_default": "a", "bulkhead_try": "b", "bulkhead_tries": "0"},
		map[bootcfg.Slot]string{"a": "1.0.0", "b": "3.0.0"})
	o, err := h.Bless()
	if err != nil || o != bootcfg.TrialFailed {
		t.Fatalf("got %s, %v, want trial-failed", o, err)
	}
	bad, _ := h.BadVersions()
	if len(bad) != 1 || bad[0] != "3.0.0" {
		t.Errorf("got bad versions %v, want [3.0.0]", bad)
	}
	s, _ := h.ReadStatus()
	if s.Slots[1].State != bootcfg.StateBad {
		t.Errorf("got slot b %s, want bad", s.Slots[1].State)
	}
}

func TestBootedNeedsSlotArg(t *testing.T) {
	h := fakeHost(t, "root=/dev/sda1", grubenv.Env{}, nil)
	if _, err := h.Booted(); err != ErrNotBulkhead {
		t.Errorf("got %v, want ErrNotBulkhead", err)
	}
}

// A damaged or missing environment block is replaced by its backup, as
// GRUB's configuration does: the selection stays the last one written,
// status names the damage, and the next write mends both copies.
func TestBootEnvBackup(t *testing.T) {
	h := fakeHost(t, "bulkhead.slot=b", grubenv.Env{"bulkhead_default": "b"}, map[bootcfg.Slot]string{"a": "1.0.0", "b": "2.0.0"})
	if d := h.BootEnvDamage(); d != "" {
		t.Fatalf("sound copies reported damaged: %s", d)
	}
	for name, damage := range map[string]func(p string) error{
		"garbage":    func(p string) error { return os.WriteFile(p, []byte("\x00\x01 not a block"), 0o644) },
		"missing":    os.Remove,
		"no default": func(p string) error { return grubenv.Create(p, grubenv.Env{"bulkhead_try": "a"}) },
	} {
		t.Run(name, func(t *testing.T) {
			if err := damage(h.ESP(bootcfg.ESPGrubEnv)); err != nil {
				t.Fatal(err)
			}
			s, err := h.ReadStatus()
			if err != nil || s.Default != bootcfg.SlotB || s.BootEnvDamage == "" {
				t.Fatalf("status: default %s, damage %q, %v; want default b from the backup and the damage named", s.Default, s.BootEnvDamage, err)
			}
			st, env, err := h.BootState()
			if err != nil {
				t.Fatal(err)
			}
			if err := h.WriteBootState(st, env); err != nil {
				t.Fatalf("writing over a %s block: %v", name, err)
			}
			if d := h.BootEnvDamage(); d != "" {
				t.Errorf("after a write: still damaged: %s", d)
			}
		})
	}
}

// Each write goes to both copies.
func TestWriteBootStateWritesBoth(t *testing.T) {
	h := fakeHost(t, "bulkhead.slot=a", grubenv.Env{"bulkhead_default": "a"}, map[bootcfg.Slot]string{"a": "1.0.0", "b": "2.0.0"})
	want := bootcfg.State{Default: bootcfg.SlotA, Try: bootcfg.SlotB, TriesLeft: 3}
	if err := h.WriteBootState(want, grubenv.Env{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{bootcfg.ESPGrubEnv, bootcfg.ESPGrubEnvBackup} {
		env, err := grubenv.Read(h.ESP(name))
		if err != nil || bootcfg.FromEnv(env) != want {
			t.Errorf("%s: got %v, %v, want %+v", name, env, err, want)
		}
	}
}

// With both copies lost, repair-boot makes the booted slot the default,
// with no trial; with one left, it keeps that one's selection.
func TestRepairBootEnv(t *testing.T) {
	h := fakeHost(t, "bulkhead.slot=b", grubenv.Env{"bulkhead_default": "a", "bulkhead_try": "b", "bulkhead_tries": "2"},
		map[bootcfg.Slot]string{"a": "1.0.0", "b": "2.0.0"})
	if err := os.WriteFile(h.ESP(bootcfg.ESPGrubEnv), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := h.RepairBootEnv()
	if want := (bootcfg.State{Default: bootcfg.SlotA, Try: bootcfg.SlotB, TriesLeft: 2}); err != nil || st != want {
		t.Errorf("one copy left: got %+v, %v, want the backup's %+v", st, err, want)
	}
	for _, name := range []string{bootcfg.ESPGrubEnv, bootcfg.ESPGrubEnvBackup} {
		if err := os.Remove(h.ESP(name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := h.BootState(); err == nil {
		t.Fatal("both copies gone: BootState gave no error")
	}
	st, err = h.RepairBootEnv()
	if want := (bootcfg.State{Default: bootcfg.SlotB}); err != nil || st != want {
		t.Errorf("both lost: got %+v, %v, want %+v (the booted slot)", st, err, want)
	}
	if d := h.BootEnvDamage(); d != "" {
		t.Errorf("after repair: %s", d)
	}
}

// TestStatusNamesBootDisk: with a second disk made from the same image
// attached (its root mounted), status names the disk the root came from and
// its GUID as the disk has it now.
func TestStatusNamesBootDisk(t *testing.T) {
	h := fakeHost(t, "root=x bulkhead.slot=a", grubenv.Env{"bulkhead_default": "a"}, map[bootcfg.Slot]string{"a": "1.0.0"})
	bootdisktest.Layout(t, string(h.Root), 7,
		bootdisktest.Disk{Name: "vdb", Major: 252, Labels: bootdisktest.Labels},
		bootdisktest.Disk{Name: "vda", Major: 253, Labels: bootdisktest.Labels})
	header := func(name string, guid []byte) {
		b := make([]byte, 1024)
		copy(b[512:], "EFI PART")
		copy(b[512+56:], guid)
		if err := os.WriteFile(h.Root.Join("/dev", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(h.Root.Join("/dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	header("vdb", []byte{0x5e, 0x2c, 0x3f, 0x8a, 0x1d, 0x7b, 0x6f, 0x4e, 0x9a, 0x0b, 0xc1, 0xd2, 0xe3, 0xf4, 0x05, 0x16})
	header("vda", []byte{0, 0, 0, 0, 0, 0, 0, 0x40, 0x80, 0, 0x62, 0x75, 0x6c, 0x6b, 0x68, 0x64})
	s, err := h.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if s.Disk != "/dev/vdb" || s.DiskGUID != "8a3f2c5e-7b1d-4e6f-9a0b-c1d2e3f40516" || s.DiskPristine || s.DiskError != "" {
		t.Errorf("got disk %q GUID %q pristine %v error %q; want /dev/vdb, its GUID", s.Disk, s.DiskGUID, s.DiskPristine, s.DiskError)
	}
	header("vdb", []byte{0, 0, 0, 0, 0, 0, 0, 0x40, 0x80, 0, 0x62, 0x75, 0x6c, 0x6b, 0x68, 0x64})
	if s, _ := h.ReadStatus(); !s.DiskPristine || s.DiskGUID != bootabi.PristineDiskGUID {
		t.Errorf("the image's GUID: got %q pristine %v", s.DiskGUID, s.DiskPristine)
	}
}
