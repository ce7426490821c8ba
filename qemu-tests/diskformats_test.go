package qemutests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// convertedImage runs `builder convert --format FORMAT` on a copy of the
// image under test's build directory (its disks linked, its manifest
// copied: convert records what it writes there) and returns the file
// convert wrote.
func convertedImage(t *testing.T, format, file string) string {
	t.Helper()
	img := image(t)
	dir := t.TempDir()
	for _, f := range []string{"disk.raw", "disk.qcow2"} {
		if err := os.Symlink(filepath.Join(img, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := os.ReadFile(filepath.Join(img, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(builderBin(t), "convert", "--format", format, dir).CombinedOutput(); err != nil {
		t.Fatalf("builder convert --format %s: %v\n%s", format, err, out)
	}
	return filepath.Join(dir, file)
}

// TestDiskFormatVMDK boots the stream-optimized VMDK `builder convert`
// makes (what vSphere and VirtualBox import) as its own disk, under
// SeaBIOS: the firmware, GRUB and the kernel read it through qemu's VMDK
// driver, and the host comes up with hostd. TestDiskFormatsMatrix has the
// other formats and UEFI (make test-long).
func TestDiskFormatVMDK(t *testing.T) {
	vm := bootVM(t, BootOpts{Base: convertedImage(t, "vmdk", "disk.vmdk"), BaseFormat: "vmdk"})
	checkBooted(t, vm)
}

// TestDiskFormatsMatrix boots each converted disk under each firmware:
// the VHD (Azure's fixed VHD, qemu's vpc driver), the VMDK under UEFI, and
// the GCE tarball's disk.raw.
func TestDiskFormatsMatrix(t *testing.T) {
	for _, tc := range []struct {
		name, format, file, qemuFormat string
		fw                             Firmware
	}{
		{"vhd-bios", "vhd", "disk.vhd", "vpc", BIOS},
		{"vhd-uefi", "vhd", "disk.vhd", "vpc", UEFI},
		{"vmdk-uefi", "vmdk", "disk.vmdk", "vmdk", UEFI},
		{"gce-uefi", "gce", "disk.gce.tar.gz", "raw", UEFI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := convertedImage(t, tc.format, tc.file)
			if tc.format == "gce" {
				dir := t.TempDir()
				if out, err := exec.Command("tar", "-xzSf", p, "-C", dir).CombinedOutput(); err != nil {
					t.Fatalf("unpacking %s: %v\n%s", p, err, out)
				}
				p = filepath.Join(dir, "disk.raw")
			}
			vm := bootVM(t, BootOpts{Base: p, BaseFormat: tc.qemuFormat, Firmware: tc.fw})
			checkBooted(t, vm)
		})
	}
}
