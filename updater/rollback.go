package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
)

// RollbackResult says what Rollback did.
type RollbackResult struct {
	From, To bootcfg.Slot
	Version  string // the version in To
	Changed  bool   // false when To already was the default with no trial
}

// Rollback makes the other slot the default and cancels any trial, if that
// slot holds a complete version that is not recorded bad. It writes only the
// GRUB environment block (in place), under the update lock.
func (u *Updater) Rollback(ctx context.Context) (RollbackResult, error) {
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
	bad, err := h.BadVersions()
	if err != nil {
		return r, err
	}
	if slices.Contains(bad, r.Version) {
		return r, fmt.Errorf("rolling back to %s in slot %s: %w", r.Version, r.To, ErrVersionBad)
	}
	for _, f := range []string{bootcfg.KernelFile, bootcfg.InitrdFile, bootcfg.EntryFile} {
		if _, err := os.Stat(h.ESP(bootcfg.SlotDir(r.To), f)); errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("rolling back to slot %s: no %s: %w", r.To, f, ErrSlotIncomplete)
		}
	}
	st, env, err := h.BootState()
	if err != nil {
		return r, err
	}
	next := bootcfg.Rollback(st, r.To)
	if next == st {
		return r, nil
	}
	if err := h.WriteBootState(next, env); err != nil {
		return r, fmt.Errorf("rolling back to slot %s: %w", r.To, err)
	}
	r.Changed = true
	u.log().Info("rolled back", "slot", r.To, "version", r.Version)
	return r, nil
}
