package updater

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootdisk/bootdisktest"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// TestFindPartitionOnBootDisk: a second disk made from the same image has
// the same labels, and udev's by-partlabel link may name it; the updater
// writes only the disk holding the mounted root.
func TestFindPartitionOnBootDisk(t *testing.T) {
	dir := t.TempDir()
	root := fsroot.Root(dir)
	bootdisktest.Layout(t, dir, 7,
		bootdisktest.Disk{Name: "vda", Major: 253, Labels: bootdisktest.Labels},
		bootdisktest.Disk{Name: "vdb", Major: 252, Labels: bootdisktest.Labels})
	mk := func(p string, size int64) {
		if err := os.MkdirAll(filepath.Dir(root.Join(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.Join(p), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, to string) {
		if err := os.MkdirAll(filepath.Dir(root.Join(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(root.Join(to), root.Join(p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("/dev/vda5", 4096)
	mk("/dev/vdb5", 8192)
	// udev saw vdb last: both by-partlabel and by-partuuid name it.
	link("/dev/disk/by-partlabel/usr-b", "/dev/vdb5")
	link("/dev/disk/by-partuuid/55555555-5555-4555-8555-555555555555", "/dev/vdb5")
	u := &Updater{Root: root, Runner: fakeBlkid{"/dev/vda5": "0a0a0a0a-5555-4555-8555-555555555555"}}
	p, err := u.findPartition(context.Background(), "usr-b")
	if err != nil {
		t.Fatal(err)
	}
	if p.Dev != root.Join("/dev/vda5") || p.Size != 4096 || p.Num != 5 || p.UUID != "0a0a0a0a-5555-4555-8555-555555555555" {
		t.Errorf("got %+v, want the boot disk's /dev/vda5 (4096 bytes, number 5, its own PARTUUID)", p)
	}
	if _, err := u.findPartition(context.Background(), "usr-c"); err == nil {
		t.Error("found a label the boot disk lacks")
	}
}

// fakeBlkid answers `blkid -s PARTUUID -o value DEV` from a map.
type fakeBlkid map[string]string

func (f fakeBlkid) Run(_ context.Context, c run.Cmd) ([]byte, error) {
	if c.Name != "blkid" || len(c.Args) == 0 {
		return nil, fmt.Errorf("unexpected command %s %v", c.Name, c.Args)
	}
	v, ok := f[c.Args[len(c.Args)-1]]
	if !ok {
		return nil, fmt.Errorf("blkid: %s: no such device", c.Args[len(c.Args)-1])
	}
	return []byte(v + "\n"), nil
}
