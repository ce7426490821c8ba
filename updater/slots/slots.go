package slots

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
)

// Where things live on a host, relative to its root.
const (
	ESPMount    = "/efi"                      // the ESP, mounted by fstab
	StateDir    = "/var/lib/bulkhead/updater" // update state
	BadFile     = "bad-versions.json"         // versions whose trial failed
	cmdlineFile = "/proc/cmdline"
	osRelease   = "/usr/lib/os-release"
)

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

// BootState reads the GRUB boot selection and the raw environment.
func (h Host) BootState() (bootcfg.State, grubenv.Env, error) {
	env, err := grubenv.Read(h.ESP(bootcfg.ESPGrubEnv))
	if err != nil {
		return bootcfg.State{}, nil, err
	}
	return bootcfg.FromEnv(env), env, nil
}

// WriteBootState writes st into the environment block in place.
func (h Host) WriteBootState(st bootcfg.State, env grubenv.Env) error {
	return grubenv.WriteInPlace(h.ESP(bootcfg.ESPGrubEnv), st.Env(env))
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
	b, _ := json.Marshal(append(v, version))
	return fsroot.WriteFile(h.Root.Join(StateDir, BadFile), b, 0o644)
}

// SlotInfo is one slot in Status.
type SlotInfo struct {
	Slot      bootcfg.Slot      `json:"slot"`
	State     bootcfg.SlotState `json:"state"`
	Version   string            `json:"version,omitempty"`
	RootHash  string            `json:"rootHash,omitempty"`
	TriesLeft int               `json:"triesLeft,omitempty"`
}

// Status is the slot part of `hostctl status`.
type Status struct {
	OS      string       `json:"os"`
	Version string       `json:"version"`
	Booted  bootcfg.Slot `json:"booted"`
	Default bootcfg.Slot `json:"default"`
	Slots   []SlotInfo   `json:"slots"`
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
	st, _, err := h.BootState()
	if err != nil {
		return s, err
	}
	s.Default = st.Default
	bad, err := h.BadVersions()
	if err != nil {
		return s, err
	}
	for _, slot := range []bootcfg.Slot{bootcfg.SlotA, bootcfg.SlotB} {
		r, err := h.Release(slot)
		if err != nil {
			return s, err
		}
		info := SlotInfo{Slot: slot, Version: r["VERSION"], RootHash: r["ROOTHASH"]}
		info.State = bootcfg.Describe(st, slot, s.Booted, r != nil, r != nil && slices.Contains(bad, r["VERSION"]))
		if st.Try == slot {
			info.TriesLeft = st.TriesLeft
		}
		s.Slots = append(s.Slots, info)
	}
	return s, nil
}

// Bless records that the booted slot passed its health checks: the GRUB
// selection makes it the default, and a trial that ran out of tries is
// recorded as a bad version. The environment is only written when it changes.
func (h Host) Bless() (bootcfg.Outcome, error) {
	booted, err := h.Booted()
	if err != nil {
		return "", err
	}
	st, env, err := h.BootState()
	if err != nil {
		return "", err
	}
	after, outcome := bootcfg.Bless(st, booted)
	if outcome == bootcfg.TrialFailed {
		r, err := h.Release(st.Try)
		if err != nil {
			return "", err
		}
		if r != nil && r["VERSION"] != "" {
			if err := h.MarkBad(r["VERSION"]); err != nil {
				return "", err
			}
		}
	}
	if after != st {
		if err := h.WriteBootState(after, env); err != nil {
			return "", fmt.Errorf("blessing slot %s: %w", booted, err)
		}
	}
	return outcome, nil
}

// StateDirPath is the host path of the update state directory.
func (h Host) StateDirPath() string { return filepath.Clean(h.Root.Join(StateDir)) }
