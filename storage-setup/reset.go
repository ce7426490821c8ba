package storagesetup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
)

// Reset undoes Run the way `container-storage-setup --reset` did
// (reset_storage_compat): the container root volume and its mount unit, the
// thin pool and the output file go; the VG and its PVs stay. The pool is
// found from the options and, failing that, from dm.thinpooldev= in the
// output file, so a reset after a driver change still removes it (the
// original's test 018-test-thinpool-reset-after-driver-change-to-overlay2).
func (s Setup) Reset(ctx context.Context) error {
	c := s.Config
	h, err := s.inspect(ctx)
	if err != nil {
		return err
	}
	current, err := s.readCurrentOptions()
	if err != nil {
		return err
	}
	was, _ := existingDriver(current)
	c.VG = h.vg
	pool := c.ContainerThinPool
	if tpool := configuredThinPool(current); tpool != "" {
		if vg, lvName, ok := splitDMName(strings.TrimPrefix(tpool, "/dev/mapper/")); ok {
			if c.VG == "" {
				c.VG = vg
			}
			if c.VG == vg {
				pool = lvName
			}
		}
	}
	if c.VG != "" && h.vgs == nil {
		// The VG came from the output file: inspect had none to list.
		if h.vgs, err = listVGs(ctx, s.Runner); err != nil {
			return err
		}
	}
	if c.VG != "" {
		if _, ok := h.vgs[c.VG]; !ok {
			s.log().Info("volume group " + c.VG + " does not exist: nothing to remove in it")
			c.VG = ""
		}
	}
	if c.VG != "" {
		lvs, err := listLVs(ctx, s.Runner, c.VG)
		if err != nil {
			return err
		}
		if c.rootLVWanted() {
			if err := s.resetRootLV(ctx, c, lvs); err != nil {
				return err
			}
		}
		if p, ok := lvs[pool]; ok && p.isThinPool() && (c.wantsPool() || was == "devicemapper") {
			target := c.VG + "/" + pool
			if _, err := s.run(ctx, "lvchange", "-an", target); err != nil {
				return fmt.Errorf("deactivating thin pool %s: %w", target, err)
			}
			if _, err := s.run(ctx, "lvremove", "-y", target); err != nil {
				return fmt.Errorf("removing thin pool %s: %w", target, err)
			}
			prof := path.Join(ProfileDir, profileName(c.VG, pool)+".profile")
			if err := os.Remove(s.Root.Join(prof)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", prof, err)
			}
		}
	}
	if err := os.Remove(s.Root.Join(OutputFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", OutputFile, err)
	}
	return nil
}

// resetRootLV is reset_extra_volume_compat plus remove_systemd_mount_target:
// stop (unmount) the mount unit, deactivate and remove the LV, then drop the
// unit.
func (s Setup) resetRootLV(ctx context.Context, c Config, lvs map[string]lv) error {
	mp := c.ContainerRootLVMountPath
	unit := unitName(mp)
	unitFile := path.Join(UnitDir, unit)
	_, statErr := os.Stat(s.Root.Join(unitFile))
	haveUnit := statErr == nil
	if _, ok := lvs[c.ContainerRootLVName]; ok {
		target := c.VG + "/" + c.ContainerRootLVName
		if haveUnit {
			if _, err := s.run(ctx, "systemctl", "stop", unit); err != nil {
				return fmt.Errorf("Failed to unmount %s: %w", mp, err)
			}
		} else if s.isMounted(mp) {
			if _, err := s.run(ctx, "umount", mp); err != nil {
				return fmt.Errorf("Failed to unmount %s: %w", mp, err)
			}
		}
		if _, err := s.run(ctx, "lvchange", "-an", target); err != nil {
			return fmt.Errorf("deactivating %s: %w", target, err)
		}
		if _, err := s.run(ctx, "lvremove", "-y", target); err != nil {
			return fmt.Errorf("removing %s: %w", target, err)
		}
	}
	if haveUnit {
		if _, err := s.run(ctx, "systemctl", "disable", unit); err != nil {
			return fmt.Errorf("disabling %s: %w", unit, err)
		}
		if err := os.Remove(s.Root.Join(unitFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", unitFile, err)
		}
		if _, err := s.run(ctx, "systemctl", "daemon-reload"); err != nil {
			return fmt.Errorf("reloading systemd after removing %s: %w", unit, err)
		}
	}
	return nil
}
