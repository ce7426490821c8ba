package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
)

// ErrSlotUnproven: rollback was asked to move to a slot whose build never
// booted to a blessing. GRUB's fallback is the default itself, so making
// such a slot the default could leave the host with nothing good to boot.
var ErrSlotUnproven = errors.New("slot never booted and was blessed (--force puts it on trial instead)")

// RollbackOptions select how far Rollback may go.
type RollbackOptions struct {
	// Force puts an unproven slot on trial (counted tries, the booted slot
	// kept as the fallback) instead of refusing. It never makes it default.
	Force bool
	// AllowBad names the one recorded-bad version Rollback may put on trial
	// (with Force).
	AllowBad string
}

// RollbackResult says what Rollback did.
type RollbackResult struct {
	From, To bootcfg.Slot
	Version  string // the version in To
	Changed  bool   // false when To already was the default with no trial
	// Trial: To was put on trial (Force) rather than made the default.
	Trial bool
	State bootcfg.SlotState // To's state before the rollback
}

// Rollback moves the host to the other slot. A slot that booted and was
// blessed with the build it holds now (or that already is GRUB's default)
// becomes the default and any trial is cancelled. Any other slot holding a
// complete version is refused with its state, unless o.Force: then it goes
// on trial with update.yaml's tries, the booted slot staying the default,
// so a bad slot costs a few boots, never the host. A recorded-bad version
// goes on trial only when o.AllowBad names it. It writes only the GRUB
// environment block (in place), under the update lock, and holds the
// periodic updater to the rolled-back version (see Hold).
//
// The boot chain both slots share stays as it is: the host runs on it,
// so it boots this machine, and its shim may have applied an SBAT
// revocation of the older GRUB that putting the .prev files back would
// make unbootable under Secure Boot (bootchain.Installer.Restore refuses
// that too). grub.cfg reads both slots' entries whatever chain installed it.
func (u *Updater) Rollback(ctx context.Context, o RollbackOptions) (RollbackResult, error) {
	var r RollbackResult
	if err := ctx.Err(); err != nil {
		return r, err
	}
	lock, err := TryLock(u.Root)
	if err != nil {
		return r, err
	}
	defer lock.Unlock()
	h := u.host()
	booted, err := h.Booted()
	if err != nil {
		return r, err
	}
	r.From, r.To = booted, booted.Other()
	rel, err := h.Release(r.To)
	if err != nil {
		return r, err
	}
	if rel == nil || rel["VERSION"] == "" {
		return r, fmt.Errorf("rolling back to slot %s: %w", r.To, bootcfg.ErrSlotEmpty)
	}
	r.Version = rel["VERSION"]
	for _, f := range []string{bootcfg.KernelFile, bootcfg.InitrdFile, bootcfg.EntryFile} {
		if _, err := os.Stat(h.ESP(bootcfg.SlotDir(r.To), f)); errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("rolling back to slot %s: no %s: %w", r.To, f, ErrSlotIncomplete)
		}
	}
	st, env, err := h.BootState()
	if err != nil {
		return r, err
	}
	bad, err := h.BadVersions()
	if err != nil {
		return r, err
	}
	proven, err := h.Proven(r.To)
	if err != nil {
		return r, err
	}
	isBad := slices.Contains(bad, r.Version)
	r.State = bootcfg.Describe(st, r.To, booted, bootcfg.SlotFacts{HoldsVersion: true, Bad: isBad, Blessed: proven})
	var next bootcfg.State
	switch {
	case isBad && !(o.Force && o.AllowBad == r.Version):
		return r, fmt.Errorf("rolling back to %s in slot %s (state %s; --force --allow-bad %s puts it on trial): %w",
			r.Version, r.To, r.State, r.Version, ErrVersionBad)
	case !isBad && (st.Default == r.To || proven):
		next = bootcfg.Rollback(st, r.To)
	case !o.Force:
		return r, fmt.Errorf("rolling back to %s in slot %s (state %s): %w", r.Version, r.To, r.State, ErrSlotUnproven)
	case st.Default == r.To:
		// Only a recorded-bad default gets here; it stays GRUB's fallback
		// either way, so cancelling the booted trial is all there is to do.
		next = bootcfg.Rollback(st, r.To)
	default:
		cfg, err := LoadConfig(u.Root)
		if err != nil {
			return r, err
		}
		if next, err = bootcfg.SetNext(st, r.To, cfg.TrialTries()); err != nil {
			return r, err
		}
		r.Trial = true
	}
	if err := u.Hold(Pin{Version: r.Version, Reason: fmt.Sprintf("hostctl rollback to slot %s", r.To)}); err != nil {
		return r, err
	}
	if next == st {
		return r, nil
	}
	if err := h.WriteBootState(next, env); err != nil {
		return r, fmt.Errorf("rolling back to slot %s: %w", r.To, err)
	}
	r.Changed = true
	u.log().Info("rolled back", "slot", r.To, "version", r.Version, "trial", r.Trial)
	return r, nil
}
