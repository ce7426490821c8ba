package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

func TestMountOptions(t *testing.T) {
	got := MountOptions([]string{"/l/bottom", "/l/top"}, "/s/upper", "/s/work")
	want := "lowerdir=/l/top:/l/bottom,upperdir=/s/upper,workdir=/s/work,index=off,redirect_dir=off,metacopy=off"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOverlaySnapshot(t *testing.T) {
	testimg.RequireHost(t)
	base := t.TempDir()
	lower1, lower2 := filepath.Join(base, "l1"), filepath.Join(base, "l2")
	os.MkdirAll(lower1, 0o755)
	os.MkdirAll(lower2, 0o755)
	os.WriteFile(filepath.Join(lower1, "a"), []byte("bottom"), 0o644)
	os.WriteFile(filepath.Join(lower2, "a"), []byte("top"), 0o644)
	o := Overlay{Root: filepath.Join(base, "snap")}
	t.Cleanup(func() { o.Remove("c1") })
	rootfs, err := o.Mount("c1", []string{lower1, lower2})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "a")); string(b) != "top" {
		t.Errorf("got %q, want the top layer's %q", b, "top")
	}
	if err := os.WriteFile(filepath.Join(rootfs, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(lower2, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a write reached a lower layer")
	}
	if _, err := o.Mount("c1", []string{lower1, lower2}); err != nil {
		t.Errorf("second mount: %v", err)
	}
	if err := o.Unmount("c1"); err != nil {
		t.Fatal(err)
	}
	if o.Mounted("c1") {
		t.Errorf("still mounted after Unmount")
	}
	if _, err := os.Stat(filepath.Join(o.Upper("c1"), "new")); err != nil {
		t.Errorf("upper lost the change: %v", err)
	}
	if err := o.Remove("c1"); err != nil {
		t.Fatal(err)
	}
}
