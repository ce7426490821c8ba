package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk/bootdisktest"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// diskRunner runs the real sfdisk on image files standing in for the disks
// (/dev/vda is root/dev/vda) and records every other command.
type diskRunner struct {
	root  string
	calls []string
}

func (r *diskRunner) Run(ctx context.Context, c run.Cmd) ([]byte, error) {
	args := slices.Clone(c.Args)
	for i, a := range args {
		if strings.HasPrefix(a, "/dev/") {
			args[i] = r.root + a
		}
	}
	r.calls = append(r.calls, c.Name+" "+strings.Join(c.Args, " "))
	if c.Name != "sfdisk" {
		return nil, nil
	}
	out, err := run.Exec{}.Run(ctx, run.Cmd{Name: c.Name, Args: args, Stdin: c.Stdin})
	return bytes.ReplaceAll(out, []byte(r.root), nil), err
}

// image writes a GPT disk image with Bulkhead's partitions at root/dev/name.
func image(t *testing.T, root, name, guid string) {
	t.Helper()
	p := filepath.Join(root, "dev", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 16<<20); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	fmt.Fprintf(&script, "label: gpt\nlabel-id: %s\n", guid)
	for i, l := range bootdisktest.Labels {
		// The build's UUIDs: the same on every disk made from the image.
		fmt.Fprintf(&script, "size=1MiB, name=%s, uuid=1111111%d-2222-4333-8444-555555555555\n", l, i)
	}
	cmd := exec.Command("sfdisk", "--quiet", p)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
}

func readTableOf(t *testing.T, root, name string) fullTable {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", filepath.Join(root, "dev", name)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var tb fullTable
	if err := json.Unmarshal(out, &tb); err != nil {
		t.Fatal(err)
	}
	return tb
}

// fullTable is sfdisk --json with the fields a new identity must keep.
type fullTable struct {
	PartitionTable struct {
		ID         string `json:"id"`
		Partitions []struct {
			Node, UUID, Name, Type, Attrs string
			Start, Size                   int64
		} `json:"partitions"`
	} `json:"partitiontable"`
}

const fstab = "# Bulkhead: / and /usr are mounted by the initrd from the kernel command line.\n" +
	"PARTUUID=11111116-2222-4333-8444-555555555555 / ext4 rw,x-systemd.growfs 0 1\n" +
	"PARTUUID=11111111-2222-4333-8444-555555555555 /efi vfat umask=0077 0 2\n" +
	"LABEL=data /data ext4 defaults 0 2\n"

func setup(t *testing.T, disks ...string) (fsroot.Root, *diskRunner) {
	t.Helper()
	dir := t.TempDir()
	var ds []bootdisktest.Disk
	for i, d := range disks {
		ds = append(ds, bootdisktest.Disk{Name: d, Major: 253 - i, Labels: bootdisktest.Labels})
	}
	bootdisktest.Layout(t, dir, 7, ds...)
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/fstab"), []byte(fstab), 0o644); err != nil {
		t.Fatal(err)
	}
	return fsroot.Root(dir), &diskRunner{root: dir}
}

