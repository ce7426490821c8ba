package bootdisk

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// ErrNoMountinfo means the root has no /proc/self/mountinfo: not a running
// host (a test's fake root), so there is no boot disk to find.
var ErrNoMountinfo = errors.New("no /proc/self/mountinfo under the root")

// Part is one partition of a disk.
type Part struct {
	Num   int    // GPT partition number
	Name  string // kernel name (vda7)
	Label string // GPT partition name (PARTNAME)
	Dev   string // device node, relative to the root (/dev/vda7)
}

// Disk is a whole disk and its partitions, by number.
type Disk struct {
	Name  string // kernel name (vda)
	Dev   string // device node, relative to the root (/dev/vda)
	Parts []Part
}

// Part returns the partition with a GPT label.
func (d Disk) Part(label string) (Part, bool) {
	for _, p := range d.Parts {
		if p.Label == label {
			return p, true
		}
	}
	return Part{}, false
}

// PartNum returns the partition with a number.
func (d Disk) PartNum(num int) (Part, bool) {
	for _, p := range d.Parts {
		if p.Num == num {
			return p, true
		}
	}
	return Part{}, false
}

// Find returns the disk holding the mounted root filesystem, read from
// mountinfo's device number and sysfs.
func Find(root fsroot.Root) (Disk, error) {
	mi := root.Join("/proc/self/mountinfo")
	f, err := os.Open(mi)
	if errors.Is(err, os.ErrNotExist) {
		return Disk{}, ErrNoMountinfo
	}
	if err != nil {
		return Disk{}, fmt.Errorf("finding the boot disk: %w", err)
	}
	defer f.Close()
	devno := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 22 1 253:7 / / rw,relatime shared:1 - ext4 /dev/vda7 rw
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && fields[4] == "/" {
			devno = fields[2] // the last mount on / wins
		}
	}
	if err := sc.Err(); err != nil {
		return Disk{}, fmt.Errorf("finding the boot disk: reading %s: %w", mi, err)
	}
	if devno == "" {
		return Disk{}, fmt.Errorf("finding the boot disk: %s has no mount on /", mi)
	}
	link, err := os.Readlink(root.Join("/sys/dev/block", devno))
	if err != nil {
		return Disk{}, fmt.Errorf("finding the boot disk: the root filesystem's device %s: %w", devno, err)
	}
	name := filepath.Base(link)
	if _, err := os.Stat(root.Join("/sys/class/block", name, "partition")); err != nil {
		return Disk{}, fmt.Errorf("finding the boot disk: the root filesystem is on %s, not on a partition", name)
	}
	return Read(root, filepath.Base(filepath.Dir(link)))
}

// Read reads a disk's partitions from sysfs.
func Read(root fsroot.Root, name string) (Disk, error) {
	d := Disk{Name: name, Dev: "/dev/" + name}
	dir := root.Join("/sys/class/block", name)
	ents, err := os.ReadDir(dir + "/")
	if err != nil {
		return d, fmt.Errorf("reading the partitions of %s: %w", d.Dev, err)
	}
	for _, e := range ents {
		num, err := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(dir, e.Name(), "partition"))))
		if err != nil {
			continue // not a partition (queue, holders, ...)
		}
		p := Part{Num: num, Name: e.Name(), Dev: "/dev/" + e.Name()}
		for _, line := range strings.Split(readFile(filepath.Join(dir, e.Name(), "uevent")), "\n") {
			switch k, v, _ := strings.Cut(line, "="); k {
			case "PARTNAME":
				p.Label = v
			case "DEVNAME":
				p.Dev = "/dev/" + v
			}
		}
		d.Parts = append(d.Parts, p)
	}
	sort.Slice(d.Parts, func(i, j int) bool { return d.Parts[i].Num < d.Parts[j].Num })
	return d, nil
}

// Partition finds the disk and partition number of a partition device
// through sysfs: /sys/class/block/vda9/partition holds 9, and the link
// /sys/class/block/vda9 points into .../vda/vda9.
func Partition(root fsroot.Root, dev string) (disk string, num int, err error) {
	name := filepath.Base(dev)
	num, err = strconv.Atoi(strings.TrimSpace(readFile(root.Join("/sys/class/block", name, "partition"))))
	if err != nil {
		return "", 0, fmt.Errorf("%s is not a partition", dev)
	}
	link, err := os.Readlink(root.Join("/sys/class/block", name))
	if err != nil {
		return "", 0, fmt.Errorf("finding the disk of %s: %w", dev, err)
	}
	return "/dev/" + filepath.Base(filepath.Dir(link)), num, nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// GUID reads the GPT disk GUID from a disk's primary header (at LBA 1, for
// 512-byte or 4096-byte sectors), as the disk has it now: after a first
// boot's change the kernel's view may still be the old one.
func GUID(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", fmt.Errorf("reading the disk GUID of %s: %w", dev, err)
	}
	defer f.Close()
	for _, lba := range []int64{512, 4096} {
		var h [72]byte
		if _, err := f.ReadAt(h[:], lba); err != nil {
			return "", fmt.Errorf("reading the disk GUID of %s: %w", dev, err)
		}
		if string(h[:8]) != "EFI PART" {
			continue
		}
		g := h[56:72]
		// The first three fields are little-endian.
		return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]), nil
	}
	return "", fmt.Errorf("reading the disk GUID of %s: no GPT header", dev)
}
