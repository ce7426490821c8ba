package updater

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk/bootdisktest"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/bootchain"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// publishChain publishes version with a boot chain.
func (e *env) publishChain(version string, chain map[string][]byte) updatertest.Build {
	e.t.Helper()
	b := updatertest.MakeBuild(e.t, e.t.TempDir(), version, 60)
	updatertest.AddBootChain(e.t, b, chain)
	if _, err := repo.Publish(context.Background(), repo.PublishOptions{Repo: e.repoDir, Channel: "stable", OutDir: b.Dir, Key: e.key.Private, Chunker: e.chunker(), Log: quiet}); err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) espFile(p string) []byte {
	b, _ := os.ReadFile(e.host.Root.Join("/efi", p))
	return b
}

// TestUpgradeInstallsBootChain: a host built before boot chain updates
// (no record) takes the version's chain with the update, before the trial
// is set; the dry run says so; the next version with the same chain
// leaves it alone.
func TestUpgradeInstallsBootChain(t *testing.T) {
	e := newEnv(t)
	old, chain := updatertest.BootChain("old", 50), updatertest.BootChain("new", 60)
	e.host.InstallESPChain(t, old)
	v2 := e.publishChain("1.1.0", chain)
	p := e.dryRun()
	var out bytes.Buffer
	p.Describe(&out)
	want := "Boot chain: " + bootchain.Unknown + "\n        -> " + p.Manifest.BootChainVersion() + " (shim-signed 15.new, grub-efi-amd64-signed 2.06.new, grub-pc-bin 2.06.new)"
	if !strings.Contains(out.String(), want) {
		t.Errorf("dry run output lacks %q:\n%s", want, out.String())
	}
	var progress []string
	e.u.Progress = func(what string, done, total int64) {
		if !slices.Contains(progress, what) {
			progress = append(progress, what)
		}
	}
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	for _, f := range bootabi.ChainFiles {
		if f.ESP == "" {
			continue
		}
		if got := e.espFile(f.ESP); !bytes.Equal(got, chain[f.Name]) {
			t.Errorf("%s holds %q, want the new %s", f.ESP, got, f.Name)
		}
		if got := e.espFile(f.ESP + bootchain.PrevSuffix); !bytes.Equal(got, old[f.Name]) {
			t.Errorf("%s.prev holds %q, want the old %s", f.ESP, got, f.Name)
		}
	}
	if v, err := bootchain.InstalledVersion(e.host.Root.Join("/efi")); err != nil || v != p.Manifest.BootChainVersion() {
		t.Errorf("installed chain %q, %v; want %s", v, err, p.Manifest.BootChainVersion())
	}
	// The chain goes in after the slot's boot files and before the trial.
	i, j, k := slices.Index(progress, "install boot files"), slices.Index(progress, bootchain.MarkGrubEFI), slices.Index(progress, "set trial")
	if i < 0 || j < i || k < j {
		t.Errorf("progress %q: want the boot files, then the chain, then the trial", progress)
	}
	if got := e.bootState(); got.Try != "b" {
		t.Errorf("boot state %+v: slot b not on trial", got)
	}

	// 1.2.0 with the same chain: nothing to install.
	e.boot(bootcfg.SlotB, v2)
	if _, err := (slots.Host{Root: e.host.Root}).Bless(); err != nil {
		t.Fatal(err)
	}
	e.publishChain("1.2.0", chain)
	e.u.Progress = nil
	p2 := e.dryRun()
	if p2.BootChain == nil || p2.BootChain.Install || p2.BootChain.From != p.Manifest.BootChainVersion() {
		t.Errorf("same chain planned as %+v, want unchanged", p2.BootChain)
	}
}

