package bootchain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk/bootdisktest"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

var quiet = slog.New(slog.DiscardHandler)

// The disk: a BIOS boot partition of 2048 sectors at LBA 2048 and an ESP,
// as the builder lays them out.
const (
	biosStart   = 2048
	biosSectors = 2048
	diskSize    = 8 << 20
)

var esps = map[string]string{ // chain file -> ESP path
	bootabi.ChainGrubEFI: "EFI/BOOT/grubx64.efi",
	bootabi.ChainMM:      "EFI/BOOT/mmx64.efi",
	bootabi.ChainShim:    "EFI/BOOT/BOOTX64.EFI",
	bootabi.ChainGrubCfg: "grub/grub.cfg",
}

// chainFiles is a chain's file contents, tagged.
func chainFiles(tag string, coreSectors int) map[string][]byte {
	return updatertest.BootChain(tag, coreSectors)
}

type fixture struct {
	t     *testing.T
	dir   string
	esp   string
	disk  string
	old   map[string][]byte // the builder's chain
	bootI int
}

// newFixture makes an ESP holding the builder's chain ("old") and a disk
// image whose BIOS boot code the builder wrote: core at the partition's
// start, sector 0 pointing at it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, esp: filepath.Join(dir, "efi"), disk: filepath.Join(dir, "disk.img"), old: chainFiles("old", 300)}
	for name, p := range esps {
		writeFile(t, filepath.Join(f.esp, p), f.old[name])
	}
	writeFile(t, filepath.Join(f.esp, "EFI/BOOT/grub.cfg"), []byte("stub\n"))
	// Fixed GUIDs: every fixture's disk is the same bytes.
	bootdisktest.Image(t, f.disk, diskSize, fmt.Sprintf("label: gpt\nlabel-id: 0F0F0F0F-1111-4222-8333-444444444444\n"+
		"start=%d, size=%d, type=21686148-6449-6E6F-744E-656564454649, uuid=11111111-2222-4333-8444-555555555501, name=bios\n"+
		"start=4096, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=11111111-2222-4333-8444-555555555502, name=esp\n", biosStart, biosSectors))
	d, err := os.OpenFile(f.disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mbr := make([]byte, sector)
	d.ReadAt(mbr, 0)
	s0, core, err := bootabi.PatchBootSectors(f.old[bootabi.ChainBootImg], mbr, f.old[bootabi.ChainCore], biosStart)
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt(s0, 0)
	d.WriteAt(core, biosStart*sector)
	return f
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// chain writes files as a download directory would hold them and loads
// them against a manifest made from the same files.
func (f *fixture) chain(files map[string][]byte) *Chain {
	f.t.Helper()
	dir, err := os.MkdirTemp(f.dir, "download-")
	if err != nil {
		f.t.Fatal(err)
	}
	paths, parts := map[string]string{}, map[string]payload.Part{}
	for name, b := range files {
		paths[name] = filepath.Join(dir, bootabi.ChainPart(name))
		writeFile(f.t, paths[name], b)
		sum := sha256.Sum256(b)
		parts[name] = payload.Part{File: bootabi.ChainPart(name), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
	}
	c, err := Load(paths, parts)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) installer(bootID string) Installer {
	return Installer{Target: Target{ESP: f.esp, Disk: f.disk, BIOSPart: 1, BootID: bootID}, Log: quiet}
}

func (f *fixture) read(p string) []byte {
	b, _ := os.ReadFile(filepath.Join(f.esp, p))
	return b
}

// sectors reads the disk image whole.
func (f *fixture) image() []byte {
	b, err := os.ReadFile(f.disk)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// snapshot is every ESP file's content.
func (f *fixture) snapshot() map[string]string {
	out := map[string]string{}
	filepath.Walk(f.esp, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			out[strings.TrimPrefix(p, f.esp+"/")] = string(b)
		}
		return err
	})
	return out
}

// patched is the core image of files patched for lba, as it must read on
// the disk.
func patched(t *testing.T, files map[string][]byte, lba uint64) []byte {
	t.Helper()
	mbr := make([]byte, sector)
	mbr[510], mbr[511] = 0x55, 0xaa
	_, core, err := bootabi.PatchBootSectors(files[bootabi.ChainBootImg], mbr, files[bootabi.ChainCore], lba)
	if err != nil {
		t.Fatal(err)
	}
	return core
}

// checkDisk compares the disk with before: sector 0 may change only below
// 0x1b8, and only the sectors of the new core besides it.
func checkDisk(t *testing.T, before, after []byte, coreLBA uint64, coreLen int) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("disk image size %d, was %d", len(after), len(before))
	}
	if !bytes.Equal(before[bootabi.BootPartStart:sector], after[bootabi.BootPartStart:sector]) {
		t.Error("sector 0 from 0x1b8 on (disk signature, protective MBR) changed")
	}
	lo, hi := int(coreLBA)*sector, int(coreLBA)*sector+coreLen
	for off := sector; off < len(after); off += sector {
		if off >= lo && off < hi {
			continue
		}
		if !bytes.Equal(before[off:off+sector], after[off:off+sector]) {
			t.Fatalf("sector %d changed, outside the core written at LBA %d-%d", off/sector, coreLBA, int(coreLBA)+coreLen/sector-1)
		}
	}
}

