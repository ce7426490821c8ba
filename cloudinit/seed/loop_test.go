package seed

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadLoopDevice reads a seed from a real block device (a loop device),
// the way the datasource reads /dev/sr0: size from seeking, no mount.
func TestReadLoopDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: attaches a loop device")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Fatal("losetup not installed (apt package mount)")
	}
	for _, format := range []Format{FormatISO, FormatVFAT} {
		t.Run(string(format), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "seed.img")
			if err := Write(img, testFiles(), format); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("losetup", "--find", "--show", "--read-only", img).Output()
			if err != nil {
				t.Fatalf("no loop device available here: %v", err)
			}
			dev := strings.TrimSpace(string(out))
			defer exec.Command("losetup", "--detach", dev).Run()
			got, err := Read(dev)
			if err != nil {
				t.Fatal(err)
			}
			assertFiles(t, got, testFiles())
		})
	}
}