func TestFirstBootGivesTheDiskItsIdentity(t *testing.T) {
	root, r := setup(t, "vda")
	image(t, string(root), "vda", bootabi.PristineDiskGUID)
	before := readTableOf(t, string(root), "vda")
	res, err := Ensure(context.Background(), Options{Root: root, Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	after := readTableOf(t, string(root), "vda")
	if g, err := bootdisk.GUID(root.Join("/dev/vda")); err != nil || g != strings.ToLower(after.PartitionTable.ID) {
		t.Errorf("bootdisk.GUID read %q, %v; sfdisk says %s", g, err, after.PartitionTable.ID)
	}
	if !res.Randomized || res.Skipped != "" || strings.EqualFold(after.PartitionTable.ID, bootabi.PristineDiskGUID) || res.GUID != strings.ToLower(after.PartitionTable.ID) {
		t.Fatalf("got %+v, disk GUID now %s: want a new disk GUID", res, after.PartitionTable.ID)
	}
	rule, err := os.ReadFile(root.Join(UdevRule))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, p := range after.PartitionTable.Partitions {
		old, now := strings.ToLower(before.PartitionTable.Partitions[i].UUID), strings.ToLower(p.UUID)
		if now == old || seen[now] {
			t.Errorf("partition %s: UUID %s, was %s: want a new one of its own", p.Node, now, old)
		}
		seen[now] = true
		// This boot's names stay on this disk's partitions.
		if want := fmt.Sprintf(`ENV{ID_PART_ENTRY_UUID}=="%s", SYMLINK+="disk/by-partuuid/%s"`, now, old); !strings.Contains(string(rule), want) {
			t.Errorf("udev rule lacks %s:\n%s", want, rule)
		}
		if p.Name != bootdisktest.Labels[i] {
			t.Errorf("partition %d label %q, want %q kept", i+1, p.Name, bootdisktest.Labels[i])
		}
	}
	// One write of the table, after fstab names the planned UUIDs; the
	// root filesystem after it.
	var writes []string
	for _, c := range r.calls {
		if strings.HasPrefix(c, "sfdisk --quiet --no-reread --no-tell-kernel") || strings.HasPrefix(c, "tune2fs") {
			writes = append(writes, c)
		}
	}
	if len(writes) != 2 || !strings.HasPrefix(writes[1], "tune2fs") {
		t.Errorf("writes %q, want the table once, then the root filesystem", writes)
	}
	if _, err := os.Stat(root.Join(DoneFile)); err != nil {
		t.Errorf("no done mark: %v", err)
	}
	if _, err := os.Stat(root.Join(PlanFile)); err == nil {
		t.Error("the plan was left behind")
	}
	for i, p := range after.PartitionTable.Partitions {
		b := before.PartitionTable.Partitions[i]
		if p.Start != b.Start || p.Size != b.Size || p.Type != b.Type || p.Attrs != b.Attrs {
			t.Errorf("partition %d changed beyond its UUID: %+v, was %+v", i+1, p, b)
		}
	}
	if !slices.ContainsFunc(r.calls, func(c string) bool { return strings.HasPrefix(c, "tune2fs -U ") && strings.HasSuffix(c, " /dev/vda7") }) {
		t.Errorf("the root filesystem's UUID was not changed: %q", r.calls)
	}
	b, _ := os.ReadFile(root.Join(Fstab))
	want := strings.NewReplacer(
		"PARTUUID=11111116-2222-4333-8444-555555555555", "PARTUUID="+strings.ToLower(after.PartitionTable.Partitions[6].UUID),
		"PARTUUID=11111111-2222-4333-8444-555555555555", "PARTUUID="+strings.ToLower(after.PartitionTable.Partitions[1].UUID)).Replace(fstab)
	if !res.FstabChanged || string(b) != want {
		t.Errorf("fstab:\n%s\nwant\n%s", b, want)
	}

	// The next boot changes nothing.
	r.calls = nil
	res, err = Ensure(context.Background(), Options{Root: root, Runner: r})
	if err != nil || res.Randomized || res.FstabChanged {
		t.Errorf("second boot: %+v, %v; want nothing done", res, err)
	}
	if again := readTableOf(t, string(root), "vda"); again.PartitionTable.ID != after.PartitionTable.ID {
		t.Error("the second boot changed the disk GUID")
	}
}

// TestTwoPristineDisks: with another never-booted copy attached the initrd
// may have mounted either; neither disk nor fstab is touched.
func TestTwoPristineDisks(t *testing.T) {
	root, r := setup(t, "vda", "vdb")
	image(t, string(root), "vda", bootabi.PristineDiskGUID)
	image(t, string(root), "vdb", bootabi.PristineDiskGUID)
	a, _ := os.ReadFile(root.Join("/dev/vda"))
	b, _ := os.ReadFile(root.Join("/dev/vdb"))
	res, err := Ensure(context.Background(), Options{Root: root, Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	if res.Randomized || !strings.Contains(res.Skipped, "/dev/vdb") {
		t.Errorf("got %+v, want skipped naming /dev/vdb", res)
	}
	a2, _ := os.ReadFile(root.Join("/dev/vda"))
	b2, _ := os.ReadFile(root.Join("/dev/vdb"))
	f, _ := os.ReadFile(root.Join(Fstab))
	if !bytes.Equal(a, a2) || !bytes.Equal(b, b2) || string(f) != fstab {
		t.Error("a disk or fstab changed")
	}
}

// TestSecondDiskNeverTouched: a host that already has its identity, with a
// pristine copy attached for recovery, changes neither.
func TestSecondDiskNeverTouched(t *testing.T) {
	root, r := setup(t, "vda", "vdb")
	image(t, string(root), "vda", "8a3f2c5e-7b1d-4e6f-9a0b-c1d2e3f40516")
	image(t, string(root), "vdb", bootabi.PristineDiskGUID)
	b, _ := os.ReadFile(root.Join("/dev/vdb"))
	res, err := Ensure(context.Background(), Options{Root: root, Runner: r})
	if err != nil || res.Randomized || res.Disk != "/dev/vda" {
		t.Fatalf("got %+v, %v", res, err)
	}
	if b2, _ := os.ReadFile(root.Join("/dev/vdb")); !bytes.Equal(b, b2) {
		t.Error("the second disk changed")
	}
	for _, c := range r.calls {
		if strings.Contains(c, "vdb") && !strings.HasPrefix(c, "sfdisk --disk-id") {
			t.Errorf("ran %q on the second disk", c)
		}
	}
}

// TestFstabFollowsTheBootDisk: a power cut after the disk's new identity
// and before fstab's: the next boot makes fstab name the disk's partitions.
func TestFstabFollowsTheBootDisk(t *testing.T) {
	root, r := setup(t, "vda")
	image(t, string(root), "vda", "8a3f2c5e-7b1d-4e6f-9a0b-c1d2e3f40516")
	cmd := exec.Command("sfdisk", "--quiet", "--part-uuid", root.Join("/dev/vda"), "7", "0f0f0f0f-1111-4222-8333-444444444444")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	res, err := Ensure(context.Background(), Options{Root: root, Runner: r})
	if err != nil || !res.FstabChanged || res.Randomized {
		t.Fatalf("got %+v, %v", res, err)
	}
	f, _ := os.ReadFile(root.Join(Fstab))
	if !strings.Contains(string(f), "PARTUUID=0f0f0f0f-1111-4222-8333-444444444444 / ext4") ||
		!strings.Contains(string(f), "PARTUUID=11111111-2222-4333-8444-555555555555 /efi") || !strings.Contains(string(f), "LABEL=data /data") {
		t.Errorf("fstab:\n%s", f)
	}
}

// TestCutShortBootResumesPlan: a boot cut after fstab named the planned
// UUIDs and before the table was written: the next boot writes the same
// UUIDs, so fstab and the disk agree.
func TestCutShortBootResumesPlan(t *testing.T) {
	root, r := setup(t, "vda")
	image(t, string(root), "vda", bootabi.PristineDiskGUID)
	n := 0
	cut := fmt.Errorf("power cut")
	var planned fullTable
	// First boot: the table write never happens.
	failing := &cutRunner{diskRunner: r, cutAt: "sfdisk --quiet --no-reread --no-tell-kernel", err: cut}
	if _, err := Ensure(context.Background(), Options{Root: root, Runner: failing, NewUUID: func() string { n++; return fmt.Sprintf("%08x-aaaa-4bbb-8ccc-dddddddddddd", n) }}); err == nil {
		t.Fatal("the cut boot succeeded")
	}
	fstabCut, _ := os.ReadFile(root.Join(Fstab))
	if strings.Contains(string(fstabCut), "11111116-2222") {
		t.Fatalf("fstab still names the image's root after the cut boot:\n%s", fstabCut)
	}
	if _, err := os.Stat(root.Join(PlanFile)); err != nil {
		t.Fatalf("no plan left: %v", err)
	}
	// Next boot: other random UUIDs on offer, the plan's are used.
	if _, err := Ensure(context.Background(), Options{Root: root, Runner: r, NewUUID: randomUUID}); err != nil {
		t.Fatal(err)
	}
	planned = readTableOf(t, string(root), "vda")
	f, _ := os.ReadFile(root.Join(Fstab))
	if string(f) != string(fstabCut) || !strings.Contains(string(f), "PARTUUID="+strings.ToLower(planned.PartitionTable.Partitions[6].UUID)+" / ") {
		t.Errorf("fstab after the second boot:\n%s\nafter the cut one:\n%s\nroot is now %s", f, fstabCut, planned.PartitionTable.Partitions[6].UUID)
	}
	if !strings.HasPrefix(strings.ToLower(planned.PartitionTable.ID), "0000000") {
		t.Errorf("disk GUID %s is not the planned one", planned.PartitionTable.ID)
	}
}

// cutRunner fails the first command starting with cutAt, as a power cut
// there would leave things.
type cutRunner struct {
	*diskRunner
	cutAt string
	err   error
}

func (c *cutRunner) Run(ctx context.Context, cmd run.Cmd) ([]byte, error) {
	if strings.HasPrefix(cmd.Name+" "+strings.Join(cmd.Args, " "), c.cutAt) {
		return nil, c.err
	}
	return c.diskRunner.Run(ctx, cmd)
}
