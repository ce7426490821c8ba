package slots

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
	"github.com/bulkhead-os/bulkhead/updater/verity"
)

// UsrCheckFile records the builds whose /usr failed its check, by slot.
const UsrCheckFile = "usr-check.json"

// RunningFile is there while a boot runs (MarkRunning) and gone after a
// clean shutdown (MarkCleanStop): found at boot, the previous boot ended
// otherwise, in a power cut, a panic or dm-verity's restart at a damaged
// block.
const RunningFile = "running"

// MarkRunning records that this boot runs, and tells whether the previous
// boot ended without a clean shutdown.
func (h Host) MarkRunning() (unclean bool, err error) {
	p := h.Root.Join(StateDir, RunningFile)
	_, err = os.Stat(p)
	unclean = err == nil
	if err := fsroot.WriteFile(p, []byte("a boot runs; a clean shutdown removes this\n"), 0o644); err != nil {
		return unclean, fmt.Errorf("recording the running boot: %w", err)
	}
	return unclean, nil
}

// MarkCleanStop records that this boot ends in a clean shutdown.
func (h Host) MarkCleanStop() error {
	if err := os.Remove(h.Root.Join(StateDir, RunningFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recording a clean shutdown: %w", err)
	}
	return nil
}

// ErrUsrCorrupt means the booted slot's /usr partitions do not match the
// root hash the kernel booted with.
var ErrUsrCorrupt = errors.New("/usr does not match its dm-verity root hash")

// VerityOptions are the dm-verity options a new slot's entry may give /usr
// on this host: restart at a damaged block (bootcfg.VerityOptions) only
// where the ESP's grub.cfg counts boots that restart before their check
// (images built before it do not: a bootloader update brings it), else
// none, the kernel's default of failing the read.
func (h Host) VerityOptions() string {
	b, err := os.ReadFile(h.ESP(bootcfg.ESPGrubDir, "grub.cfg"))
	if err != nil || !bytes.Contains(b, []byte(bootcfg.VarBoots)) {
		return ""
	}
	return bootcfg.VerityOptions
}

// UsrDevices are the booted /usr's partitions and root hash, as the kernel
// command line names them.
type UsrDevices struct {
	Data, Hash string // host paths of the data and hash partitions
	RootHash   []byte
}

// BootedUsr reads the booted /usr's partitions and root hash from the
// kernel command line (usrhash= and systemd.verity_usr_data/hash=).
func (h Host) BootedUsr() (UsrDevices, error) {
	cl, err := h.Cmdline()
	if err != nil {
		return UsrDevices{}, err
	}
	var d UsrDevices
	hexRoot, _ := CmdlineArg(cl, "usrhash")
	if d.RootHash, err = hex.DecodeString(hexRoot); err != nil || len(d.RootHash) == 0 {
		return d, fmt.Errorf("kernel command line: usrhash=%q is not a hex root hash", hexRoot)
	}
	for _, p := range []struct {
		key string
		dst *string
	}{{"systemd.verity_usr_data", &d.Data}, {"systemd.verity_usr_hash", &d.Hash}} {
		v, _ := CmdlineArg(cl, p.key)
		uuid, ok := strings.CutPrefix(v, "PARTUUID=")
		if !ok || uuid == "" || strings.ContainsAny(uuid, "/.") {
			return d, fmt.Errorf("kernel command line: %s=%q names no partition by PARTUUID", p.key, v)
		}
		*p.dst = h.Root.Join("/dev/disk/by-partuuid", strings.ToLower(uuid))
	}
	return d, nil
}

// CheckBootedUsr reads the booted slot's /usr data and hash partitions
// whole, past dm-verity (which would restart the machine at the first bad
// block), and checks them against the root hash the kernel booted with,
// as `veritysetup verify` does. A mismatch is ErrUsrCorrupt.
func (h Host) CheckBootedUsr(progress func(what string, done, total int64)) error {
	d, err := h.BootedUsr()
	if err != nil {
		return err
	}
	data, err := os.Open(d.Data)
	if err != nil {
		return fmt.Errorf("checking /usr: %w", err)
	}
	defer data.Close()
	hash, err := os.Open(d.Hash)
	if err != nil {
		return fmt.Errorf("checking /usr: %w", err)
	}
	defer hash.Close()
	sb := make([]byte, verity.SuperblockSize)
	if _, err := hash.ReadAt(sb, 0); err != nil {
		return fmt.Errorf("checking /usr: reading the verity superblock of %s: %w", d.Hash, err)
	}
	// The kernel set the slot up from this superblock at boot: one that no
	// longer parses was damaged since.
	s, err := verity.ParseSuperblock(sb)
	if err != nil {
		return fmt.Errorf("checking /usr: superblock of %s: %w: %w", d.Hash, ErrUsrCorrupt, err)
	}
	total := int64(s.DataBlocks) * verity.BlockSize
	err = verity.Verify(slotwriter.ProgressReader("check /usr", data, total, progress), hash, d.RootHash)
	switch {
	case errors.Is(err, verity.ErrRootHashMismatch), errors.Is(err, verity.ErrTreeMismatch):
		return fmt.Errorf("checking /usr on %s and %s: %w: %w", d.Data, d.Hash, ErrUsrCorrupt, err)
	case err != nil:
		return fmt.Errorf("checking /usr on %s and %s: %w", d.Data, d.Hash, err)
	}
	return nil
}

// UsrFailure is a build whose /usr failed its check.
type UsrFailure struct {
	Build
	Error string    `json:"error"`
	Time  time.Time `json:"time"`
}

// UsrFailures returns the recorded /usr check failures by slot.
func (h Host) UsrFailures() (map[bootcfg.Slot]UsrFailure, error) {
	return readBySlot[UsrFailure](h, UsrCheckFile, "/usr check failures")
}

// Corrupt tells whether slot s holds the very build that failed its /usr
// check (a slot rewritten since holds another build and is not).
func (h Host) Corrupt(s bootcfg.Slot) (bool, error) {
	all, err := h.UsrFailures()
	if err != nil {
		return false, err
	}
	f, ok := all[s]
	return h.holds(s, f.Build, ok)
}

// setUsrFailure records (f != nil) or forgets (f == nil) slot s's failure.
func (h Host) setUsrFailure(s bootcfg.Slot, f *UsrFailure) error {
	return setBySlot(h, UsrCheckFile, "/usr check failures", s, f)
}

// UsrChecked records that the booted slot's /usr passed its check: an
// earlier failure of the slot is forgotten and the boot is confirmed
// (ConfirmBoot).
func (h Host) UsrChecked() error {
	booted, err := h.Booted()
	if err != nil {
		return err
	}
	if err := h.setUsrFailure(booted, nil); err != nil {
		return err
	}
	return h.ConfirmBoot()
}

// ConfirmBoot records that this boot came up far enough to check its
// /usr: GRUB's count of unconfirmed boots goes back to 0, and the spare
// slot GRUB may move to is brought up to date. A check that could not run
// (not a damaged slot) confirms the boot too: the count is for boots that
// restart before they get there.
func (h Host) ConfirmBoot() error {
	booted, err := h.Booted()
	if err != nil {
		return err
	}
	st, env, err := h.BootState()
	if err != nil {
		return err
	}
	out, err := h.withSpare(st, env)
	if err != nil {
		return err
	}
	out[bootcfg.VarBoots] = "0"
	// RecordGaveUp has recorded the slot GRUB gave up on, early in boot.
	out[bootcfg.VarGaveUp] = ""
	if maps.Equal(out, env) {
		return nil
	}
	if err := h.WriteBootState(st, out); err != nil {
		return fmt.Errorf("confirming the boot of slot %s: %w", booted, err)
	}
	return nil
}

// withSpare returns env with bootcfg.VarSpare naming the slot GRUB may
// move the default to: the other slot while it holds its blessed build,
// is not on trial and has not failed its check; else none.
func (h Host) withSpare(st bootcfg.State, env grubenv.Env) (grubenv.Env, error) {
	out := maps.Clone(env)
	if out == nil {
		out = grubenv.Env{}
	}
	out[bootcfg.VarSpare] = ""
	o := st.Default.Other()
	if st.Try == o {
		return out, nil
	}
	proven, err := h.Proven(o)
	if err != nil || !proven {
		return out, err
	}
	corrupt, err := h.Corrupt(o)
	if err != nil || corrupt {
		return out, err
	}
	out[bootcfg.VarSpare] = string(o)
	return out, nil
}

// RecordGaveUp records the slot GRUB gave up on (bootcfg.VarGaveUp: its
// default restarted bootcfg.MaxBoots boots running before its check, and
// GRUB moved to the spare): its build is recorded as failing and loses its
// blessing, so it is never the spare again until it boots and is blessed.
// It returns that slot, or "" when GRUB gave up on none. Like
// RecordFailedTrial it writes only the state directory, so it runs early
// in boot (bulkhead-record-trial.service), before bless and status can
// take the slot for good; ConfirmBoot clears GRUB's note.
func (h Host) RecordGaveUp() (bootcfg.Slot, error) {
	st, env, err := h.BootState()
	if err != nil {
		return "", err
	}
	s, err := bootcfg.ParseSlot(env[bootcfg.VarGaveUp])
	if err != nil || s == st.Default {
		return "", nil
	}
	cur, err := h.build(s)
	if err != nil {
		return "", err
	}
	if cur != nil {
		if done, err := h.Corrupt(s); err != nil || done {
			return "", err
		}
		f := UsrFailure{Build: *cur, Time: time.Now().UTC(), Error: fmt.Sprintf(
			"restarted %d boots running before its /usr check; GRUB moved to slot %s", bootcfg.MaxBoots, st.Default)}
		if err := h.setUsrFailure(s, &f); err != nil {
			return "", err
		}
	}
	if err := h.ForgetBlessed(s); err != nil {
		return "", err
	}
	return s, nil
}

// FailBootedUsr records that the booted slot's /usr failed its check with
// cause, withdraws its blessing and moves the boot selection away from it
// where there is somewhere to go: out of its trial to the default, or to
// the other slot when that holds its blessed build. It returns the
// selection now in force and what was done; the caller reboots unless the
// outcome is bootcfg.NoGoodSlot.
func (h Host) FailBootedUsr(cause error) (bootcfg.State, bootcfg.CheckOutcome, error) {
	booted, err := h.Booted()
	if err != nil {
		return bootcfg.State{}, "", err
	}
	cur, err := h.build(booted)
	if err != nil {
		return bootcfg.State{}, "", err
	}
	if cur != nil {
		if err := h.setUsrFailure(booted, &UsrFailure{Build: *cur, Error: cause.Error(), Time: time.Now().UTC()}); err != nil {
			return bootcfg.State{}, "", err
		}
	}
	if err := h.ForgetBlessed(booted); err != nil {
		return bootcfg.State{}, "", err
	}
	st, env, err := h.BootState()
	if err != nil {
		return bootcfg.State{}, "", err
	}
	proven, err := h.Proven(booted.Other())
	if err != nil {
		return st, "", err
	}
	after, outcome := bootcfg.UsrCorrupt(st, booted, proven)
	if after != st {
		// The new default's other slot is the damaged one: no spare.
		env = maps.Clone(env)
		env[bootcfg.VarSpare] = ""
		if err := h.WriteBootState(after, env); err != nil {
			return st, "", fmt.Errorf("moving the boot away from slot %s: %w", booted, err)
		}
	}
	return after, outcome, nil
}
