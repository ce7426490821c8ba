package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// mountScratch mounts a filesystem of the given type ("tmpfs" or "ext4",
// the latter on a loop-mounted image file) in a temporary directory and
// unmounts it when the test ends.
func mountScratch(t *testing.T, fstype string) string {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch fstype {
	case "tmpfs":
		cmd = exec.Command("mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", dir)
	case "ext4":
		img := filepath.Join(base, "ext4.img")
		if out, err := exec.Command("truncate", "-s", "3G", img).CombinedOutput(); err != nil {
			t.Fatalf("truncate: %v: %s", err, out)
		}
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v: %s", err, out)
		}
		cmd = exec.Command("mount", "-o", "loop", img, dir)
	default:
		t.Fatalf("no scratch filesystem %s", fstype)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mounting %s on %s: %v: %s", fstype, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// synthTree writes a small root tree the assembly stages can run on: a
// /usr with the EFI binaries the ESP takes and a directory of many files
// (large enough for ext4 to list it in hash order), /etc, /var. With
// reverse, every directory's entries are created in the opposite order,
// which is what another filesystem's readdir looks like.
func synthTree(t *testing.T, tree string, reverse bool) {
	t.Helper()
	files := map[string]string{
		"usr/lib/shim/shimx64.efi.signed":                   "shim",
		"usr/lib/shim/mmx64.efi.signed":                     "mok manager",
		"usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": "grub",
		"usr/lib/grub/i386-pc/boot.img":                     "boot",
		"usr/lib/os-release":                                "ID=bulkhead\n",
		"etc/hostname":                                      "localhost\n",
		"etc/fstab":                                         "# none\n",
		"var/lib/dpkg/status":                               "",
	}
	for i := range 300 {
		files[fmt.Sprintf("usr/share/many/file-%03d", i)] = fmt.Sprintf("content %d\n", i)
		files[fmt.Sprintf("etc/many.d/conf-%03d", i)] = fmt.Sprintf("conf %d\n", i)
	}
	names := slices.Sorted(maps.Keys(files))
	if reverse {
		slices.Reverse(names)
	}
	for _, n := range names {
		p := filepath.Join(tree, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The inputs' modes are the tree's, whatever the umask they were made under.
	err := filepath.Walk(tree, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// assemble runs the assembly stages of a build (factory /etc, the /usr
// erofs and its verity tree, the root ext4, the ESP) on a synthetic tree
// made in dir, and returns each output's sha256.
func assemble(t *testing.T, dir string, reverse bool) map[string]string {
	t.Helper()
	b := &Builder{Runner: run.Exec{}, Epoch: DefaultEpoch}
	s, err := b.newState(defaultDef(t), filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	synthTree(t, s.tree, reverse)
	s.kver = "6.1.0-test"
	s.coreImg = []byte("core image")
	for _, n := range bootabi.ChainPackageNames {
		s.packages = append(s.packages, manifest.Package{Name: n, Version: "1.0-" + n})
	}
	for _, f := range []string{manifest.KernelImage, manifest.InitrdImage} {
		if err := os.WriteFile(s.path(f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = s.run(context.Background(), []phase{{"factory /etc", s.factoryEtc}, {"boot chain", s.bootChain}, {"usr", s.usrImage}, {"root", s.rootImage}, {"esp", s.esp}})
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{"root hash": s.rootHash}
	for _, f := range []string{s.path(manifest.UsrImage), s.path(manifest.UsrVerity), filepath.Join(s.work, "root.img"), filepath.Join(s.work, "esp.img")} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sums[filepath.Base(f)] = fmt.Sprintf("%x", sha256.Sum256(data))
	}
	for _, f := range bootabi.ChainFiles {
		data, err := os.ReadFile(s.path(manifest.BootChainFile(f.Name)))
		if err != nil {
			t.Fatalf("boot chain file %s: %v", f.Name, err)
		}
		sums[f.Name] = fmt.Sprintf("%x", sha256.Sum256(data))
		// The /usr image carries the same chain, for the version to
		// install once booted.
		inUsr, err := os.ReadFile(filepath.Join(s.work, bootabi.UsrChainDir, f.Name))
		if err != nil || !bytes.Equal(inUsr, data) {
			t.Errorf("%s in the /usr image: %v, %d bytes, want the payload's %d", f.Name, err, len(inUsr), len(data))
		}
	}
	return sums
}

// TestAssemblyIndependentOfHost is the fast stand-in for
// TestReproducibleBuild: the same tree, assembled once on tmpfs under a
// umask of 022 and once on ext4 under 077 with its entries created in the
// opposite order, another time zone and locale, gives the same /usr image,
// verity tree, root image and ESP byte for byte. The ESP used to follow
// readdir order (mcopy -s), the /usr mount point the umask.
func TestAssemblyIndependentOfHost(t *testing.T) {
	first := assemble(t, mountScratch(t, "tmpfs"), false)

	old := unix.Umask(0o077)
	defer unix.Umask(old)
	t.Setenv("TZ", "Pacific/Chatham")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	second := assemble(t, mountScratch(t, "ext4"), true)

	for _, k := range slices.Sorted(maps.Keys(first)) {
		if first[k] != second[k] {
			t.Errorf("%s differs between tmpfs/umask 022 and ext4/umask 077/reverse order: %s vs %s", k, first[k], second[k])
		}
	}
	if len(first) != 5+len(bootabi.ChainFiles) || first["root hash"] == "" {
		t.Errorf("compared %v, want the root hash, four images and the boot chain", first)
	}
}

// TestReproducibleBuild (long tier: make test-long) builds the default
// definition twice with the real binaries (BULKHEAD_BIN, make bin's
// out/bin): once into tmpfs, then into ext4 from a cold root tree (a new
// cache, mmdebstrap run again; only the .deb files are shared, and the
// build is --locked to the first one's manifest, so a mirror that changed
// in between fails with the packages named), under another umask, time
// zone and locale. Every output file is compared byte for byte.
func TestReproducibleBuild(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: mmdebstrap, chroot, file ownership and mounts")
	}
	for _, tool := range []string{"mmdebstrap", "mkfs.erofs", "veritysetup", "mkfs.fat", "mmd", "mcopy", "qemu-img", "sgdisk", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing (make deps installs it)", tool)
		}
	}
	bin := os.Getenv("BULKHEAD_BIN")
	if bin == "" {
		t.Fatal("BULKHEAD_BIN must name the directory with the real hostd and hostd-shim (make test-long sets out/bin)")
	}
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("the real %s: %v (make bin)", b, err)
		}
	}
	// The first build may use a warm cache (BULKHEAD_CACHE); the second
	// makes its root tree again.
	warm := os.Getenv("BULKHEAD_CACHE")
	if warm == "" {
		warm = t.TempDir()
	}
	cold := t.TempDir()
	_, pub, err := GenerateSigningKey(t.TempDir(), "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	build := func(cache, outDir string, lock []manifest.Package) *manifest.Build {
		t.Helper()
		def := defaultDef(t)
		def.Keys = []string{pub}
		b := &Builder{Runner: run.Exec{}, CacheDir: cache, BinDir: bin, Epoch: DefaultEpoch, Progress: testWriter{t}, Lock: lock}
		m, err := b.Build(context.Background(), def, outDir)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	outA := filepath.Join(mountScratch(t, "tmpfs"), "out")
	first := build(warm, outA, nil)

	if err := os.MkdirAll(filepath.Join(cold, "debs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(warm, "debs", "."), filepath.Join(cold, "debs")).CombinedOutput(); err != nil {
		t.Fatalf("sharing the .deb files: %v: %s", err, out)
	}
	old := unix.Umask(0o077)
	t.Setenv("TZ", "Pacific/Chatham")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	outB := filepath.Join(mountScratch(t, "ext4"), "out")
	second := build(cold, outB, first.Packages)
	unix.Umask(old)

	if len(first.Packages) < 100 || first.Builder.GoVersion == "" || len(first.Binaries) != len(Binaries) || first.Binaries[0].GoVersion == "" {
		t.Errorf("the manifest lacks the package lock or the versions: %d packages, builder %+v, binaries %+v", len(first.Packages), first.Builder, first.Binaries)
	}
	a, b := outputSums(t, outA), outputSums(t, outB)
	if len(a) < 8 {
		t.Errorf("the first build's outputs: %v", a)
	}
	for _, name := range slices.Sorted(maps.Keys(a)) {
		if a[name] != b[name] {
			t.Errorf("%s: tmpfs build %s, ext4 cold build %s", name, a[name], b[name])
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			t.Errorf("%s: only in the second build", name)
		}
	}
	if second.RootHash != first.RootHash {
		t.Errorf("root hash %s vs %s", first.RootHash, second.RootHash)
	}
	if out, err := exec.Command("sgdisk", "-v", filepath.Join(outA, manifest.DiskRaw)).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v: %s", err, out)
	}
}

// outputSums hashes every file of a build output, by relative path.
func outputSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		_, sum, err := manifest.HashFile(p)
		sums[rel] = sum
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
