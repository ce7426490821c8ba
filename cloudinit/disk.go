package cloudinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/growpart"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// mountSource asks findmnt for the device and filesystem type mounted at
// a mount point.
func (p *provisioner) mountSource(ctx context.Context, mnt string) (dev, fstype string, err error) {
	out, err := p.o.Runner.Run(ctx, run.Cmd{Name: "findmnt", Args: []string{"--noheadings", "--output", "SOURCE,FSTYPE", "--target", mnt}})
	if err != nil {
		return "", "", fmt.Errorf("finding the device of %s: %w", mnt, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return "", "", fmt.Errorf("finding the device of %s: findmnt said %q", mnt, strings.TrimSpace(string(out)))
	}
	return f[0], f[1], nil
}

// growpart grows the partition of each listed mount point to the end of
// its disk; runs every boot, as cloud-init's, since disks grow between boots.
// Unlike cloud-init it runs only when user-data has a growpart key: the
// image already grows its root (systemd-repart and systemd-growfs), and
// boots without it stay free of the extra commands.
func (p *provisioner) growpart(ctx context.Context) error {
	g := p.cfg.Growpart
	if g == nil || p.o.Offline {
		return errNothing
	}
	mode := "auto"
	devices := []string{"/"}
	if g.Mode != nil {
		mode = strings.ToLower(g.Mode.Value)
	}
	if len(g.Devices) > 0 {
		devices = g.Devices
	}
	switch mode {
	case "off", "false", "no":
		return errNothing
	case "auto", "growpart":
	default:
		return fmt.Errorf("growpart.mode: %q: want auto, growpart or off", mode)
	}
	if _, err := os.Stat(p.o.Root.Join("/etc/growroot-disabled")); err == nil && !g.IgnoreGrowrootDisabled {
		return errNothing
	}
	var errs []error
	for i, d := range devices {
		dev := d
		if !strings.HasPrefix(d, "/dev/") {
			var err error
			if dev, _, err = p.mountSource(ctx, d); err != nil {
				errs = append(errs, fmt.Errorf("growpart.devices[%d]: %w", i, err))
				continue
			}
		}
		disk, num, err := bootdisk.Partition(p.o.Root, dev)
		if err != nil {
			p.o.Log.Info("not growing", "device", dev, "why", err)
			continue
		}
		// A partition that already fills its disk is the normal case on
		// every boot after the first; Grow reports it as unchanged.
		changed, err := growpart.Grow(ctx, p.o.Runner, disk, strconv.Itoa(num))
		if err != nil {
			errs = append(errs, fmt.Errorf("growpart.devices[%d]: %w", i, err))
			continue
		}
		p.o.Log.Info("growpart", "device", dev, "changed", changed)
	}
	return errors.Join(errs...)
}

// resizeRootfs grows the root filesystem to its (maybe just grown)
// partition; like growpart, only when user-data asks (systemd-growfs does it
// otherwise).
func (p *provisioner) resizeRootfs(ctx context.Context) error {
	r := p.cfg.ResizeRootfs
	if r == nil || p.o.Offline {
		return errNothing
	}
	if r.Value != "noblock" {
		v, ok := r.Bool()
		if !ok {
			return fmt.Errorf("resize_rootfs: %q: want true, false or noblock", r.Value)
		}
		if !v {
			return errNothing
		}
	}
	dev, fstype, err := p.mountSource(ctx, "/")
	if err != nil {
		return fmt.Errorf("resize_rootfs: %w", err)
	}
	var cmd run.Cmd
	switch fstype {
	case "ext4", "ext3", "ext2":
		cmd = run.Cmd{Name: "resize2fs", Args: []string{dev}}
	case "xfs":
		cmd = run.Cmd{Name: "xfs_growfs", Args: []string{"/"}}
	case "btrfs":
		cmd = run.Cmd{Name: "btrfs", Args: []string{"filesystem", "resize", "max", "/"}}
	default:
		p.o.Log.Info("root filesystem type cannot be resized", "type", fstype)
		return errNothing
	}
	if _, err := p.o.Runner.Run(ctx, cmd); err != nil {
		return fmt.Errorf("resize_rootfs: %w", err)
	}
	return nil
}

// fstabMark tags the fstab lines this module owns, so a new instance
// replaces them instead of adding duplicates.
const fstabMark = "# bulkhead-provision"

// mounts adds mounts entries to /etc/fstab and mounts them.
func (p *provisioner) mounts(ctx context.Context) error {
	if len(p.cfg.Mounts) == 0 {
		return errNothing
	}
	defaults := cloudconfig.MountEntry{"", "", "auto", "defaults,nofail", "0", "2"}
	for i, v := range p.cfg.MountDefaultFields {
		if v != "" && i < len(defaults) {
			defaults[i] = v
		}
	}
	var errs []error
	var lines, points []string
	for i, m := range p.cfg.Mounts {
		key := fmt.Sprintf("mounts[%d]", i)
		e := append(cloudconfig.MountEntry{}, defaults...)
		for j, v := range m {
			if v != "" {
				e[j] = v
			}
		}
		spec, point := e[0], e[1]
		switch {
		case spec == "":
			errs = append(errs, fmt.Errorf("%s: device required", key))
			continue
		case point == "" || point == "none":
			continue // cloud-init: no mount point means "do not mount"
		case point == "swap" || e[2] == "swap":
			errs = append(errs, fmt.Errorf("%s: swap is not supported", key))
			continue
		case !filepath.IsAbs(point):
			errs = append(errs, fmt.Errorf("%s: mount point %q must be absolute", key, point))
			continue
		}
		// Short names (vdb, xvdb) mean /dev/<name>; LABEL=, UUID= and paths stay.
		if !strings.HasPrefix(spec, "/") && !strings.Contains(spec, "=") && !strings.Contains(spec, ":") {
			spec = "/dev/" + spec
		}
		lines = append(lines, strings.Join([]string{spec, point, e[2], e[3], e[4], e[5]}, "\t")+"\t"+fstabMark)
		points = append(points, point)
	}
	if len(lines) > 0 {
		if err := p.writeFstab(lines); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if p.o.Offline {
			return errors.Join(errs...) // mounted when the tree boots
		}
		if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
			errs = append(errs, fmt.Errorf("mounts: %w", err))
		}
	}
	for _, pt := range points {
		if err := os.MkdirAll(p.o.Root.Join(pt), 0o755); err != nil {
			errs = append(errs, fmt.Errorf("mounts: %w", err))
			continue
		}
		if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "mount", Args: []string{pt}}); err != nil {
			errs = append(errs, fmt.Errorf("mounts (%s): %w", pt, err))
		}
	}
	return errors.Join(errs...)
}

func (p *provisioner) writeFstab(lines []string) error {
	path := p.o.Root.Join("/etc/fstab")
	var keep []string
	for _, l := range strings.Split(readFile(path), "\n") {
		if l != "" && !strings.HasSuffix(l, fstabMark) {
			keep = append(keep, l)
		}
	}
	content := strings.Join(append(keep, lines...), "\n") + "\n"
	if err := fsroot.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("mounts: %w", err)
	}
	return nil
}
