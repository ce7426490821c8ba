package slots

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/grubenv"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/verity"
)

const (
	dataUUID = "11111111-0000-4000-8000-0000000000AA"
	hashUUID = "11111111-0000-4000-8000-0000000000AB"
)

// usrHost is a fake host booted from slot booted whose /usr partitions are
// files under /dev/disk/by-partuuid, as udev names them (lower case).
func usrHost(t *testing.T, booted string, env grubenv.Env) (Host, string, string) {
	t.Helper()
	data := make([]byte, 64*verity.BlockSize)
	rand.New(rand.NewSource(1)).Read(data)
	var hash bytes.Buffer
	tree, err := verity.Format(&hash, bytes.NewReader(data), verity.Params{DataBlocks: 64, Salt: []byte("salt")})
	if err != nil {
		t.Fatal(err)
	}
	cmdline := "root=x usrhash=" + tree.RootHex() + " systemd.verity_usr_data=PARTUUID=" + dataUUID +
		" systemd.verity_usr_hash=PARTUUID=" + hashUUID + " bulkhead.slot=" + booted
	h := fakeHost(t, cmdline, env, map[bootcfg.Slot]string{"a": "1.0.0", "b": "2.0.0"})
	dir := h.Root.Join("/dev/disk/by-partuuid")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dp, hp := filepath.Join(dir, strings.ToLower(dataUUID)), filepath.Join(dir, strings.ToLower(hashUUID))
	// The data partition is larger than the image, as a slot is.
	if err := os.WriteFile(dp, append(data, make([]byte, 8*verity.BlockSize)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hp, hash.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return h, dp, hp
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCheckBootedUsr(t *testing.T) {
	env := grubenv.Env{"bulkhead_default": "a"}
	h, _, _ := usrHost(t, "a", env)
	var last int64
	if err := h.CheckBootedUsr(func(_ string, done, total int64) { last = done }); err != nil {
		t.Fatalf("sound slot: %v", err)
	}
	if last < 64*verity.BlockSize {
		t.Errorf("progress reached %d bytes, want the image's %d", last, 64*verity.BlockSize)
	}
	for _, tc := range []struct {
		name string
		part func(data, hash string) (string, int64)
	}{
		{"data block", func(d, _ string) (string, int64) { return d, 37*verity.BlockSize + 100 }},
		{"hash tree block", func(_, h string) (string, int64) { return h, verity.BlockSize + 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, dp, hp := usrHost(t, "a", env)
			p, off := tc.part(dp, hp)
			flipByte(t, p, off)
			err := h.CheckBootedUsr(nil)
			if !errors.Is(err, ErrUsrCorrupt) || !strings.Contains(err.Error(), dp) {
				t.Errorf("got %v, want ErrUsrCorrupt naming %s", err, dp)
			}
		})
	}
	t.Run("past the image", func(t *testing.T) {
		h, dp, _ := usrHost(t, "a", env)
		flipByte(t, dp, 66*verity.BlockSize)
		if err := h.CheckBootedUsr(nil); err != nil {
			t.Errorf("a byte past the image's blocks: %v, want no error", err)
		}
	})
	t.Run("no partition", func(t *testing.T) {
		h, dp, _ := usrHost(t, "a", env)
		os.Remove(dp)
		if err := h.CheckBootedUsr(nil); err == nil || errors.Is(err, ErrUsrCorrupt) {
			t.Errorf("missing data partition: %v, want an error that is not ErrUsrCorrupt", err)
		}
	})
	t.Run("hostile command line", func(t *testing.T) {
		h := fakeHost(t, "usrhash=00 systemd.verity_usr_data=PARTUUID=../../etc/x systemd.verity_usr_hash=PARTUUID=y bulkhead.slot=a", env, nil)
		if err := h.CheckBootedUsr(nil); err == nil || !strings.Contains(err.Error(), "systemd.verity_usr_data") {
			t.Errorf("got %v, want the bad PARTUUID named", err)
		}
	})
}

func TestFailBootedUsr(t *testing.T) {
	for _, tc := range []struct {
		name    string
		booted  string
		env     grubenv.Env
		blessed []bootcfg.Slot
		want    bootcfg.State
		outcome bootcfg.CheckOutcome
	}{
		{"default, other blessed", "a", grubenv.Env{"bulkhead_default": "a"}, []bootcfg.Slot{"a", "b"},
			bootcfg.State{Default: "b"}, bootcfg.SwitchedToOther},
		{"default, other never blessed", "a", grubenv.Env{"bulkhead_default": "a"}, []bootcfg.Slot{"a"},
			bootcfg.State{Default: "a"}, bootcfg.NoGoodSlot},
		{"trial", "b", grubenv.Env{"bulkhead_default": "a", "bulkhead_try": "b", "bulkhead_tries": "2"}, []bootcfg.Slot{"a"},
			bootcfg.State{Default: "a"}, bootcfg.TrialAbandoned},
		{"default, other staged on trial", "a", grubenv.Env{"bulkhead_default": "a", "bulkhead_try": "b", "bulkhead_tries": "3"}, []bootcfg.Slot{"a"},
			bootcfg.State{Default: "a", Try: "b", TriesLeft: 3}, bootcfg.NoGoodSlot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _ := usrHost(t, tc.booted, tc.env)
			for _, s := range tc.blessed {
				if err := h.recordBlessed(s); err != nil {
					t.Fatal(err)
				}
			}
			st, outcome, err := h.FailBootedUsr(errors.New("block 37 is bad"))
			if err != nil || st != tc.want || outcome != tc.outcome {
				t.Fatalf("got %+v %s %v, want %+v %s", st, outcome, err, tc.want, tc.outcome)
			}
			if got, _, _ := h.BootState(); got != tc.want {
				t.Errorf("GRUB environment holds %+v, want %+v", got, tc.want)
			}
			s, err := h.ReadStatus()
			if err != nil {
				t.Fatal(err)
			}
			for _, sl := range s.Slots {
				if string(sl.Slot) == tc.booted {
					if sl.Blessed || !strings.Contains(sl.UsrCheckFailed, "block 37") {
						t.Errorf("status of the damaged slot: %+v, want unblessed with the failure", sl)
					}
				} else if sl.UsrCheckFailed != "" {
					t.Errorf("status of slot %s: %+v, want no failure", sl.Slot, sl)
				}
			}
			// Booted again after a fix (an upgrade rewrote it, or the
			// operator restored it), a passing check forgets the failure.
			if err := h.UsrChecked(); err != nil {
				t.Fatal(err)
			}
			if c, err := h.Corrupt(bootcfg.Slot(tc.booted)); c || err != nil {
				t.Errorf("after a passing check: corrupt %v, %v", c, err)
			}
		})
	}
}

func TestCorruptSlotShownUntilRewritten(t *testing.T) {
	h, _, _ := usrHost(t, "b", grubenv.Env{"bulkhead_default": "b"})
	if err := h.recordBlessed("a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.FailBootedUsr(errors.New("bad")); err != nil {
		t.Fatal(err)
	}
	// Booted into a now: b shows corrupt until its build changes.
	if err := os.WriteFile(h.Root.Join("/proc/cmdline"), []byte("bulkhead.slot=a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := h.ReadStatus()
	if s.Slots[1].State != bootcfg.StateCorrupt {
		t.Errorf("slot b: %+v, want corrupt", s.Slots[1])
	}
	if err := os.WriteFile(h.ESP("b", bootcfg.ReleaseFile), []byte("VERSION=3.0.0\nROOTHASH=11\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ = h.ReadStatus()
	if s.Slots[1].State == bootcfg.StateCorrupt || s.Slots[1].UsrCheckFailed != "" {
		t.Errorf("slot b rewritten with another build: %+v, want no longer corrupt", s.Slots[1])
	}
}

// TestBootCounterState follows the GRUB variables the host keeps for the
// default slot's boot counter: a passing check sets the count to 0 and
// names the other slot as the spare only while it holds its blessed build;
// a slot GRUB gave up on is recorded, loses its blessing and is no spare.
func TestBootCounterState(t *testing.T) {
	h, _, _ := usrHost(t, "a", grubenv.Env{"bulkhead_default": "a", "bulkhead_boots": "2"})
	env := func() grubenv.Env {
		t.Helper()
		_, e, err := h.BootState()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if err := h.UsrChecked(); err != nil {
		t.Fatal(err)
	}
	if e := env(); e["bulkhead_boots"] != "0" || e["bulkhead_spare"] != "" {
		t.Errorf("checked with b never blessed: %v, want boots 0 and no spare", e)
	}
	if err := h.recordBlessed("b"); err != nil {
		t.Fatal(err)
	}
	if err := h.UsrChecked(); err != nil {
		t.Fatal(err)
	}
	if e := env(); e["bulkhead_spare"] != "b" {
		t.Errorf("checked with b blessed: %v, want spare b", e)
	}
	// Both copies agree: GRUB reads the backup when the block is damaged.
	if b, err := grubenv.Read(h.ESP(bootcfg.ESPGrubEnvBackup)); err != nil || b["bulkhead_spare"] != "b" {
		t.Errorf("backup: %v, %v", b, err)
	}

	// GRUB gave up on a after three boots and moved the default to b.
	st, e, _ := h.BootState()
	e = st.Env(e)
	e["bulkhead_default"], e["bulkhead_gave_up"], e["bulkhead_spare"], e["bulkhead_boots"] = "b", "a", "", "0"
	for _, name := range []string{bootcfg.ESPGrubEnv, bootcfg.ESPGrubEnvBackup} {
		if err := grubenv.Create(h.ESP(name), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.recordBlessed("a"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Root.Join("/proc/cmdline"), []byte("bulkhead.slot=b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := h.RecordGaveUp()
	if err != nil || s != "a" {
		t.Fatalf("RecordGaveUp: %q, %v, want a", s, err)
	}
	if e := env(); e["bulkhead_gave_up"] != "a" {
		t.Errorf("gave-up note cleared before the boot is confirmed: %v", e)
	}
	if p, _ := h.Proven("a"); p {
		t.Error("slot a kept its blessing after GRUB gave up on it")
	}
	out, err := h.withSpare(bootcfg.State{Default: "b"}, env())
	if err != nil || out["bulkhead_spare"] != "" {
		t.Errorf("spare after giving up on a: %v, %v, want none", out, err)
	}
	stat, _ := h.ReadStatus()
	if stat.Slots[0].State != bootcfg.StateCorrupt || !strings.Contains(stat.Slots[0].UsrCheckFailed, "restarted 3 boots") {
		t.Errorf("status of a: %+v", stat.Slots[0])
	}
	if s, err := h.RecordGaveUp(); s != "" || err != nil {
		t.Errorf("second RecordGaveUp: %q, %v, want nothing to do", s, err)
	}
	if err := h.ConfirmBoot(); err != nil {
		t.Fatal(err)
	}
	if e := env(); e["bulkhead_gave_up"] != "" || e["bulkhead_spare"] != "" {
		t.Errorf("after the boot on b is confirmed: %v, want the note cleared and no spare", e)
	}
}

// TestNewDefaultCountsAfresh: a change of default (bless of a trial,
// rollback, a move away from a damaged slot) resets the boot count.
func TestNewDefaultCountsAfresh(t *testing.T) {
	h := fakeHost(t, "bulkhead.slot=b", grubenv.Env{"bulkhead_default": "a", "bulkhead_boots": "3", "bulkhead_try": "b", "bulkhead_tries": "2"},
		map[bootcfg.Slot]string{"a": "1.0.0", "b": "2.0.0"})
	if _, err := h.Bless(); err != nil {
		t.Fatal(err)
	}
	_, e, _ := h.BootState()
	if e["bulkhead_default"] != "b" || e["bulkhead_boots"] != "0" || e["bulkhead_spare"] != "a" {
		t.Errorf("after blessing b: %v, want default b, boots 0, spare a", e)
	}
}

// TestVerityOptionsFollowGrubCfg: a new slot's entry restarts at a damaged
// block only where the ESP's grub.cfg counts restarts; on a host whose
// grub.cfg predates the counter (or has none) it keeps the kernel's default.
func TestVerityOptionsFollowGrubCfg(t *testing.T) {
	h := fakeHost(t, "bulkhead.slot=a", grubenv.Env{"bulkhead_default": "a"}, nil)
	if got := h.VerityOptions(); got != "" {
		t.Errorf("no grub.cfg: %q, want none", got)
	}
	cfg := h.ESP("grub", "grub.cfg")
	for _, tc := range []struct{ content, want string }{
		{"set slot=a\nsave_env bulkhead_tries\n", ""},
		{"if [ \"$bulkhead_boots\" = \"3\" ]; then\n", bootcfg.VerityOptions},
	} {
		if err := os.WriteFile(cfg, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := h.VerityOptions(); got != tc.want {
			t.Errorf("grub.cfg %q: %q, want %q", tc.content, got, tc.want)
		}
	}
}
