package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// builder cache prune keeps the embedded default's tree by default and
// removes the rest; --all removes everything.
func TestCachePruneCmd(t *testing.T) {
	cache := t.TempDir()
	for _, d := range []string{"rootfs/0123456789abcdef/etc", "debs"} {
		if err := os.MkdirAll(filepath.Join(cache, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cache, "debs", "zstd_1.5.4_amd64.deb"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runBuilder(t, "cache", "prune", "--cache", cache)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed rootfs/0123456789abcdef\n") || !strings.Contains(out, "removed debs/zstd_1.5.4_amd64.deb\n") {
		t.Errorf("prune printed %q", out)
	}
	if out, err = runBuilder(t, "cache", "prune", "--cache", cache, "--all"); err != nil || !strings.Contains(out, "removed rootfs\n") {
		t.Errorf("prune --all: %q %v", out, err)
	}
	if _, err := runBuilder(t, "cache", "prune", "--cache", cache, filepath.Join(cache, "nosuch.yaml")); err == nil || !strings.Contains(err.Error(), "nosuch.yaml") {
		t.Errorf("a missing definition: %v, want it named", err)
	}
}

// --locked with a file that is no build manifest fails before building,
// naming the flag.
func TestBuildLockedBadLock(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(bad, []byte(`{"name":"default"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runBuilder(t, "build", "--locked", bad, "--out", filepath.Join(t.TempDir(), "out"), "--cache", t.TempDir(), "--bin", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--locked "+bad) || !strings.Contains(err.Error(), "lists no packages") {
		t.Errorf("got %v, want --locked refused for a manifest without packages", err)
	}
}
