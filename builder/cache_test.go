package builder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// signalWriter reports on a channel each time a line containing want is
// written.
type signalWriter struct {
	want string
	ch   chan struct{}
}

func (w signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.ch <- struct{}{}
	}
	return len(p), nil
}

// A second build on a cache waits, saying so, until the first releases
// it, and only then goes on.
func TestCacheLockWaits(t *testing.T) {
	cache := t.TempDir()
	first := &Builder{CacheDir: cache}
	unlock, err := first.lockCache()
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{}, 1)
	second := &Builder{CacheDir: cache, Progress: signalWriter{"waiting for another build", waiting}}
	acquired := make(chan error, 1)
	go func() {
		u, err := second.lockCache()
		if err == nil {
			u()
		}
		acquired <- err
	}()
	select {
	case <-waiting:
	case err := <-acquired:
		unlock()
		t.Fatalf("the second build took the cache while the first held it (err %v)", err)
	}
	select {
	case err := <-acquired:
		t.Fatalf("the second build went on while the first held the cache (err %v)", err)
	default:
	}
	unlock()
	if err := <-acquired; err != nil {
		t.Fatalf("the second build, once the cache was free: %v", err)
	}
}

// fakeDebootstrap stands in for mmdebstrap: it makes the target tree with
// a dpkg status listing the packages in versions, and their .debs in the
// .deb cache named by the sync-out hook. With fail set it fails.
type fakeDebootstrap struct {
	mu       sync.Mutex
	versions map[string]string
	fail     bool
	runs     int
}

func (f *fakeDebootstrap) Run(_ context.Context, c run.Cmd) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Name != "mmdebstrap" {
		return nil, fmt.Errorf("unexpected command %s", c.Name)
	}
	f.runs++
	if f.fail {
		return nil, errors.New("mmdebstrap: the mirror is unreachable")
	}
	target := c.Args[len(c.Args)-2]
	var debs string
	for _, a := range c.Args {
		if rest, ok := strings.CutPrefix(a, "--customize-hook=sync-out /var/cache/apt/archives "); ok {
			debs = rest
		}
	}
	var status strings.Builder
	for _, name := range slices.Sorted(maps.Keys(f.versions)) {
		p := manifest.Package{Name: name, Version: f.versions[name], Architecture: "amd64"}
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\nDescription: x\n multi-line\n\n", p.Name, p.Version)
		if err := os.WriteFile(filepath.Join(debs, debFileName(p)), []byte(name+p.Version), 0o644); err != nil {
			return nil, err
		}
	}
	for p, data := range map[string]string{"etc/os-release": "ID=debian\n", "var/lib/dpkg/status": status.String()} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(target, p)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(target, p), []byte(data), 0o644); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// refresh makes the tree again and lists the package changes; a failed
