package storagesetup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Host integration: the argv this package builds, fed to the real Debian
// tools on sparse files (LVM itself needs device-mapper, which this host
// kernel lacks: that part runs in the QEMU guest).

func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("needs %s (Debian package %s)", name, pkg)
	}
}

func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// The sfdisk scripts give one LVM partition at sector 2048: dos up to
// 2 TiB, GPT above (checked with sfdisk --dump, as the original's test 016
// checked fdisk -l's "label type").
func TestIntegrationSfdiskScripts(t *testing.T) {
	needTool(t, "sfdisk", "fdisk")
	for _, tc := range []struct {
		name  string
		size  int64
		label string
		typ   string
	}{
		{"10G dos", 10 << 30, "label: dos", "type=8e"},
		{"3T gpt", 3 << 40, "label: gpt", "type=E6D6D379-F507-44C2-A23C-238F2A3DF928"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := sparseFile(t, tc.size)
			_, err := run.Exec{Log: quiet}.Run(context.Background(), run.Cmd{Name: "sfdisk", Args: []string{img}, Stdin: strings.NewReader(partitionScript(uint64(tc.size)))})
			if err != nil {
				t.Fatal(err)
			}
			out, err := run.Exec{Log: quiet}.Run(context.Background(), run.Cmd{Name: "sfdisk", Args: []string{"--dump", img}})
			if err != nil {
				t.Fatal(err)
			}
			dump := string(out)
			if !strings.Contains(dump, tc.label) || !strings.Contains(dump, "start=        2048") || !strings.Contains(dump, tc.typ) {
				t.Errorf("got dump:\n%s\nwant %q, start 2048 and %q", dump, tc.label, tc.typ)
			}
		})
	}
}

// mkfs.xfs with ftype=1 (overlay2's need), then wipefs -p finds it and the
// parser turns it into the original's refusal.
func TestIntegrationMkfsAndWipefs(t *testing.T) {
	needTool(t, "mkfs.xfs", "xfsprogs")
	needTool(t, "wipefs", "util-linux")
	img := sparseFile(t, 512<<20)
	s := Setup{Runner: run.Exec{Log: quiet}, Log: quiet, Config: Config{StorageDriver: "overlay2", WipeSignatures: false}}
	if err := s.mkfs(context.Background(), s.Config, img); err != nil {
		t.Fatal(err)
	}
	err := s.checkWipeSignatures(context.Background(), img)
	if err == nil || !strings.Contains(err.Error(), "Found xfs signature on device "+img+" at offset 0x0.") {
		t.Errorf("got %v, want the xfs signature refused", err)
	}
	fsType, err := s.blkidType(context.Background(), img)
	if _, lookErr := exec.LookPath("blkid"); lookErr == nil && (err != nil || fsType != "xfs") {
		t.Errorf("blkid: got %q, %v, want xfs", fsType, err)
	}
	// An empty file: blkid's exit 2 reads as "no filesystem".
	if _, lookErr := exec.LookPath("blkid"); lookErr == nil {
		if got, err := s.blkidType(context.Background(), sparseFile(t, 1<<20)); err != nil || got != "" {
			t.Errorf("blkid on an empty file: got %q, %v", got, err)
		}
	}
	s.Config.WipeSignatures = true
	if err := s.checkWipeSignatures(context.Background(), img); err != nil {
		t.Fatal(err)
	}
	if err := s.checkWipeSignatures(context.Background(), img); err != nil {
		t.Errorf("got %v after wiping, want no signatures left", err)
	}
}

// The lsblk JSON of this machine's first disk parses.
func TestIntegrationLsblk(t *testing.T) {
	needTool(t, "lsblk", "util-linux")
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		dev := "/dev/" + e.Name()
		if strings.HasPrefix(e.Name(), "loop") || strings.HasPrefix(e.Name(), "zram") {
			continue
		}
		if _, err := os.Stat(dev); err != nil {
			continue
		}
		bd, err := lsblk(context.Background(), run.Exec{Log: quiet}, dev)
		if err != nil {
			t.Fatal(err)
		}
		if bd.Name != dev || bd.Type != "disk" || bd.bytes() == 0 {
			t.Errorf("got %+v for %s", bd, dev)
		}
		return
	}
	// No real disk here (a container): a loop device is a block device too.
	needTool(t, "losetup", "mount")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("attaching %s: %v", img, err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	bd, err := lsblk(context.Background(), run.Exec{Log: quiet}, dev)
	if err != nil {
		t.Fatal(err)
	}
	if bd.Name != dev || bd.Type != "loop" || bd.bytes() != 8<<20 {
		t.Errorf("got %+v for %s", bd, dev)
	}
}
