package bootdisk

import (
	"errors"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootdisk/bootdisktest"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// fakeSysfs lays out two disks as the kernel shows them: vda (booted, root
// on vda7) and vdb, a copy of the same image with the same labels, whose
// root is mounted on /mnt.
func fakeSysfs(t *testing.T) fsroot.Root {
	dir := t.TempDir()
	bootdisktest.Layout(t, dir, 7,
		bootdisktest.Disk{Name: "vda", Major: 253, Labels: bootdisktest.Labels},
		bootdisktest.Disk{Name: "vdb", Major: 252, Labels: bootdisktest.Labels})
	return fsroot.Root(dir)
}

func TestFindBootDisk(t *testing.T) {
	root := fakeSysfs(t)
	d, err := Find(root)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "vda" || d.Dev != "/dev/vda" || len(d.Parts) != 7 {
		t.Fatalf("got %+v, want vda with 7 partitions", d)
	}
	p, ok := d.Part("usr-b")
	if !ok || p.Num != 5 || p.Dev != "/dev/vda5" {
		t.Errorf("usr-b on the boot disk: got %+v %v, want /dev/vda5, number 5", p, ok)
	}
	if p, ok := d.PartNum(7); !ok || p.Label != "root" {
		t.Errorf("partition 7: got %+v %v", p, ok)
	}
	if _, ok := d.Part("nope"); ok {
		t.Error("found a label the disk does not have")
	}
	disk, num, err := Partition(root, "/dev/vdb2")
	if err != nil || disk != "/dev/vdb" || num != 2 {
		t.Errorf("Partition(/dev/vdb2) = %s, %d, %v", disk, num, err)
	}
	if _, _, err := Partition(root, "/dev/vdb"); err == nil {
		t.Error("a whole disk passed as a partition")
	}
}

func TestFindWithoutMountinfo(t *testing.T) {
	if _, err := Find(fsroot.Root(t.TempDir())); !errors.Is(err, ErrNoMountinfo) {
		t.Errorf("got %v, want ErrNoMountinfo", err)
	}
}