// refresh leaves the cached tree as it was.
func TestRefreshCache(t *testing.T) {
	fake := &fakeDebootstrap{versions: map[string]string{"openssl": "3.0.11-1~deb12u1", "bsdutils": "1:2.38.1-5"}}
	b := &Builder{Runner: fake, CacheDir: t.TempDir(), Epoch: DefaultEpoch}
	def := defaultDef(t)
	r, err := b.RefreshCache(context.Background(), def)
	if err != nil {
		t.Fatal(err)
	}
	if r.Had || len(r.Changes) != 0 {
		t.Errorf("first refresh: %+v, want a new tree", r)
	}
	fake.versions["openssl"] = "3.0.15-1~deb12u1" // a security update in the archive
	if r, err = b.RefreshCache(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	want := []string{"openssl:amd64: was 3.0.11-1~deb12u1, now 3.0.15-1~deb12u1"}
	if !r.Had || !slices.Equal(r.Changes, want) {
		t.Errorf("refresh reported %+v, want %q", r, want)
	}
	pkgs, err := loadLock(lockPath(r.Tree))
	if err != nil || len(pkgs) != 2 || pkgs[1].Version != "3.0.15-1~deb12u1" {
		t.Errorf("the refreshed tree's lock is %v (%v)", pkgs, err)
	}
	fake.fail = true
	if _, err := b.RefreshCache(context.Background(), def); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("a failed refresh returned %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Tree, "etc", "os-release")); err != nil {
		t.Errorf("a failed refresh lost the cached tree: %v", err)
	}
	if got, err := loadLock(lockPath(r.Tree)); err != nil || !slices.Equal(got, pkgs) {
		t.Errorf("a failed refresh changed the lock to %v (%v)", got, err)
	}
	// A build without --refresh takes the cached tree as it is.
	fake.fail = false
	runs := fake.runs
	if _, got, err := b.rootfs(context.Background(), newRootfsInputs(def, b.Epoch)); err != nil || !slices.Equal(got, pkgs) || fake.runs != runs {
		t.Errorf("the cached tree: %v %v, mmdebstrap ran %d times more", got, err, fake.runs-runs)
	}
}

// prune keeps the trees of the given definitions and the .debs they were
// made from, and removes the rest; --older-than and --all go further.
func TestPruneCache(t *testing.T) {
	fake := &fakeDebootstrap{versions: map[string]string{"zstd": "1.5.4+dfsg2-5"}}
	cache := t.TempDir()
	b := &Builder{Runner: fake, CacheDir: cache, Epoch: DefaultEpoch}
	def := defaultDef(t)
	if _, err := b.RefreshCache(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(cache, "rootfs", newRootfsInputs(def, b.Epoch).key())
	for _, d := range []string{"rootfs/0123456789abcdef/etc", "rootfs/fedcba9876543210.tmp/etc"} {
		if err := os.MkdirAll(filepath.Join(cache, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"debs/openssl_3.0.11-1_amd64.deb", "rootfs/dead.packages.json"} {
		if err := os.WriteFile(filepath.Join(cache, f), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := b.PruneCache(PruneOptions{Keep: []*images.Definition{def}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"debs/openssl_3.0.11-1_amd64.deb", "rootfs/0123456789abcdef", "rootfs/dead.packages.json", "rootfs/fedcba9876543210.tmp"}
	if slices.Sort(removed); !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	for _, p := range []string{kept, lockPath(kept), filepath.Join(cache, "debs", "zstd_1.5.4+dfsg2-5_amd64.deb")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("prune removed what the kept tree needs: %v", err)
		}
	}
	if removed, err = b.PruneCache(PruneOptions{Keep: []*images.Definition{def}, OlderThan: time.Hour, Now: time.Now().Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kept); !errors.Is(err, os.ErrNotExist) || len(removed) != 2 {
		t.Errorf("--older-than kept a tree older than it (removed %q)", removed)
	}
	if removed, err = b.PruneCache(PruneOptions{All: true}); err != nil || !slices.Equal(removed, []string{"rootfs", "debs"}) {
		t.Errorf("--all removed %q (%v)", removed, err)
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 1 || ents[0].Name() != "lock" {
		t.Errorf("after --all the cache holds %v", ents)
	}
}

// --locked: a root tree whose packages differ from the lock fails the
// build, naming them, and the previous output stays as it was.
func TestLockedBuildRefusedKeepsPreviousOutput(t *testing.T) {
	fake := &fakeDebootstrap{versions: map[string]string{"openssl": "3.0.15-1~deb12u1", "zstd": "1.5.4+dfsg2-5"}}
	bin := t.TempDir()
	for _, name := range Binaries {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := &Builder{Runner: fake, CacheDir: t.TempDir(), BinDir: bin, Epoch: DefaultEpoch,
		Lock: []manifest.Package{
			{Name: "openssl", Version: "3.0.11-1~deb12u1", Architecture: "amd64"},
			{Name: "zstd", Version: "1.5.4+dfsg2-5", Architecture: "amd64", SHA256: sha256Hex([]byte("zstd1.5.4+dfsg2-5"))},
			{Name: "sudo", Version: "1.9.13p3-1+deb12u1", Architecture: "amd64"},
		}}
	out := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{outMarker: "default 1.0.0\n", manifest.DiskRaw: "previous"} {
		if err := os.WriteFile(filepath.Join(out, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.Build(context.Background(), defaultDef(t), out)
	if !errors.Is(err, ErrLockMismatch) {
		t.Fatalf("got %v, want ErrLockMismatch", err)
	}
	for _, want := range []string{"openssl:amd64: lock 3.0.11-1~deb12u1, tree 3.0.15-1~deb12u1", "sudo:amd64 1.9.13p3-1+deb12u1: in the lock, not in the tree"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "zstd") {
		t.Errorf("the error names a package that matches: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, manifest.DiskRaw)); string(got) != "previous" {
		t.Errorf("the failed build left %q as the output, want the previous build", got)
	}
}
