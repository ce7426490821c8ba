package qemutests

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// checkBooted asserts what every good boot shows: slot A booted and blessed,
// hostd answering, and the booted slot the default.
func checkBooted(t *testing.T, vm *VM) hostStatus {
	t.Helper()
	waitReady(t, vm)
	if s := waitUnit(t, vm, "hostd.service"); s != "active" {
		t.Fatalf("hostd.service is %s, want active\n%s", s, sh(t, vm, "journalctl -u hostd --no-pager | tail -20"))
	}
	if s := waitUnit(t, vm, "bulkhead-bless.service"); s != "active" {
		t.Fatalf("bulkhead-bless.service is %s, want active\n%s", s,
			sh(t, vm, "journalctl -u bulkhead-health -u bulkhead-bless --no-pager | tail -30"))
	}
	st := status(t, vm)
	if st.Slots.Booted != "a" || st.Slots.Default != "a" {
		t.Errorf("booted slot %q, default %q; want a and a", st.Slots.Booted, st.Slots.Default)
	}
	if st.Slots.OS != "Bulkhead" || st.Slots.Version == "" {
		t.Errorf("got OS %q version %q, want Bulkhead and a version", st.Slots.OS, st.Slots.Version)
	}
	if got := fmtSlots(st); !strings.HasPrefix(got, "a=booted") || !strings.Contains(got, "b=empty") {
		t.Errorf("got slots %s, want a booted and b empty", got)
	}
	if st.Hostd == nil {
		t.Errorf("hostctl status reports hostd down: %s", st.HostdError)
	}
	return st
}

