package qemutests

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestBootBIOS boots with SeaBIOS, as a plain `virt-install --import` does,
// on a disk larger than the image, and checks the whole foundation.
func TestBootBIOS(t *testing.T) {
	vm := bootVM(t, BootOpts{Firmware: BIOS, DiskSize: "8G"})
	checkBooted(t, vm)
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

// TestBootUEFI boots with OVMF (no Secure Boot): shim, then Debian's GRUB.
func TestBootUEFI(t *testing.T) {
	vm := bootVM(t, BootOpts{Firmware: UEFI})
	checkBooted(t, vm)
	if sh(t, vm, "test -d /sys/firmware/efi && echo efi") != "efi" {
		t.Error("booted without EFI")
	}
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
