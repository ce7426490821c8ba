package qemutests

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// copySlotAToB is a guest script that makes slot B a copy of slot A (its
// /usr image, verity tree, kernel and initrd) with its own partitions in its
// entry, and records version $1 for it.
const copySlotAToB = `set -e
blocks=$(dmsetup table usr | awk '{print $9}') # num_data_blocks
dd if=/dev/disk/by-partlabel/usr-a of=/dev/disk/by-partlabel/usr-b bs=4096 count=$blocks status=none
dd if=/dev/disk/by-partlabel/usr-a-verity of=/dev/disk/by-partlabel/usr-b-verity bs=1M status=none
pu() { blkid -s PARTUUID -o value /dev/disk/by-partlabel/$1; }
mkdir -p /efi/b
cp /efi/a/vmlinuz /efi/a/initrd.img /efi/b/
sed -e "s/$(pu usr-a-verity)/$(pu usr-b-verity)/" -e "s/$(pu usr-a)/$(pu usr-b)/" \
    -e 's|)/a/|)/b/|g' -e 's/bulkhead.slot=a/bulkhead.slot=b/' -e 's/from slot a/from slot b/' \
    -e 's/slot a,/slot b,/' /efi/a/entry.cfg > /efi/b/entry.cfg
sed "s/^VERSION=.*/VERSION=$1/" /efi/a/release > /efi/b/release
sync
`

// setTrial writes the GRUB environment block in place (as grub-editenv
// would), putting slot $1 on trial with $2 tries.
const setTrial = `set -e
{ printf '# GRUB Environment Block\nbulkhead_default=a\nbulkhead_tries=%s\nbulkhead_try=%s\n' "$2" "$1"
  head -c 1024 /dev/zero | tr '\0' '#'; } | head -c 1024 > /run/grubenv.new
dd if=/run/grubenv.new of=/efi/grub/grubenv conv=notrunc,fsync status=none
`

// setGrubEnv writes the GRUB environment block in place with the
// assignments given as arguments (the image carries no grub-editenv).
const setGrubEnv = `set -e
{ printf '# GRUB Environment Block\n'; printf '%s\n' "$@"
  head -c 1024 /dev/zero | tr '\0' '#'; } | head -c 1024 > /run/grubenv.new
dd if=/run/grubenv.new of=/efi/grub/grubenv conv=notrunc,fsync status=none
`

const brokenSlotCheck = `#!/bin/sh
# Test: the version in slot b fails its health check.
if grep -q 'bulkhead.slot=b' /proc/cmdline; then echo "slot b is broken (test)" >&2; exit 1; fi
`

// guestScript runs a script given as text with arguments in the guest.
func guestScript(t *testing.T, vm *VM, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := vm.Exec(ctx, append([]string{"/bin/sh", "-c", script, "script"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 0 {
		t.Fatalf("guest script exited %d: %s", r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// TestBootCounterFallsBack puts a slot whose health check fails on trial:
// GRUB tries it the set number of times (each failed health gate reboots),
// then boots the default slot by itself, which records the version as bad.
//
// In make test the counter is proven by TestUpdateFailedTrial (a real
// update whose health check fails); this direct version is in the long tier.
func TestBootCounterFallsBack(t *testing.T) {
	vm := bootVM(t, BootOpts{Firmware: BIOS})
	checkBooted(t, vm)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	guestScript(t, vm, copySlotAToB, "1.0.0-broken")
	guestScript(t, vm, `mkdir -p /etc/bulkhead/health.d && printf '%s' "$1" > /etc/bulkhead/health.d/50-test-broken-slot &&
chmod 755 /etc/bulkhead/health.d/50-test-broken-slot`, brokenSlotCheck)
	guestScript(t, vm, setTrial, "b", "3")
	st := status(t, vm)
	if got := fmtSlots(st); !strings.Contains(got, "b=pending(1.0.0-broken)") {
		t.Fatalf("after setting the trial: slots %s, want b pending", got)
	}

	mark := vm.Console().Len()
	_, _ = vm.Exec(ctx, "systemctl", "reboot")
	slotB := regexp.MustCompile(`Booting Bulkhead \S+ from slot b`)
	slotA := regexp.MustCompile(`Booting Bulkhead \S+ from slot a`)
	pos := mark
	for try := 1; try <= 3; try++ {
		var err error
		if _, pos, err = vm.Console().Wait(ctx, slotB, pos); err != nil {
			t.Fatalf("try %d of slot b: %v", try, err)
		}
		t.Logf("slot b, try %d", try)
	}
	if _, _, err := vm.Console().Wait(ctx, slotA, pos); err != nil {
		t.Fatalf("falling back to slot a: %v", err)
	}
	if n := vm.Console().Count(slotB, mark); n != 3 {
		t.Errorf("slot b booted %d times, want 3", n)
	}
	waitReady(t, vm)
	if s := waitUnit(t, vm, "bulkhead-bless.service"); s != "active" {
		t.Fatalf("bless after the fallback is %s", s)
	}
	st = status(t, vm)
	if st.Slots.Booted != "a" || st.Slots.Default != "a" {
		t.Errorf("after the fallback: booted %q default %q, want a and a", st.Slots.Booted, st.Slots.Default)
	}
	if got := fmtSlots(st); !strings.Contains(got, "b=bad(1.0.0-broken)") {
		t.Errorf("after the fallback: slots %s, want b bad", got)
	}
	if bad := sh(t, vm, "cat /var/lib/bulkhead/updater/bad-versions.json"); !strings.Contains(bad, "1.0.0-broken") {
		t.Errorf("bad versions %q, want 1.0.0-broken recorded", bad)
	}
}