func TestInstallFreshHost(t *testing.T) {
	f := newFixture(t)
	if v, err := InstalledVersion(f.esp); err != nil || v != Unknown {
		t.Fatalf("a host built before boot chain updates reports %q, %v; want %q", v, err, Unknown)
	}
	before := f.image()
	newFiles := chainFiles("new", 400)
	c := f.chain(newFiles)
	var marks []string
	in := f.installer("boot-1")
	in.Progress = func(m string, _, _ int64) { marks = append(marks, m) }
	if err := in.Install(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(marks, Markers) {
		t.Errorf("write points %q, want %q", marks, Markers)
	}
	for name, p := range esps {
		if got := f.read(p); !bytes.Equal(got, newFiles[name]) {
			t.Errorf("%s holds %q, want the new %s", p, got, name)
		}
		if got := f.read(p + PrevSuffix); !bytes.Equal(got, f.old[name]) {
			t.Errorf("%s.prev holds %q, want the old %s", p, got, name)
		}
		if _, err := os.Stat(filepath.Join(f.esp, p+NewSuffix)); err == nil {
			t.Errorf("%s.new left behind", p)
		}
	}
	if got := f.read("EFI/BOOT/grub.cfg"); string(got) != "stub\n" {
		t.Errorf("the EFI stub configuration changed: %q", got)
	}
	after := f.image()
	// The builder's core is in the first half: the new one goes to the second.
	target := uint64(biosStart + biosSectors/2)
	if got := bootabi.CoreLBA(after); got != target {
		t.Errorf("sector 0 points at LBA %d, want %d (the second half)", got, target)
	}
	want := patched(t, newFiles, target)
	if !bytes.Equal(after[target*sector:int(target)*sector+len(want)], want) {
		t.Error("the second half does not hold the new core patched for it")
	}
	if !bytes.Equal(after[:bootabi.BootPartStart], append(bytes.Repeat([]byte{'n'}, bootabi.BootKernelSector), after[bootabi.BootKernelSector:bootabi.BootPartStart]...)) {
		t.Error("sector 0 does not start with the new boot.img's code")
	}
	checkDisk(t, before, after, target, len(want))
	if !bytes.Equal(before[biosStart*sector:(biosStart+300)*sector], after[biosStart*sector:(biosStart+300)*sector]) {
		t.Error("the old core in the first half changed")
	}
	st, err := ReadStatus(in.Target)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != c.Version || st.Previous != Unknown || !st.PreviousKept || !st.OK() || st.BIOS.Half != 2 {
		t.Errorf("status %+v (BIOS %+v), want version %s, previous unknown and kept, all sound, half 2", st, st.BIOS, c.Version)
	}
	if !strings.Contains(st.Description, "shim-signed 15.new") {
		t.Errorf("description %q names no package version", st.Description)
	}
}

// TestInstallAlternatesHalves: the first update writes half 2, the next
// half 1, and a rerun of a finished install writes nothing.
func TestInstallAlternatesHalves(t *testing.T) {
	f := newFixture(t)
	one, two := chainFiles("one", 500), chainFiles("two", 700)
	c1, c2 := f.chain(one), f.chain(two)
	if err := f.installer("boot-1").Install(context.Background(), c1); err != nil {
		t.Fatal(err)
	}
	if dropped, err := DropPrevious(f.esp, "boot-2"); err != nil || !dropped {
		t.Fatalf("dropping the .prev copies after a blessed boot: %v, %v", dropped, err)
	}
	before := f.image()
	if err := f.installer("boot-2").Install(context.Background(), c2); err != nil {
		t.Fatal(err)
	}
	after := f.image()
	if got := bootabi.CoreLBA(after); got != biosStart {
		t.Errorf("second update: sector 0 points at %d, want %d (the first half)", got, biosStart)
	}
	want := patched(t, two, biosStart)
	checkDisk(t, before, after, biosStart, len(want))
	mid := biosStart + biosSectors/2
	if w1 := patched(t, one, uint64(mid)); !bytes.Equal(after[mid*sector:mid*sector+len(w1)], w1) {
		t.Error("the first update's core in the second half changed")
	}
	rec, err := ReadRecord(f.esp)
	if err != nil || rec.Version != c2.Version || rec.Previous != c1.Version || rec.PrevCore == nil || rec.PrevCore.LBA != uint64(mid) {
		t.Fatalf("record %+v, %v; want version %s, previous %s with its core at %d", rec, err, c2.Version, c1.Version, mid)
	}
	for name, p := range esps {
		if got := f.read(p + PrevSuffix); !bytes.Equal(got, one[name]) {
			t.Errorf("%s.prev holds %q, want the first update's", p, got)
		}
	}
	// Run again: everything matches, nothing is written.
	esp := f.snapshot()
	var marks []string
	in := f.installer("boot-3")
	in.Hook = func(m string) error { marks = append(marks, m); return nil }
	if err := in.Install(context.Background(), c2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(marks, []string{MarkRecord}) {
		t.Errorf("a finished install run again passed write points %q, want only the record's check", marks)
	}
	if !bytes.Equal(f.image(), after) {
		t.Error("a finished install run again changed the disk")
	}
	if got := f.snapshot(); fmt.Sprint(got) != fmt.Sprint(esp) {
		t.Error("a finished install run again changed the ESP")
	}
}

func TestInstallRefusesCoreTooBig(t *testing.T) {
	f := newFixture(t)
	before, esp := f.image(), f.snapshot()
	c := f.chain(chainFiles("big", biosSectors/2+1))
	err := f.installer("boot-1").Install(context.Background(), c)
	if !errors.Is(err, ErrCoreTooBig) {
		t.Fatalf("got %v, want ErrCoreTooBig", err)
	}
	for _, want := range []string{"partition 1 (bios)", f.disk, "524800 bytes", "524288 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if !bytes.Equal(f.image(), before) || fmt.Sprint(f.snapshot()) != fmt.Sprint(esp) {
		t.Error("a refused core changed the disk or the ESP")
	}
}

// TestInstallRefusesSpillingCore: a core in use that runs into the second
// half (an image whose core took more than half the partition) leaves no
// half free; nothing is written.
func TestInstallRefusesSpillingCore(t *testing.T) {
	f := newFixture(t)
	d, _ := os.OpenFile(f.disk, os.O_RDWR, 0)
	mbr := make([]byte, sector)
	d.ReadAt(mbr, 0)
	s0, core, _ := bootabi.PatchBootSectors(f.old[bootabi.ChainBootImg], mbr, chainFiles("huge old", 1100)[bootabi.ChainCore], biosStart)
	d.WriteAt(s0, 0)
	d.WriteAt(core, biosStart*sector)
	d.Close()
	before, esp := f.image(), f.snapshot()
	err := f.installer("boot-1").Install(context.Background(), f.chain(chainFiles("new", 100)))
	if err == nil || !strings.Contains(err.Error(), "no half is free") {
		t.Fatalf("got %v, want a refusal naming the core in use", err)
	}
	if !bytes.Equal(f.image(), before) || fmt.Sprint(f.snapshot()) != fmt.Sprint(esp) {
		t.Error("a refused install changed the disk or the ESP")
	}
}

// TestLoadRefusesBadFile: a mirror serving a grubx64.efi other than the
// one the signed manifest names is refused before anything is written.
func TestLoadRefusesBadFile(t *testing.T) {
	f := newFixture(t)
	files := chainFiles("new", 100)
	dir := t.TempDir()
	paths, parts := map[string]string{}, map[string]payload.Part{}
	for name, b := range files {
		sum := sha256.Sum256(b)
		parts[name] = payload.Part{File: bootabi.ChainPart(name), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
		if name == bootabi.ChainGrubEFI {
			b = []byte("grub efi bad") // the same length: only the digest tells
		}
		paths[name] = filepath.Join(dir, name)
		writeFile(t, paths[name], b)
	}
	esp := f.snapshot()
	if _, err := Load(paths, parts); !errors.Is(err, ErrBadFile) || !strings.Contains(err.Error(), bootabi.ChainGrubEFI) {
		t.Fatalf("got %v, want ErrBadFile naming %s", err, bootabi.ChainGrubEFI)
	}
	writeFile(t, paths[bootabi.ChainGrubEFI], files[bootabi.ChainGrubEFI])
	delete(parts, bootabi.ChainShim)
	if _, err := Load(paths, parts); !errors.Is(err, ErrIncomplete) {
		t.Errorf("a chain without shim: got %v, want ErrIncomplete", err)
	}
	if fmt.Sprint(f.snapshot()) != fmt.Sprint(esp) {
		t.Error("the ESP changed")
	}
}

var errCut = errors.New("power cut")

// TestPowerCutAtEachWritePoint cuts the install at each write point (and
// with a stray half-written .new from an earlier cut): at each, the ESP
// holds a whole shim and GRUB, never a new shim with an old GRUB, and
// sector 0 points at a whole core; run again, the install converges on
// the state of an install never cut.
func TestPowerCutAtEachWritePoint(t *testing.T) {
	newFiles := chainFiles("new", 400)
	ref := newFixture(t)
	var points []string
	in := ref.installer("boot-1")
	in.Hook = func(p string) error { points = append(points, p); return nil }
	if err := in.Install(context.Background(), ref.chain(newFiles)); err != nil {
		t.Fatal(err)
	}
	wantESP, wantDisk := ref.snapshot(), ref.image()
	// Every write point, and the steps within them: after .new is
	// written, after .prev is kept, after the core, sector 0 and the
	// record are written.
	if len(points) != len(Markers)+2*4+3 {
		t.Errorf("hook points %q", points)
	}
	for _, cut := range points {
		t.Run(cut, func(t *testing.T) {
			f := newFixture(t)
			writeFile(t, filepath.Join(f.esp, esps[bootabi.ChainShim]+NewSuffix), []byte("half a sh"))
			c := f.chain(newFiles)
			in := f.installer("boot-1")
			in.Hook = func(m string) error {
				if m == cut {
					return errCut
				}
				return nil
			}
			if err := in.Install(context.Background(), c); !errors.Is(err, errCut) {
				t.Fatalf("got %v, want the cut", err)
			}
			f.checkBootable(t, newFiles)
			if err := f.installer("boot-1").Install(context.Background(), c); err != nil {
				t.Fatalf("rerun after the cut: %v", err)
			}
			if got := f.snapshot(); fmt.Sprint(got) != fmt.Sprint(wantESP) {
				t.Errorf("after the rerun the ESP is\n%v\nwant\n%v", got, wantESP)
			}
			if !bytes.Equal(f.image(), wantDisk) {
				t.Error("after the rerun the disk differs from an install never cut")
			}
		})
	}
}

// checkBootable: shim and GRUB whole, old or new, not a new shim over an
// old GRUB; grub.cfg whole; sector 0 pointing at a whole core.
func (f *fixture) checkBootable(t *testing.T, newFiles map[string][]byte) {
	t.Helper()
	which := map[string]string{}
	for name, p := range esps {
		got := f.read(p)
		switch {
		case bytes.Equal(got, f.old[name]):
			which[name] = "old"
		case bytes.Equal(got, newFiles[name]):
			which[name] = "new"
		default:
			t.Errorf("%s is neither the old nor the new %s: %q", p, name, got)
		}
	}
	if which[bootabi.ChainShim] == "new" && which[bootabi.ChainGrubEFI] == "old" {
		t.Error("a new shim over an old GRUB: its SBAT may revoke it")
	}
	img := f.image()
	lba := bootabi.CoreLBA(img)
	var ok bool
	for _, files := range []map[string][]byte{f.old, newFiles} {
		want := patched(t, files, lba)
		if int(lba)*sector+len(want) <= len(img) && bytes.Equal(img[int(lba)*sector:int(lba)*sector+len(want)], want) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("sector 0 points at LBA %d, where no whole core is", lba)
	}
}

func TestDropPreviousWaitsForAnotherBoot(t *testing.T) {
	f := newFixture(t)
	if err := f.installer("boot-1").Install(context.Background(), f.chain(chainFiles("new", 100))); err != nil {
		t.Fatal(err)
	}
	if dropped, err := DropPrevious(f.esp, "boot-1"); err != nil || dropped || !PreviousKept(f.esp) {
		t.Errorf("a bless in the installing boot dropped the .prev copies (%v, %v)", dropped, err)
	}
	if dropped, err := DropPrevious(f.esp, "boot-2"); err != nil || !dropped || PreviousKept(f.esp) {
		t.Errorf("a bless in a later boot kept the .prev copies (%v, %v)", dropped, err)
	}
}

// TestRestore: in the boot that installed it, the previous chain comes
// back whole (ESP files, sector 0 pointing at the old core, no record as
// on a host built before); once the new chain has booted, a restore is
// refused and changes nothing.
func TestRestore(t *testing.T) {
	f := newFixture(t)
	esp, disk := f.snapshot(), f.image()
	if err := f.installer("boot-1").Install(context.Background(), f.chain(chainFiles("new", 100))); err != nil {
		t.Fatal(err)
	}
	installedESP, installedDisk := f.snapshot(), f.image()
	if err := f.installer("boot-2").Restore(context.Background(), false); !errors.Is(err, ErrChainRan) {
		t.Fatalf("restore after the chain booted: got %v, want ErrChainRan", err)
	}
	if fmt.Sprint(f.snapshot()) != fmt.Sprint(installedESP) || !bytes.Equal(f.image(), installedDisk) {
		t.Fatal("a refused restore changed something")
	}
	if err := f.installer("boot-1").Restore(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if got := f.snapshot(); fmt.Sprint(got) != fmt.Sprint(esp) {
		t.Errorf("after the restore the ESP is\n%v\nwant\n%v", got, esp)
	}
	after := f.image()
	if !bytes.Equal(after[:sector], disk[:sector]) {
		t.Error("sector 0 is not the old one again")
	}
	if v, _ := InstalledVersion(f.esp); v != Unknown {
		t.Errorf("restored host reports chain %q, want %q", v, Unknown)
	}
}

// TestInstallOverUnblessedChain: a chain installed over one no boot has
// blessed yet (its .prev copies still kept) keeps the older, blessed
// files as .prev and names them as the previous chain.
func TestInstallOverUnblessedChain(t *testing.T) {
	f := newFixture(t)
	if err := f.installer("boot-1").Install(context.Background(), f.chain(chainFiles("one", 100))); err != nil {
		t.Fatal(err)
	}
	two := chainFiles("two", 100)
	c2 := f.chain(two)
	if err := f.installer("boot-1").Install(context.Background(), c2); err != nil {
		t.Fatal(err)
	}
	for name, p := range esps {
		if got := f.read(p); !bytes.Equal(got, two[name]) {
			t.Errorf("%s holds %q, want the second chain's", p, got)
		}
		if got := f.read(p + PrevSuffix); !bytes.Equal(got, f.old[name]) {
			t.Errorf("%s.prev holds %q, want the blessed (builder's) one", p, got)
		}
	}
	if rec, err := ReadRecord(f.esp); err != nil || rec.Version != c2.Version || rec.Previous != Unknown {
		t.Errorf("record %+v, %v: want version %s over the builder's chain", rec, err, c2.Version)
	}
}

// TestRestoreToRecordedChain: restoring over a recorded chain puts its
// files, its sector 0 and its record back, and the status checks out.
func TestRestoreToRecordedChain(t *testing.T) {
	f := newFixture(t)
	c1 := f.chain(chainFiles("one", 100))
	if err := f.installer("boot-1").Install(context.Background(), c1); err != nil {
		t.Fatal(err)
	}
	if _, err := DropPrevious(f.esp, "boot-2"); err != nil {
		t.Fatal(err)
	}
	esp, disk := f.snapshot(), f.image()
	if err := f.installer("boot-2").Install(context.Background(), f.chain(chainFiles("two", 100))); err != nil {
		t.Fatal(err)
	}
	if err := f.installer("boot-2").Restore(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.image()[:sector], disk[:sector]) {
		t.Error("sector 0 does not point at the first chain's core again")
	}
	st, err := ReadStatus(f.installer("boot-2").Target)
	if err != nil || st.Version != c1.Version || !st.OK() || st.PreviousKept || st.BIOS.Half != 2 {
		t.Errorf("status after the restore %+v (BIOS %+v), %v", st, st.BIOS, err)
	}
	got := f.snapshot()
	delete(got, RecordFile)
	delete(esp, RecordFile)
	if fmt.Sprint(got) != fmt.Sprint(esp) {
		t.Errorf("ESP after the restore\n%v\nwant\n%v", got, esp)
	}
}

// TestInstallForceRewrites: the same chain again with Force writes the
// BIOS core into the other half, points sector 0 at it and writes every
// ESP file again (hostctl bootloader update --force); without Force the
// rerun writes nothing.
func TestInstallForceRewrites(t *testing.T) {
	f := newFixture(t)
	one := chainFiles("one", 500)
	c := f.chain(one)
	if err := f.installer("boot-1").Install(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	first := bootabi.CoreLBA(f.image())
	in := f.installer("boot-2")
	in.Force = true
	var marks []string
	in.Hook = func(m string) error { marks = append(marks, m); return nil }
	before := f.image()
	if err := in.Install(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	after := f.image()
	second := bootabi.CoreLBA(after)
	if second == first {
		t.Fatalf("forced install left sector 0 at LBA %d", first)
	}
	want := patched(t, one, second)
	checkDisk(t, before, after, second, len(want))
	for _, m := range []string{MarkGrubEFI, MarkShim, MarkCore, MarkMBR, MarkGrubCfg} {
		if !slices.Contains(marks, m) {
			t.Errorf("forced install passed %q, want %s", marks, m)
		}
	}
	for name, p := range esps {
		if got := f.read(p); !bytes.Equal(got, one[name]) {
			t.Errorf("%s holds %q after the forced install", p, got)
		}
	}
	if rec, err := ReadRecord(f.esp); err != nil || rec.Core == nil || rec.Core.LBA != second {
		t.Errorf("record %+v, %v: want the core at %d", rec, err, second)
	}
}

// TestLoadDir: a chain read from a directory (the /usr copy) has the same
// version as the one its manifest parts describe.
func TestLoadDir(t *testing.T) {
	f := newFixture(t)
	files := chainFiles("one", 500)
	dir := t.TempDir()
	for name, b := range files {
		writeFile(t, filepath.Join(dir, name), b)
	}
	c, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.chain(files); c.Version != want.Version || !bytes.Equal(c.Files[bootabi.ChainCore], files[bootabi.ChainCore]) {
		t.Errorf("version %s, want %s", c.Version, want.Version)
	}
	os.Remove(filepath.Join(dir, bootabi.ChainShim))
	if _, err := LoadDir(dir); !errors.Is(err, ErrIncomplete) {
		t.Errorf("a directory without %s: got %v, want ErrIncomplete", bootabi.ChainShim, err)
	}
}
