// Package bootdisktest lays out, under a test's root, the sysfs and
// mountinfo a host shows for its disks, for tests of the packages that find
// the boot disk.
package bootdisktest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Labels are a Bulkhead disk's partitions, in order (builder.Layout).
var Labels = []string{"bios", "esp", "usr-a", "usr-a-verity", "usr-b", "usr-b-verity", "root"}

// Disk is a virtio disk to lay out: its kernel name (vda), block major and
// partition labels.
type Disk struct {
	Name   string
	Major  int
	Labels []string
}

// Layout writes /sys/class/block, /sys/dev/block and the devices' uevent
// and partition files for disks, and a /proc/self/mountinfo with the root
// mounted from partition rootPart of the first disk.
func Layout(t testing.TB, root string, rootPart int, disks ...Disk) {
	t.Helper()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, to string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(to, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	var mi strings.Builder
	mi.WriteString("1 0 0:2 / / rw - rootfs rootfs rw\n")
	for i, d := range disks {
		devdir := "devices/pci0000:00/virtio" + fmt.Sprint(i) + "/block/" + d.Name
		write("/sys/"+devdir+"/uevent", fmt.Sprintf("MAJOR=%d\nMINOR=0\nDEVNAME=%s\nDEVTYPE=disk\n", d.Major, d.Name))
		link("/sys/class/block/"+d.Name, "../../"+devdir)
		for n, l := range d.Labels {
			num := n + 1
			part := fmt.Sprintf("%s%d", d.Name, num)
			write("/sys/"+devdir+"/"+part+"/partition", fmt.Sprintf("%d\n", num))
			write("/sys/"+devdir+"/"+part+"/uevent", fmt.Sprintf("MAJOR=%d\nMINOR=%d\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=%d\nPARTNAME=%s\n", d.Major, num, part, num, l))
			link("/sys/class/block/"+part, "../../"+devdir+"/"+part)
			link(fmt.Sprintf("/sys/dev/block/%d:%d", d.Major, num), "../../"+devdir+"/"+part)
			if i == 0 && num == rootPart {
				fmt.Fprintf(&mi, "22 1 %d:%d / / rw,relatime shared:1 - ext4 /dev/%s rw\n", d.Major, num, part)
			} else if i > 0 && num == rootPart {
				// a second disk's root mounted for recovery
				fmt.Fprintf(&mi, "40 22 %d:%d / /mnt rw,relatime shared:9 - ext4 /dev/%s rw\n", d.Major, num, part)
			}
		}
	}
	write("/proc/self/mountinfo", mi.String())
}

// Image writes a sparse disk image of size bytes at p and partitions it
// with the real sfdisk from script (sfdisk's input format, e.g.
// "label: gpt\nstart=2048, size=2048, type=..., name=bios\n").
func Image(t testing.TB, p string, size int64, script string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--quiet", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v: %s", p, err, out)
	}
}
