package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/internal/bootdisk"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// udev's stable links to partitions, by GPT label and by PARTUUID.
const (
	byPartLabel = "/dev/disk/by-partlabel"
	byPartUUID  = "/dev/disk/by-partuuid"
)

// Partition labels of a slot (the builder's GPT).
func usrLabel(s bootcfg.Slot) string    { return "usr-" + string(s) }
func verityLabel(s bootcfg.Slot) string { return "usr-" + string(s) + "-verity" }

// partition is one partition as the updater sees it.
type partition struct {
	Label string
	Path  string // host path of the by-partlabel link
	Dev   string // what the link resolves to (host path)
	UUID  string // PARTUUID, lowercase
	Size  int64
	Num   int // partition number on the boot disk; 0 when not known
}

// findPartition finds a label on the boot disk (the disk holding the mounted
// root, never a second disk made from the same image that udev's
// by-partlabel link may name) and reads its size and PARTUUID. A root that
// is not a running host (no mountinfo: the tests' fake roots) has only the
// by-partlabel links. The PARTUUID comes from the by-partuuid links; blkid
// (through the runner) is the fallback when udev made none, or made it for
// another disk.
func (u *Updater) findPartition(ctx context.Context, label string) (partition, error) {
	p := partition{Label: label, Path: u.Root.Join(byPartLabel, label)}
	d, err := bootdisk.Find(u.Root)
	switch {
	case err == nil:
		bp, ok := d.Part(label)
		if !ok {
			return p, fmt.Errorf("finding partition %s: the boot disk %s has none: %w", label, d.Dev, os.ErrNotExist)
		}
		p.Path, p.Dev, p.Num = u.Root.Join(bp.Dev), u.Root.Join(bp.Dev), bp.Num
	case errors.Is(err, bootdisk.ErrNoMountinfo):
		dev, err := filepath.EvalSymlinks(p.Path)
		if err != nil {
			return p, fmt.Errorf("finding partition %s: %w", label, err)
		}
		p.Dev = dev
	default:
		return p, fmt.Errorf("finding partition %s: %w", label, err)
	}
	dev := p.Dev
	f, err := os.Open(dev)
	if err != nil {
		return p, fmt.Errorf("opening partition %s: %w", label, err)
	}
	p.Size, err = f.Seek(0, io.SeekEnd)
	f.Close()
	if err != nil {
		return p, fmt.Errorf("sizing partition %s: %w", label, err)
	}
	if ents, err := os.ReadDir(u.Root.Join(byPartUUID)); err == nil {
		for _, e := range ents {
			if d, err := filepath.EvalSymlinks(u.Root.Join(byPartUUID, e.Name())); err == nil && d == dev {
				p.UUID = strings.ToLower(e.Name())
				return p, nil
			}
		}
	}
	out, err := u.runner().Run(ctx, run.Cmd{Name: "blkid", Args: []string{"-s", "PARTUUID", "-o", "value", u.Root.Rel(dev)}})
	if err != nil {
		return p, fmt.Errorf("reading PARTUUID of %s: %w", label, err)
	}
	if p.UUID = strings.ToLower(strings.TrimSpace(string(out))); p.UUID == "" {
		return p, fmt.Errorf("reading PARTUUID of %s: blkid printed nothing", label)
	}
	return p, nil
}

func (u *Updater) runner() run.Runner {
	if u.Runner == nil {
		return run.Exec{Log: u.log()}
	}
	return u.Runner
}

// rootPartUUID is the root partition's PARTUUID: the booted command line's
// root=PARTUUID= (what actually booted), else the "root" label.
func (u *Updater) rootPartUUID(ctx context.Context, cmdline string) (string, error) {
	if v, ok := slots.CmdlineArg(cmdline, "root"); ok && strings.HasPrefix(v, "PARTUUID=") {
		return strings.ToLower(strings.TrimPrefix(v, "PARTUUID=")), nil
	}
	p, err := u.findPartition(ctx, "root")
	if err != nil {
		return "", err
	}
	return p.UUID, nil
}

// freeBytes is the space available to an unprivileged writer in the
// filesystem holding path (or its nearest existing parent).
func freeBytes(path string) (int64, error) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		if !os.IsNotExist(err) || path == filepath.Dir(path) {
			return 0, fmt.Errorf("reading free space of %s: %w", path, err)
		}
		path = filepath.Dir(path)
	}
}
