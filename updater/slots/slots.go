package slots

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
)

// Where things live on a host, relative to its root.
const (
	ESPMount    = "/efi"                      // the ESP, mounted by fstab
	StateDir    = "/var/lib/bulkhead/updater" // update state
	BadFile     = "bad-versions.json"         // versions whose trial failed
	BlessedFile = "blessed-slots.json"        // builds that booted and were blessed, by slot
	cmdlineFile = "/proc/cmdline"
	osRelease   = "/usr/lib/os-release"
)

// ErrNotRecordedBad: forget-bad was asked about a version not recorded bad.
var ErrNotRecordedBad = errors.New("version is not recorded bad")

// ErrNotBulkhead means the kernel command line names no slot: not booted
// from a Bulkhead disk.
var ErrNotBulkhead = errors.New("not booted from a Bulkhead slot (no bulkhead.slot= on the kernel command line)")

// Host reads and changes the slot state of the system under Root.
type Host struct {
	Root fsroot.Root
}

// Cmdline returns the kernel command line.
func (h Host) Cmdline() (string, error) {
	b, err := os.ReadFile(h.Root.Join(cmdlineFile))
	if err != nil {
		return "", fmt.Errorf("reading kernel command line: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CmdlineArg returns the value of key= on the kernel command line (the last
// one wins, as for the kernel), and whether it was there.
func CmdlineArg(cmdline, key string) (string, bool) {
	val, found := "", false
	for _, f := range strings.Fields(cmdline) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// Booted returns the slot the running system booted from.
func (h Host) Booted() (bootcfg.Slot, error) {
	cl, err := h.Cmdline()
	if err != nil {
		return "", err
	}
	v, ok := CmdlineArg(cl, "bulkhead.slot")
	if !ok {
		return "", ErrNotBulkhead
	}
	return bootcfg.ParseSlot(v)
}

// ESP returns the host path of a path inside the ESP.
func (h Host) ESP(p ...string) string {
	return h.Root.Join(append([]string{ESPMount}, p...)...)
}

// BootState reads the GRUB boot selection and the raw environment: from
// the environment block, or where that is missing or damaged, from its
// backup, as GRUB does (BootEnvDamage says what is wrong).
func (h Host) BootState() (bootcfg.State, grubenv.Env, error) {
	env, err := h.readEnv(bootcfg.ESPGrubEnv)
	if err != nil {
		var berr error
		if env, berr = h.readEnv(bootcfg.ESPGrubEnvBackup); berr != nil {
			return bootcfg.State{}, nil, fmt.Errorf("%w; and its backup: %w", err, berr)
		}
	}
	return bootcfg.FromEnv(env), env, nil
}

// readEnv reads one copy of the environment block. One that names no
// valid default slot is damaged: GRUB would find no selection in it.
func (h Host) readEnv(name string) (grubenv.Env, error) {
	p := h.ESP(name)
	env, err := grubenv.Read(p)
	if err != nil {
		return nil, err
	}
	if _, err := bootcfg.ParseSlot(env[bootcfg.VarDefault]); err != nil {
		return nil, fmt.Errorf("GRUB environment %s: no default slot (%s=%q)", p, bootcfg.VarDefault, env[bootcfg.VarDefault])
	}
	return env, nil
}

// BootEnvDamage says what is wrong with the environment block and its
// backup ("" when both are sound and agree): what `hostctl status`
// reports and `hostctl repair-boot` mends.
func (h Host) BootEnvDamage() string {
	env, err := h.readEnv(bootcfg.ESPGrubEnv)
	benv, berr := h.readEnv(bootcfg.ESPGrubEnvBackup)
	switch {
	case err != nil && berr != nil:
		return fmt.Sprintf("%v; and its backup: %v", err, berr)
	case err != nil:
		return fmt.Sprintf("%v (booting from its backup)", err)
	case berr != nil:
		return fmt.Sprintf("backup %v", berr)
	case bootcfg.FromEnv(env).Default != bootcfg.FromEnv(benv).Default:
		// The block is newer: its backup is written after it.
		return fmt.Sprintf("the backup names default slot %s, the block %s", bootcfg.FromEnv(benv).Default, bootcfg.FromEnv(env).Default)
	}
	return ""
}

// WriteBootState writes st into the environment block, then into its
// backup, each in place and synced: a power cut tears at most one, and
// the other holds a whole selection, the old or the new. A copy that is
// missing or too short is made anew. A new default starts its count of
// unconfirmed boots (bootcfg.VarBoots) afresh.
func (h Host) WriteBootState(st bootcfg.State, env grubenv.Env) error {
	out := st.Env(env)
	if bootcfg.FromEnv(env).Default != st.Default {
		out[bootcfg.VarBoots] = "0"
	}
	for _, name := range []string{bootcfg.ESPGrubEnv, bootcfg.ESPGrubEnvBackup} {
		if err := writeEnvCopy(h.ESP(name), out); err != nil {
			return err
		}
	}
	return nil
}

// writeEnvCopy writes env into the block at p in place, or makes the
// file anew where it is missing, too short or not a block.
func writeEnvCopy(p string, env grubenv.Env) error {
	if _, err := grubenv.Read(p); err == nil {
		if err := grubenv.WriteInPlace(p, env); err == nil {
			return nil
		}
	}
	return replaceEnv(p, env)
}

// replaceEnv makes the block at p anew, as the ESP's other files are
// written: a whole new file put in place by a rename (slotwriter.Install).
func replaceEnv(p string, env grubenv.Env) error {
	b, err := grubenv.Encode(env, grubenv.Size)
	if err != nil {
		return fmt.Errorf("writing GRUB environment %s: %w", p, err)
	}
	if _, _, err := slotwriter.Install(context.Background(), bytes.NewReader(b), p, 0o644); err != nil {
		return fmt.Errorf("writing GRUB environment: %w", err)
	}
	return nil
}

// RepairBootEnv rewrites the environment block and its backup from the
// selection they still hold (the block's, else the backup's), or where
// both are lost, from the running system: the booted slot as the
// default, no trial (it booted, so it is the last slot known to boot).
// It returns the selection written.
func (h Host) RepairBootEnv() (bootcfg.State, error) {
	st, env, err := h.BootState()
	if err != nil {
		booted, berr := h.Booted()
		if berr != nil {
			return st, fmt.Errorf("repairing the boot environment: %w; and the booted slot: %w", err, berr)
		}
		st, env = bootcfg.State{Default: booted}, grubenv.Env{}
	}
	for _, name := range []string{bootcfg.ESPGrubEnv, bootcfg.ESPGrubEnvBackup} {
		if err := replaceEnv(h.ESP(name), st.Env(env)); err != nil {
			return st, fmt.Errorf("repairing the boot environment: %w", err)
		}
	}
	return st, nil
}

// Release returns the release facts of the version in slot, or nil when the
// slot holds none.
func (h Host) Release(s bootcfg.Slot) (map[string]string, error) {
	b, err := os.ReadFile(h.ESP(bootcfg.SlotDir(s), bootcfg.ReleaseFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading release of slot %s: %w", s, err)
	}
	return bootcfg.ParseRelease(b), nil
}

// BadVersions returns the versions recorded as failed.
func (h Host) BadVersions() ([]string, error) {
	b, err := os.ReadFile(h.Root.Join(StateDir, BadFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading bad versions: %w", err)
	}
	var v []string
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("reading bad versions %s: %w", h.Root.Join(StateDir, BadFile), err)
	}
	return v, nil
}

// MarkBad records version as failed so that it is not offered again.
func (h Host) MarkBad(version string) error {
	v, err := h.BadVersions()
	if err != nil {
		return err
	}
	if slices.Contains(v, version) {
		return nil
	}
	return h.writeBad(append(v, version))
}

// ForgetBad removes version from the bad versions (the operator's
// `hostctl update forget-bad`), so that it may be staged again.
func (h Host) ForgetBad(version string) error {
	v, err := h.BadVersions()
	if err != nil {
		return err
	}
	i := slices.Index(v, version)
	if i < 0 {
		return fmt.Errorf("forgetting %s: %w", version, ErrNotRecordedBad)
	}
	return h.writeBad(slices.Delete(v, i, i+1))
}

func (h Host) writeBad(v []string) error {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return fsroot.WriteFile(h.Root.Join(StateDir, BadFile), b, 0o644)
}

// RecordFailedTrial records the version of a failed trial as bad: the host
// booted the default slot while the slot on trial had spent its tries, so
// GRUB fell back. It returns the version recorded ("" when this boot is no
// fallback). It writes only the state directory, never the GRUB environment,
// so it is safe to run early in boot (bulkhead-record-trial.service), before
// hostd's periodic check or bless can act on the spent trial.
func (h Host) RecordFailedTrial() (string, error) {
	v, err := h.FailedTrial()
	if err != nil || v == "" {
		return "", err
	}
	return v, h.MarkBad(v)
}

// FailedTrial returns the version of the trial GRUB fell back from in this
// boot, or "" when this boot is no fallback. It writes nothing.
func (h Host) FailedTrial() (string, error) {
	booted, err := h.Booted()
	if err != nil {
		return "", err
	}
	st, _, err := h.BootState()
	if err != nil {
		return "", err
	}
	if !FellBack(st, booted) {
		return "", nil
	}
	r, err := h.Release(st.Try)
	if err != nil || r == nil {
		return "", err
	}
	return r["VERSION"], nil
}

// FellBack tells whether booted is GRUB's fallback from a spent trial.
func FellBack(st bootcfg.State, booted bootcfg.Slot) bool {
	return st.Try != "" && st.Try != booted && st.TriesLeft == 0 && booted == st.Default
}

// Build identifies what a slot holds: a version is not enough, since a slot
// rewritten with another build of the same version has not proved itself.
type Build struct {
	Version  string `json:"version"`
	RootHash string `json:"rootHash"`
}

// build is the build in slot s, or nil when it holds none.
func (h Host) build(s bootcfg.Slot) (*Build, error) {
	r, err := h.Release(s)
	if err != nil || r == nil || r["VERSION"] == "" {
		return nil, err
	}
	return &Build{Version: r["VERSION"], RootHash: r["ROOTHASH"]}, nil
}

// BlessedBuilds returns, by slot, the builds that booted and were blessed.
func (h Host) BlessedBuilds() (map[bootcfg.Slot]Build, error) {
	return readBySlot[Build](h, BlessedFile, "blessed slots")
}

// readBySlot reads a state file that holds a JSON object by slot; a
// missing file is an empty one.
func readBySlot[T any](h Host, file, what string) (map[bootcfg.Slot]T, error) {
	p := h.Root.Join(StateDir, file)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return map[bootcfg.Slot]T{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	v := map[bootcfg.Slot]T{}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, p, err)
	}
	return v, nil
}

// setBySlot records (v != nil) or forgets (v == nil) slot s's entry in
// a state file readBySlot reads, writing only when that changes it.
func setBySlot[T comparable](h Host, file, what string, s bootcfg.Slot, v *T) error {
	all, err := readBySlot[T](h, file, what)
	if err != nil {
		return err
	}
	if old, ok := all[s]; (v == nil && !ok) || (v != nil && ok && old == *v) {
		return nil
	}
	if v == nil {
		delete(all, s)
	} else {
		all[s] = *v
	}
	out, _ := json.Marshal(all)
	return fsroot.WriteFile(h.Root.Join(StateDir, file), out, 0o644)
}

// holds tells whether slot s holds the very build b names, when ok.
func (h Host) holds(s bootcfg.Slot, b Build, ok bool) (bool, error) {
	if !ok {
		return false, nil
	}
	cur, err := h.build(s)
	if err != nil || cur == nil {
		return false, err
	}
	return b == *cur, nil
}

// Proven tells whether slot s holds the very build that was blessed in it.
func (h Host) Proven(s bootcfg.Slot) (bool, error) {
	all, err := h.BlessedBuilds()
	if err != nil {
		return false, err
	}
	b, ok := all[s]
	return h.holds(s, b, ok)
}

// setBlessed records (b != nil) or forgets (b == nil) the blessed build of s.
func (h Host) setBlessed(s bootcfg.Slot, b *Build) error {
	return setBySlot(h, BlessedFile, "blessed slots", s, b)
}

// ForgetBlessed drops slot s's blessing: the updater calls it before it
// rewrites the slot.
func (h Host) ForgetBlessed(s bootcfg.Slot) error { return h.setBlessed(s, nil) }

// SlotInfo is one slot in Status.
type SlotInfo struct {
	Slot      bootcfg.Slot      `json:"slot"`
	State     bootcfg.SlotState `json:"state"`
	Version   string            `json:"version,omitempty"`
	RootHash  string            `json:"rootHash,omitempty"`
	TriesLeft int               `json:"triesLeft,omitempty"`
	// Blessed: this build booted in this slot and passed its health checks.
	Blessed bool `json:"blessed,omitempty"`
	// UsrCheckFailed is why this build's /usr failed its check against
	// its root hash (hostctl verify-usr), if it did.
	UsrCheckFailed string `json:"usrCheckFailed,omitempty"`
}

// Status is the slot part of `hostctl status`.
type Status struct {
	OS      string       `json:"os"`
	Version string       `json:"version"`
	Booted  bootcfg.Slot `json:"booted"`
	Default bootcfg.Slot `json:"default"`
	Slots   []SlotInfo   `json:"slots"`
	// BootEnvDamage is what is wrong with the GRUB environment block or
	// its backup (hostctl repair-boot mends it); empty when both are sound.
	BootEnvDamage string `json:"bootEnvDamage,omitempty"`
	// Disk is the boot disk (the disk holding the mounted root) and
	// DiskGUID its GPT disk GUID; DiskError says why they are unknown.
	Disk      string `json:"disk,omitempty"`
	DiskGUID  string `json:"diskGUID,omitempty"`
	DiskError string `json:"diskError,omitempty"`
	// DiskPristine: the disk still has the image's GUID (hostctl identity
	// gives it its own at the first boot).
	DiskPristine bool `json:"diskPristine,omitempty"`
}

// ReadStatus gathers the slot status.
func (h Host) ReadStatus() (Status, error) {
	var s Status
	osr, err := os.ReadFile(h.Root.Join(osRelease))
	if err != nil {
		return s, fmt.Errorf("reading os-release: %w", err)
	}
	rel := bootcfg.ParseRelease(osr)
	s.OS = strings.Trim(rel["NAME"], `"`)
	s.Version = strings.Trim(rel["VERSION_ID"], `"`)
	if s.Booted, err = h.Booted(); err != nil {
		return s, err
	}
	s.BootEnvDamage = h.BootEnvDamage()
	if d, err := bootdisk.Find(h.Root); err == nil {
		s.Disk = d.Dev
		if s.DiskGUID, err = bootdisk.GUID(h.Root.Join(d.Dev)); err != nil {
			s.DiskError = err.Error()
		}
		s.DiskPristine = s.DiskGUID == bootabi.PristineDiskGUID
	} else if !errors.Is(err, bootdisk.ErrNoMountinfo) {
		s.DiskError = err.Error()
	}
	st, _, err := h.BootState()
	if err != nil {
		return s, err
	}
	s.Default = st.Default
	bad, err := h.BadVersions()
	if err != nil {
		return s, err
	}
	failures, err := h.UsrFailures()
	if err != nil {
		return s, err
	}
	for _, slot := range []bootcfg.Slot{bootcfg.SlotA, bootcfg.SlotB} {
		r, err := h.Release(slot)
		if err != nil {
			return s, err
		}
		info := SlotInfo{Slot: slot, Version: r["VERSION"], RootHash: r["ROOTHASH"]}
		if info.Blessed, err = h.Proven(slot); err != nil {
			return s, err
		}
		if f, ok := failures[slot]; ok && f.Build == (Build{Version: info.Version, RootHash: info.RootHash}) {
			info.UsrCheckFailed = f.Error
		}
		info.State = bootcfg.Describe(st, slot, s.Booted, bootcfg.SlotFacts{
			HoldsVersion: r != nil, Bad: r != nil && slices.Contains(bad, r["VERSION"]), Blessed: info.Blessed,
			Corrupt: info.UsrCheckFailed != ""})
		if st.Try == slot {
			info.TriesLeft = st.TriesLeft
		}
		s.Slots = append(s.Slots, info)
	}
	return s, nil
}

// Bless records that the booted slot passed its health checks: the GRUB
// selection makes it the default, and a trial that ran out of tries is
// recorded as a bad version (if the early unit has not already). The
// booted build is recorded as blessed, and so is the previous default when a
// trial succeeds: it was the known-good fallback (which also covers hosts
// whose earlier blessings predate the record). The environment is only
// written when it changes.
func (h Host) Bless() (bootcfg.Outcome, error) {
	booted, err := h.Booted()
	if err != nil {
		return "", err
	}
	if _, err := h.RecordFailedTrial(); err != nil {
		return "", err
	}
	st, env, err := h.BootState()
	if err != nil {
		return "", err
	}
	after, outcome := bootcfg.Bless(st, booted)
	if outcome == bootcfg.Blessed && st.OnTrial(booted) {
		if err := h.recordBlessed(st.Default); err != nil {
			return "", err
		}
	}
	if err := h.recordBlessed(booted); err != nil {
		return "", err
	}
	spared, err := h.withSpare(after, env)
	if err != nil {
		return "", err
	}
	if after != st || spared[bootcfg.VarSpare] != env[bootcfg.VarSpare] {
		if err := h.WriteBootState(after, spared); err != nil {
			return "", fmt.Errorf("blessing slot %s: %w", booted, err)
		}
	}
	return outcome, nil
}

// recordBlessed records the build in s as blessed, if it holds one.
func (h Host) recordBlessed(s bootcfg.Slot) error {
	b, err := h.build(s)
	if err != nil || b == nil {
		return err
	}
	return h.setBlessed(s, b)
}

// StateDirPath is the host path of the update state directory.
func (h Host) StateDirPath() string { return filepath.Clean(h.Root.Join(StateDir)) }
