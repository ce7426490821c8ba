package datasource

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// TestCloudLocaldsSeed builds the same seed with cloud-localds and with
// seed.Write, attaches each as the only block device, and checks the
// NoCloud datasource reads both the same.
func TestCloudLocaldsSeed(t *testing.T) {
	if _, err := exec.LookPath("cloud-localds"); err != nil {
		t.Fatal("cloud-localds not installed (apt package cloud-image-utils)")
	}
	for _, tc := range []struct {
		format seed.Format
		needs  string
		pkg    string
	}{
		{seed.FormatISO, "genisoimage", "genisoimage"},
		{seed.FormatVFAT, "mcopy", "mtools"},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			if _, err := exec.LookPath(tc.needs); err != nil {
				t.Fatalf("%s not installed (apt package %s)", tc.needs, tc.pkg)
			}
			dir := t.TempDir()
			ud, md, nc := filepath.Join(dir, "ud"), filepath.Join(dir, "md"), filepath.Join(dir, "nc")
			writeFile(t, ud, string(seedFiles.UserData))
			writeFile(t, md, string(seedFiles.MetaData))
			writeFile(t, nc, string(seedFiles.NetworkConfig))
			read := func(build func(dev string)) string {
				root := fsroot.Root(t.TempDir())
				if err := os.MkdirAll(root.Join("/sys/class/block/sr0"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(root.Join("/dev"), 0o755); err != nil {
					t.Fatal(err)
				}
				build(root.Join("/dev/sr0"))
				d, err := NoCloud(context.Background(), Options{Root: root})
				if err != nil {
					t.Fatal(err)
				}
				return summary(d)
			}
			theirs := read(func(dev string) {
				out, err := exec.Command("cloud-localds", "-f", string(tc.format), "-N", nc, dev, ud, md).CombinedOutput()
				if err != nil {
					t.Fatalf("cloud-localds: %v: %s", err, out)
				}
			})
			ours := read(func(dev string) {
				if err := seed.Write(dev, seedFiles, tc.format); err != nil {
					t.Fatal(err)
				}
			})
			if theirs != ours {
				t.Errorf("cloud-localds seed: %s\nbuilder seed:     %s", theirs, ours)
			}
		})
	}
}