// checkPlainBoot asserts what a SeaBIOS boot without any seed shows (run on
// TestStorageSetup's boot, whose disk is 8 GiB, so that one boot checks
// both): GRUB's choice on the serial console, a read-only verity /usr, the
// root grown to the disk, the status text and the serial getty.
func checkPlainBoot(t *testing.T, vm *VM) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Run("grub chose slot a on the serial console", func(t *testing.T) {
		if _, _, err := vm.Console().Wait(ctx, regexp.MustCompile(`Booting Bulkhead \S+ from slot a`), 0); err != nil {
			t.Error(err)
		}
	})
	t.Run("usr is read-only and verity-backed", func(t *testing.T) {
		if r, _ := vm.Exec(ctx, "/bin/sh", "-c", "touch /usr/bulkhead-write-test"); r.Code == 0 || !strings.Contains(r.Stderr, "Read-only file system") {
			t.Errorf("writing under /usr: exit %d, %q; want a read-only file system error", r.Code, r.Stderr)
		}
		src := strings.Fields(sh(t, vm, "findmnt -n -o SOURCE,FSTYPE,OPTIONS /usr"))
		if len(src) != 3 || src[0] != "/dev/mapper/usr" || src[1] != "erofs" || !strings.HasPrefix(src[2], "ro,") {
			t.Errorf("/usr is mounted as %q, want /dev/mapper/usr erofs ro", src)
		}
		if table := sh(t, vm, "dmsetup table usr"); !strings.Contains(table, " verity ") {
			t.Errorf("dm table of usr is %q, want a verity target", table)
		}
		hash := sh(t, vm, "tr ' ' '\\n' < /proc/cmdline | sed -n 's/^usrhash=//p'")
		if table := sh(t, vm, "dmsetup table usr"); hash == "" || !strings.Contains(table, hash) {
			t.Errorf("verity table %q does not carry usrhash %q from the command line", table, hash)
		}
	})
	t.Run("root grew to fill the disk", func(t *testing.T) {
		size, _ := strconv.ParseInt(sh(t, vm, "df -B1 --output=size / | tail -1"), 10, 64)
		// The image's root is 1 GiB of a ~5.3 GiB disk; on an 8 GiB disk
		// it must have grown by more than 2 GiB.
		if size < 3<<30 {
			t.Errorf("root filesystem is %d bytes, want > 3 GiB on an 8 GiB disk\n%s", size,
				sh(t, vm, "lsblk -b; journalctl -b -u systemd-repart -u systemd-growfs-root --no-pager | tail"))
		}
	})
	t.Run("hostctl status text", func(t *testing.T) {
		out := sh(t, vm, "hostctl status")
		for _, want := range []string{"Booted:  slot a", "slot a: booted", "slot b: empty", "hostd:   running"} {
			if !strings.Contains(out, want) {
				t.Errorf("hostctl status lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("serial console getty", func(t *testing.T) {
		if s := sh(t, vm, "systemctl is-active serial-getty@ttyS0.service"); s != "active" {
			t.Errorf("serial-getty@ttyS0 is %s", s)
		}
	})
}

// checkIdentity (issue 14, part 4): the first boot gave the disk a GUID,
// partition UUIDs and a root filesystem UUID of its own; booted again with a
// second, never-booted copy of the image attached, the host boots its own
// root, /usr and ESP, names its disk, and leaves the copy as it was.
func checkIdentity(t *testing.T, vm *VM, fw Firmware) {
	m, err := manifest.Read(image(t))
	if err != nil {
		t.Fatal(err)
	}
	built := map[string]string{}
	for _, p := range m.Partitions {
		built[p.Label] = strings.ToLower(p.UUID)
	}
	// label -> PARTUUID on the guest's vda now
	partUUIDs := func(t *testing.T, disk string) (string, map[string]string) {
		var tbl struct {
			PartitionTable struct {
				ID         string `json:"id"`
				Partitions []struct {
					UUID string `json:"uuid"`
					Name string `json:"name"`
				} `json:"partitions"`
			} `json:"partitiontable"`
		}
		if err := json.Unmarshal([]byte(sh(t, vm, "sfdisk --json "+disk)), &tbl); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range tbl.PartitionTable.Partitions {
			out[p.Name] = strings.ToLower(p.UUID)
		}
		return strings.ToLower(tbl.PartitionTable.ID), out
	}
	var ours map[string]string
	var guid string
	if !t.Run("first boot gave the disk an identity of its own", func(t *testing.T) {
		// Off the boot's critical path: it may still be running.
		if s := waitUnit(t, vm, "bulkhead-identity.service"); s != "active" {
			t.Fatalf("bulkhead-identity.service is %s\n%s", s, sh(t, vm, "journalctl -u bulkhead-identity --no-pager"))
		}
		guid, ours = partUUIDs(t, "/dev/vda")
		if guid == bootabi.PristineDiskGUID || len(ours) != len(built) {
			t.Fatalf("disk GUID %s, partitions %v", guid, ours)
		}
		for label, u := range ours {
			if u == built[label] {
				t.Errorf("partition %s kept the image's PARTUUID %s", label, u)
			}
		}
		st := status(t, vm)
		if st.Slots.Disk != "/dev/vda" || st.Slots.DiskGUID != guid || st.Slots.DiskPristine {
			t.Errorf("status names disk %q GUID %q (pristine %v); want /dev/vda, %s", st.Slots.Disk, st.Slots.DiskGUID, st.Slots.DiskPristine, guid)
		}
		fstab := sh(t, vm, "cat /etc/fstab")
		for _, want := range []string{"PARTUUID=" + ours["root"] + " / ", "PARTUUID=" + ours["esp"] + " /efi "} {
			if !strings.Contains(fstab, want) {
				t.Errorf("fstab lacks %q:\n%s", want, fstab)
			}
		}
		consoleHas(t, vm, `boot disk /dev/vda has an identity of its own`, 0)
	}) {
		return
	}

	t.Run("a second copy of the image attached: boots its own disk", func(t *testing.T) {
		disk := vm.Cfg.Disk
		rootFS := sh(t, vm, "blkid -s UUID -o value /dev/vda7")
		// The next boot also goes through a boot chain written again on
		// the ESP: shim, MokManager, GRUB and grub.cfg each by a new copy
		// renamed over the old one.
		if out := sh(t, vm, "hostctl bootloader update --force && hostctl bootloader status"); !strings.Contains(out, "EFI/BOOT/BOOTX64.EFI") || strings.Contains(out, "DAMAGED") {
			t.Errorf("hostctl bootloader update --force:\n%s", out)
		}
		vm.Shutdown(2 * time.Minute)
		twin := filepath.Join(t.TempDir(), "twin.qcow2")
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
			filepath.Join(image(t), "disk.qcow2"), twin).CombinedOutput(); err != nil {
			t.Fatalf("creating the second disk: %v: %s", err, out)
		}
		vm = bootVM(t, BootOpts{Firmware: fw, Overlay: disk, Extra: []Disk{{File: twin, Format: "qcow2", Bus: "virtio", Serial: "twin"}}})
		checkBooted(t, vm)
		if s := sh(t, vm, "cat /sys/block/vdb/serial"); s != "twin" {
			t.Fatalf("the copy is not vdb (serial %q)", s)
		}
		cmdline := sh(t, vm, "cat /proc/cmdline")
		for _, want := range []string{"root=PARTUUID=" + ours["root"], "systemd.verity_usr_data=PARTUUID=" + ours["usr-a"], "systemd.verity_usr_hash=PARTUUID=" + ours["usr-a-verity"]} {
			if !strings.Contains(cmdline, want) {
				t.Errorf("GRUB did not pass the disk's own PARTUUIDs: %q lacks %q", cmdline, want)
			}
		}
		mounts := sh(t, vm, "findmnt -n -o SOURCE / ; findmnt -n -o SOURCE /efi; ls /sys/block/$(basename $(readlink -f /dev/mapper/usr))/slaves | sort | tr '\\n' ' '")
		if want := "/dev/vda7\n/dev/vda2\nvda3 vda4"; mounts != want {
			t.Errorf("root, ESP and /usr come from %q, want %q", mounts, want)
		}
		if u := sh(t, vm, "blkid -s UUID -o value /dev/vda7"); u != rootFS || u == sh(t, vm, "blkid -s UUID -o value /dev/vdb7") {
			t.Errorf("root filesystem UUID %s (was %s), the copy's %s: want ours kept and different from the copy's", u, rootFS, sh(t, vm, "blkid -s UUID -o value /dev/vdb7"))
		}
		if g, copyParts := partUUIDs(t, "/dev/vdb"); g != bootabi.PristineDiskGUID || copyParts["root"] != built["root"] {
			t.Errorf("the copy changed: disk GUID %s, root PARTUUID %s", g, copyParts["root"])
		}
		if out := sh(t, vm, "hostctl status"); !strings.Contains(out, "Disk:    /dev/vda (disk GUID "+guid+")") {
			t.Errorf("hostctl status does not name /dev/vda:\n%s", out)
		}
		if out := sh(t, vm, "hostctl bootloader status; ls /efi/EFI/BOOT"); strings.Contains(out, "DAMAGED") || strings.Contains(out, ".new") {
			t.Errorf("the boot chain after booting through the rewritten files:\n%s", out)
		}
	})
}

// TestBootUEFI boots with OVMF (no Secure Boot): shim, then Debian's GRUB.
func TestBootUEFI(t *testing.T) {
	vm := bootVM(t, BootOpts{Firmware: UEFI})
	checkBooted(t, vm)
	if sh(t, vm, "test -d /sys/firmware/efi && echo efi") != "efi" {
		t.Error("booted without EFI")
	}
	// Here rather than under SeaBIOS: Debian's signed GRUB reads the new
	// PARTUUIDs at the second boot. Every BIOS test that reboots needs
	// the core image's probe the same way (the image's PARTUUIDs are gone
	// after the first boot).
	checkIdentity(t, vm, UEFI)
}

// TestBootSecureBoot boots with OVMF's Secure Boot build and Microsoft's
// keys: Microsoft-signed shim, Debian-signed GRUB and kernel.
func TestBootSecureBoot(t *testing.T) {
	vm := bootVM(t, BootOpts{Firmware: SecureBoot})
	checkBooted(t, vm)
	// The last byte of the SecureBoot EFI variable is 1 when it is on.
	sb := sh(t, vm, "od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c | awk '{print $NF}'")
	if sb != "1" {
		t.Errorf("SecureBoot variable ends in %q, want 1", sb)
	}
	if lock := sh(t, vm, "cat /sys/kernel/security/lockdown 2>/dev/null || true"); !strings.Contains(lock, "[integrity]") && !strings.Contains(lock, "[confidentiality]") {
		t.Logf("kernel lockdown: %q", lock)
	}
}
