package bootchain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
)

// DropPrevious removes the .prev copies once a boot through the installed
// chain was blessed. A bless in the boot that installed the chain (the
// record's boot ID is bootID) proves nothing about it: the copies stay,
// and dropped is false.
func DropPrevious(esp, bootID string) (dropped bool, err error) {
	rec, err := ReadRecord(esp)
	if err != nil {
		return false, err
	}
	if rec != nil && rec.BootID != "" && rec.BootID == bootID {
		return false, nil
	}
	for _, f := range bootabi.ChainFiles {
		if f.ESP == "" {
			continue
		}
		p := filepath.Join(esp, filepath.FromSlash(f.ESP)) + PrevSuffix
		if err := os.Remove(p); err == nil {
			dropped = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return dropped, fmt.Errorf("dropping the previous boot chain: %w", err)
		}
	}
	if !dropped {
		return false, nil
	}
	return true, slotwriter.SyncFS(esp)
}

// Restore puts the previous chain back: each ESP file from its .prev copy
// (in the reverse of the install order, so shim goes back before GRUB),
// sector 0 pointing at the previous BIOS core when that is still whole,
// and the record naming the previous version.
//
// It refuses (ErrChainRan) once the installed chain has booted the host
// (the record's boot ID is not this boot's), unless force: a new shim may
// have applied an SBAT revocation of the old GRUB in the firmware's
// variables when it ran, and the old chain would then not boot under
// Secure Boot. Until then, the old chain is the one that booted the host.
func (in Installer) Restore(ctx context.Context, force bool) error {
	rec, err := ReadRecord(in.ESP)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("restoring the previous boot chain: %s has no %s: nothing was installed", in.ESP, RecordFile)
	}
	if !force && rec.BootID != "" && rec.BootID != in.BootID {
		return fmt.Errorf("restoring boot chain %s over %s: %w (its shim may have revoked the old GRUB)", rec.Previous, rec.Version, ErrChainRan)
	}
	files := map[string]string{}
	for _, f := range slices.Backward(bootabi.ChainFiles) {
		if f.ESP == "" {
			continue
		}
		dst := filepath.Join(in.ESP, filepath.FromSlash(f.ESP))
		prev := dst + PrevSuffix
		if _, err := os.Stat(prev); errors.Is(err, os.ErrNotExist) {
			continue
		}
		_, sum, err := slotwriter.InstallFile(ctx, prev, dst, 0o644)
		if err != nil {
			return fmt.Errorf("restoring the previous %s: %w", dst, err)
		}
		files[f.Name] = sum
		if err := slotwriter.SyncFS(in.ESP); err != nil {
			return err
		}
		if err := os.Remove(prev); err != nil {
			return fmt.Errorf("restoring the previous %s: %w", dst, err)
		}
	}
	core := rec.Core // where sector 0 points once the restore is done
	if in.Disk != "" && rec.PrevCore != nil && len(rec.PrevSector0) == bootabi.BootPartStart {
		restored, err := in.restoreBIOS(rec)
		if err != nil {
			return err
		}
		if restored {
			core = rec.PrevCore
		}
	}
	if rec.Previous == Unknown || rec.Previous == "" {
		// The builder's chain: no record, as before the first install.
		if err := os.Remove(filepath.Join(in.ESP, RecordFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restoring the previous boot chain: %w", err)
		}
		return slotwriter.SyncFS(in.ESP)
	}
	back := &Record{Version: rec.Previous, Files: files, Core: core, BootID: in.BootID}
	return writeRecord(ctx, in.ESP, back)
}

// restoreBIOS points sector 0 back at the previous core when its bytes are
// still the recorded ones (a later install may have overwritten its half),
// and tells whether it did.
func (in Installer) restoreBIOS(rec *Record) (bool, error) {
	disk, err := os.OpenFile(in.Disk, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("opening boot disk %s: %w", in.Disk, err)
	}
	defer disk.Close()
	core := make([]byte, rec.PrevCore.Sectors*sector)
	if _, err := disk.ReadAt(core, int64(rec.PrevCore.LBA)*sector); err != nil {
		return false, fmt.Errorf("reading the previous BIOS core at LBA %d of %s: %w", rec.PrevCore.LBA, in.Disk, err)
	}
	if sum := sha256.Sum256(core); hex.EncodeToString(sum[:]) != rec.PrevCore.SHA256 {
		in.log().Warn("previous BIOS core overwritten since: the BIOS boot code stays the installed one", "device", in.Disk, "lba", rec.PrevCore.LBA)
		return false, nil
	}
	s0 := make([]byte, sector)
	if _, err := disk.ReadAt(s0, 0); err != nil {
		return false, fmt.Errorf("reading sector 0 of %s: %w", in.Disk, err)
	}
	next := append(slices.Clone(rec.PrevSector0), s0[bootabi.BootPartStart:]...)
	if bytes.Equal(next, s0) {
		return true, nil
	}
	return true, writeSectors(disk, 0, next, "the previous boot sector")
}
