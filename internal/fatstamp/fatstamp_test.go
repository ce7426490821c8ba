package fatstamp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// makeFAT builds an image with mkfs.fat and mtools: a nested tree copied in.
func makeFAT(t *testing.T, fatBits, sizeKiB string) string {
	t.Helper()
	for _, tool := range []string{"mkfs.fat", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: apt-get install dosfstools mtools", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, p := range []string{"EFI/BOOT/x.efi", "a/b/c/deep.txt", "top.cfg"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "fat.img")
	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", name, err, out)
		}
	}
	run("mkfs.fat", "-F", fatBits, "-n", "TEST", "-i", "12345678", "-C", img, sizeKiB)
	run("mcopy", "-i", img, "-s", filepath.Join(src, "EFI"), filepath.Join(src, "a"), filepath.Join(src, "top.cfg"), "::/")
	return img
}

// TestStampMakesImagesIdentical builds the same tree twice, seconds apart,
// and checks that stamping makes the images byte-identical.
func TestStampMakesImagesIdentical(t *testing.T) {
	for _, c := range []struct{ bits, size string }{{"12", "1024"}, {"16", "32768"}, {"32", "65536"}} {
		t.Run("FAT"+c.bits, func(t *testing.T) {
			one := makeFAT(t, c.bits, c.size)
			time.Sleep(2100 * time.Millisecond) // FAT times have 2 s resolution
			two := makeFAT(t, c.bits, c.size)
			a, _ := os.ReadFile(one)
			b, _ := os.ReadFile(two)
			if bytes.Equal(a, b) {
				t.Fatal("the unstamped images are already equal: the test proves nothing")
			}
			when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, img := range []string{one, two} {
				if err := Stamp(img, when); err != nil {
					t.Fatal(err)
				}
			}
			a, _ = os.ReadFile(one)
			b, _ = os.ReadFile(two)
			if !bytes.Equal(a, b) {
				t.Error("stamped images differ")
			}
			if out, err := exec.Command("fsck.fat", "-n", one).CombinedOutput(); err != nil {
				t.Errorf("fsck.fat after stamping: %v: %s", err, out)
			}
		})
	}
}

func TestStampRefusesNonFAT(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zero")
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Stamp(p, time.Now()); err == nil {
		t.Error("got nil error for an image of zeros")
	}
}