// TestUpgradeRefusesTamperedBootChain: a mirror serving a grubx64.efi that
// is not the signed one stops the update before anything is written.
func TestUpgradeRefusesTamperedBootChain(t *testing.T) {
	e := newEnv(t)
	e.host.InstallESPChain(t, updatertest.BootChain("old", 50))
	e.publishChain("1.1.0", updatertest.BootChain("new", 60))
	p := filepath.Join(e.repoDir, "versions/1.1.0", bootabi.ChainPart(bootabi.ChainGrubEFI))
	if err := os.WriteFile(p, []byte("grub efi bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.host.Snapshot(t)
	_, err := e.u.Upgrade(context.Background(), e.opts())
	if !errors.Is(err, repo.ErrDigestMismatch) {
		t.Fatalf("got %v, want a digest mismatch", err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
}

// TestUpgradeWithoutBootChain: a version published before boot chain
// updates (no chain parts) updates as before and leaves the chain alone.
func TestUpgradeWithoutBootChain(t *testing.T) {
	e := newEnv(t)
	old := updatertest.BootChain("old", 50)
	e.host.InstallESPChain(t, old)
	e.publish("1.1.0", "")
	p, err := e.u.Upgrade(context.Background(), e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if p.BootChain == nil || p.BootChain.Install || p.BootChain.To != "" {
		t.Errorf("got boot chain plan %+v, want none", p.BootChain)
	}
	if got := e.espFile("EFI/BOOT/BOOTX64.EFI"); !bytes.Equal(got, old[bootabi.ChainShim]) || bootchain.PreviousKept(e.host.Root.Join("/efi")) {
		t.Error("an update without a chain changed the boot chain")
	}
}

// TestDeltaUpgradeFetchesBootChainWhole: on the delta path the chain's
// files are fetched whole with the other parts.
func TestDeltaUpgradeFetchesBootChainWhole(t *testing.T) {
	e := newDeltaEnv(t)
	chain := updatertest.BootChain("new", 60)
	e.host.InstallESPChain(t, updatertest.BootChain("old", 50))
	b := updatertest.MakeBuildFrom(t, t.TempDir(), "1.1.0", e.v1.Usr)
	updatertest.AddBootChain(t, b, chain)
	if _, err := repo.Publish(context.Background(), repo.PublishOptions{Repo: e.repoDir, Channel: "stable", OutDir: b.Dir, Key: e.key.Private, Chunker: testChunks, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	// The dry run counts the chain's files, fetched whole, with the
	// indexes and the chunks the booted slot lacks.
	dry := e.dryRun()
	want := int64(0)
	for _, data := range chain {
		want += int64(len(data))
	}
	for name, dp := range dry.deltas {
		want += int64(len(dry.indexes[name])) + dp.Stats.MissingBytes
	}
	if !dry.Delta || dry.DownloadBytes != want {
		t.Errorf("dry run: delta %v, %d bytes to download, want %d (the chain's files included)", dry.Delta, dry.DownloadBytes, want)
	}
	p := e.upgradeDelta(b)
	for _, f := range bootabi.ChainFiles {
		if n, reqs := e.srv.ServedExactly("/versions/1.1.0/" + bootabi.ChainPart(f.Name)); reqs == 0 || n == 0 {
			t.Errorf("%s was not fetched whole", f.Name)
		}
	}
	if got := e.espFile("EFI/BOOT/grubx64.efi"); !bytes.Equal(got, chain[bootabi.ChainGrubEFI]) {
		t.Errorf("grubx64.efi holds %q after a delta update", got)
	}
	if v, _ := bootchain.InstalledVersion(e.host.Root.Join("/efi")); v != p.Manifest.BootChainVersion() {
		t.Errorf("installed chain %q, want %s", v, p.Manifest.BootChainVersion())
	}
}

// TestBootChainTarget finds the BIOS boot partition on the boot disk.
func TestBootChainTarget(t *testing.T) {
	root := t.TempDir()
	bootdisktest.Layout(t, root, 7, bootdisktest.Disk{Name: "vda", Major: 253, Labels: bootdisktest.Labels})
	updatertest.WriteFile(t, filepath.Join(root, BootIDFile), []byte("boot-1\n"))
	tg, err := BootChainTarget(fsroot.Root(root), "/esp")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Disk != filepath.Join(root, "dev/vda") || tg.BIOSPart != 1 || tg.BootID != "boot-1" || tg.ESP != "/esp" {
		t.Errorf("got %+v, want the BIOS boot partition 1 of %s/dev/vda in boot boot-1", tg, root)
	}
	root2 := t.TempDir()
	bootdisktest.Layout(t, root2, 6, bootdisktest.Disk{Name: "vda", Major: 253, Labels: bootdisktest.Labels[1:]})
	if tg, err := BootChainTarget(fsroot.Root(root2), "/esp"); err != nil || tg.Disk != "" {
		t.Errorf("a disk without a BIOS boot partition: got %+v, %v, want no disk", tg, err)
	}
}

// TestBlessInstallsBootedChain: a version that boots on a chain its
// updater did not install (a host built before boot chain updates) installs
// the copy its /usr carries at its bless, recording its version; a chain
// recorded for a newer version (after a rollback) or the same chain is left
// alone, as is everything on a /usr without a copy.
func TestBlessInstallsBootedChain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	esp := e.host.Root.Join("/efi")
	old, chain := updatertest.BootChain("old", 50), updatertest.BootChain("new", 60)
	e.host.InstallESPChain(t, old)
	if r, err := e.u.BlessBootChain(ctx); err != nil || r != nil {
		t.Fatalf("a /usr without a chain: got %+v, %v; want nothing done", r, err)
	}
	for name, b := range chain {
		updatertest.WriteFile(t, e.host.Root.Join(bootabi.UsrChainDir, name), b)
	}
	r, err := e.u.BlessBootChain(ctx)
	if err != nil || r == nil || r.From != bootchain.Unknown || !r.Changed {
		t.Fatalf("got %+v, %v; want the chain installed over the unrecorded one", r, err)
	}
	if got := e.espFile("EFI/BOOT/BOOTX64.EFI"); !bytes.Equal(got, chain[bootabi.ChainShim]) {
		t.Errorf("shim holds %q, want the /usr copy's", got)
	}
	rec, err := bootchain.ReadRecord(esp)
	if err != nil || rec == nil || rec.OSVersion != "1.0.0" || rec.Version != r.To {
		t.Fatalf("record %+v, %v; want %s for 1.0.0", rec, err, r.To)
	}
	if r, err := e.u.BlessBootChain(ctx); err != nil || r != nil {
		t.Errorf("the same chain again: got %+v, %v; want nothing done", r, err)
	}
	// A newer version's chain (the host rolled back to 1.0.0 since): kept.
	rec.OSVersion, rec.Version = "2.0.0", "0123456789abcdef"
	b, _ := json.Marshal(rec)
	updatertest.WriteFile(t, filepath.Join(esp, bootchain.RecordFile), b)
	before := e.host.Snapshot(t)
	if r, err := e.u.BlessBootChain(ctx); err != nil || r != nil {
		t.Errorf("under a newer version's chain: got %+v, %v; want nothing done", r, err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
}
