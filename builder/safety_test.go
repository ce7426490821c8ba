package builder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/images"
)

// The builder runs as root: --out must never delete a directory that a
// build did not make, and a failed build must leave the previous one.
func TestCheckOutDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, files ...string) string {
		d := filepath.Join(base, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(d, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	for _, tc := range []struct {
		name string
		dir  string
		ok   bool
	}{
		{"missing", filepath.Join(base, "nope"), true},
		{"empty", mk("empty"), true},
		{"marked output", mk("marked", outMarker, "disk.raw"), true},
		{"output from before the marker", mk("old", "manifest.json", "disk.qcow2"), true},
		{"someone's home", mk("home", ".bashrc", "thesis.tex"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkOutDir(tc.dir)
			if tc.ok && err != nil {
				t.Errorf("got %v, want it accepted", err)
			}
			if !tc.ok && !errors.Is(err, ErrNotBuildOutput) {
				t.Errorf("got %v, want ErrNotBuildOutput", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(base, "home", "thesis.tex")); err != nil {
		t.Errorf("a refused directory lost a file: %v", err)
	}
}

func TestReplaceDir(t *testing.T) {
	base := t.TempDir()
	out, staging := filepath.Join(base, "out"), filepath.Join(base, "out.building")
	for dir, content := range map[string]string{out: "previous", staging: "new"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "disk.raw"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := replaceDir(staging, out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "disk.raw")); string(b) != "new" {
		t.Errorf("out has %q, want the new build", b)
	}
	for _, gone := range []string{staging, out + ".old"} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", gone)
		}
	}
}

// A dropPaths glob that reaches the build host through an absolute
// symlink in the tree (/var/run -> /run) removes nothing there.
func TestDropPathsStayInTree(t *testing.T) {
	tree, host := t.TempDir(), t.TempDir()
	victim := filepath.Join(host, "precious")
	if err := os.WriteFile(victim, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "var", "cache", "apt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "var", "cache", "apt", "pkgcache.bin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(tree, "var", "run")); err != nil {
		t.Fatal(err)
	}
	err := dropPaths(tree, []string{"/var/cache/apt/*", "/var/run/*"})
	if err == nil || !strings.Contains(err.Error(), "dropPaths[1]") {
		t.Errorf("got %v, want dropPaths[1] refused", err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the build host's file was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tree, "var", "cache", "apt", "pkgcache.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the glob inside the tree removed nothing")
	}
}

// Two builds share a cache one at a time; refresh drops only the
// definition's root tree.
func TestCacheLockAndRefresh(t *testing.T) {
	cache := t.TempDir()
	b := &Builder{CacheDir: cache, Epoch: DefaultEpoch}
	unlock, err := b.lockCache()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		u2, err := b.lockCache()
		if err == nil {
			u2()
		}
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a second build took the cache lock while the first held it")
	default:
	}
	unlock()
	<-done
	def, err := images.Default()
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(cache, "rootfs", newRootfsInputs(def, DefaultEpoch).key())
	other := filepath.Join(cache, "rootfs", "someotherkey")
	for _, d := range []string{tree, other, filepath.Join(cache, "debs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if had, err := b.RefreshCache(def); err != nil || !had {
		t.Fatalf("refresh: %v %v", had, err)
	}
	if _, err := os.Stat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Error("refresh kept the definition's tree")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("refresh removed another definition's tree")
	}
	if err := b.PruneCache(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 1 || entries[0].Name() != "lock" {
		t.Errorf("after prune the cache holds %v", entries)
	}
}

func TestGenerateSigningKeyNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	key, pub, err := GenerateSigningKey(dir, "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v %v, want 0600", st, err)
	}
	before, _ := os.ReadFile(pub)
	if _, _, err := GenerateSigningKey(dir, "dev", ""); err == nil {
		t.Error("a second keygen overwrote the key")
	}
	if after, _ := os.ReadFile(pub); string(after) != string(before) {
		t.Error("the public key changed")
	}
}
