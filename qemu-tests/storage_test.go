package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newDisk makes an empty sparse qcow2 of size (10G, 3T) in the test's
// temporary directory, to attach as an extra virtio disk.
func newDisk(t *testing.T, name, size string) Disk {
	t.Helper()
	f := filepath.Join(t.TempDir(), name+".qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", f, size).CombinedOutput(); err != nil {
		t.Fatalf("creating disk %s: %v: %s", f, err, out)
	}
	return Disk{File: f, Format: "qcow2", Bus: "virtio"}
}

// guestRun runs a shell script in the guest and returns its result whatever
// the exit code (for the scenarios that must fail).
func guestRun(t *testing.T, vm *VM, script string) ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r, err := vm.Exec(ctx, "/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// writeStorageConfig writes /etc/sysconfig/docker-storage-setup in the
// guest, one KEY=value per line.
func writeStorageConfig(t *testing.T, vm *VM, lines ...string) {
	t.Helper()
	guestScript(t, vm, `mkdir -p /etc/sysconfig && printf '%s\n' "$@" > /etc/sysconfig/docker-storage-setup`, lines...)
}

// storageSetup runs `hostctl storage-setup [args]` and fails on a non-zero
// exit, showing its output.
func storageSetup(t *testing.T, vm *VM, args ...string) string {
	t.Helper()
	r := guestRun(t, vm, "hostctl storage-setup "+strings.Join(args, " "))
	if r.Code != 0 {
		t.Fatalf("hostctl storage-setup %s exited %d:\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout + r.Stderr
}

// lvmLV is one row of `lvs --reportformat json`.
type lvmLV struct {
	Name    string `json:"lv_name"`
	Attr    string `json:"lv_attr"`
	Profile string `json:"lv_profile"`
	Pool    string `json:"pool_lv"`
}

// guestLVs lists the LVs of vg (none when it does not exist).
func guestLVs(t *testing.T, vm *VM, vg string) map[string]lvmLV {
	t.Helper()
	r := guestRun(t, vm, "lvs --reportformat json -o lv_name,lv_attr,lv_profile,pool_lv "+vg)
	lvs := map[string]lvmLV{}
	if r.Code != 0 {
		return lvs
	}
	var rep struct {
		Report []struct {
			LV []lvmLV `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("decoding lvs: %v: %s", err, r.Stdout)
	}
	for _, p := range rep.Report {
		for _, l := range p.LV {
			lvs[l.Name] = l
		}
	}
	return lvs
}

// vgSeqno is LVM's metadata sequence number of vg: it grows with every
// metadata change, so an unchanged number proves a run changed nothing.
func vgSeqno(t *testing.T, vm *VM, vg string) string {
	t.Helper()
	return sh(t, vm, "vgs --noheadings -o vg_seqno "+vg)
}

// checkPool asserts vg has the thin pool docker-pool with its autoextend
// profile attached.
func checkPool(t *testing.T, vm *VM, vg string) {
	t.Helper()
	lvs := guestLVs(t, vm, vg)
	p, ok := lvs["docker-pool"]
	switch {
	case !ok:
		t.Errorf("VG %s has no docker-pool; LVs: %v", vg, lvs)
	case !strings.HasPrefix(p.Attr, "t"):
		t.Errorf("docker-pool attr %q, want a thin pool (t...)", p.Attr)
	case p.Profile != vg+"--docker-pool-extend":
		t.Errorf("docker-pool profile %q, want %s--docker-pool-extend", p.Profile, vg)
	}
}

// storageOutput is /etc/sysconfig/docker-storage, "" when absent.
func storageOutput(t *testing.T, vm *VM) string {
	t.Helper()
	return sh(t, vm, "cat /etc/sysconfig/docker-storage 2>/dev/null || true")
}

// TestStorageSetup is the representative storage case (make test): the
// boot without a spare disk configured leaves the engine's storage on the
// root filesystem; DEVS+VG then carves the Bulkhead default (thin pool,
// XFS container root volume on /var/lib/hostd); a second run changes
// nothing; hostctl status shows the pool; --reset removes it.
func TestStorageSetup(t *testing.T) {
	// SeaBIOS, as a plain `virt-install --import` does, on a disk larger
	// than the image: the boot also checks the foundation (checkPlainBoot).
	vm := bootVM(t, BootOpts{Firmware: BIOS, DiskSize: "8G", Extra: []Disk{newDisk(t, "vdb", "10G"), newDisk(t, "vdc", "10G")}})
	checkBooted(t, vm)
	checkPlainBoot(t, vm)
	if s := waitUnit(t, vm, "bulkhead-storage-setup.service"); s != "active" {
		t.Fatalf("bulkhead-storage-setup.service is %s\n%s", s, sh(t, vm, "journalctl -b -u bulkhead-storage-setup --no-pager | tail -30"))
	}
	t.Run("no LVM scan without a volume group", func(t *testing.T) {
		// lvm2-monitor runs only where a VG was made here.
		if got := sh(t, vm, "systemctl show -p ConditionResult --value lvm2-monitor.service"); got != "no" {
			t.Errorf("lvm2-monitor.service condition result %q, want no (skipped)", got)
		}
	})

	t.Run("no config: storage on the root filesystem", func(t *testing.T) {
		if got := storageOutput(t, vm); got != `DOCKER_STORAGE_OPTIONS="--storage-driver overlay2"` {
			t.Errorf("docker-storage after boot %q, want overlay2 only", got)
		}
		if got := sh(t, vm, "findmnt -n -o TARGET -T /var/lib/hostd"); got != "/" {
			t.Errorf("/var/lib/hostd is on %q, want the root filesystem", got)
		}
		if got := sh(t, vm, "vgs --noheadings -o vg_name"); got != "" {
			t.Errorf("volume groups after a boot without DEVS: %q, want none", got)
		}
	})

	// The engine's storage moves to the new volume: stop hostd so nothing
	// holds files under the old /var/lib/hostd.
	sh(t, vm, "systemctl stop hostd")
	writeStorageConfig(t, vm, "DEVS=/dev/vdb", "VG=docker-vg")
	out := storageSetup(t, vm)
	t.Logf("storage-setup:\n%s", out)

	t.Run("VG, thin pool and container root volume", func(t *testing.T) {
		checkPool(t, vm, "docker-vg")
		lvs := guestLVs(t, vm, "docker-vg")
		if l, ok := lvs["container-root-lv"]; !ok || !strings.HasPrefix(l.Attr, "V") || l.Pool != "docker-pool" {
			t.Errorf("container-root-lv is %+v (present %v), want a thin volume in docker-pool", l, ok)
		}
		if got := sh(t, vm, "pvs --noheadings -o pv_name,vg_name | tr -s ' '"); got != "/dev/vdb1 docker-vg" {
			t.Errorf("PVs %q, want /dev/vdb1 in docker-vg", got)
		}
	})
	t.Run("output file", func(t *testing.T) {
		if got := storageOutput(t, vm); got != `DOCKER_STORAGE_OPTIONS="--storage-driver overlay2"` {
			t.Errorf("docker-storage %q, want overlay2", got)
		}
	})
	t.Run("container root volume on /var/lib/hostd", func(t *testing.T) {
		checkRootLVMount(t, vm)
	})

	t.Run("second run changes nothing", func(t *testing.T) {
		before := vgSeqno(t, vm, "docker-vg")
		mtimes := "stat -c '%n %Y' /etc/sysconfig/docker-storage /etc/lvm/profile/docker-vg--docker-pool-extend.profile /etc/systemd/system/var-lib-hostd.mount"
		mBefore := sh(t, vm, mtimes)
		storageSetup(t, vm)
		if after := vgSeqno(t, vm, "docker-vg"); after != before {
			t.Errorf("vg_seqno %s -> %s: the second run changed LVM metadata", before, after)
		}
		if mAfter := sh(t, vm, mtimes); mAfter != mBefore {
			t.Errorf("files rewritten by the second run:\n%s\nthen\n%s", mBefore, mAfter)
		}
	})

	t.Run("hostd's engine writes to the volume", func(t *testing.T) {
		sh(t, vm, "systemctl start hostd")
		waitUnit(t, vm, "hostd.service")
		if got := sh(t, vm, "ls -A /var/lib/hostd | grep -v lost+found | wc -l"); got == "0" {
			t.Errorf("hostd left /var/lib/hostd on the volume empty:\n%s", sh(t, vm, "journalctl -b -u hostd --no-pager | tail -20"))
		}
	})

	t.Run("hostctl status shows pool usage", func(t *testing.T) {
		var st struct {
			Storage *struct {
				VG, Pool                     string
				DataPercent, MetadataPercent float64
			} `json:"storage"`
			StorageError string `json:"storageError"`
		}
		raw := sh(t, vm, "hostctl status --json")
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatalf("decoding hostctl status: %v: %s", err, raw)
		}
		if st.Storage == nil || st.Storage.VG != "docker-vg" || st.Storage.Pool != "docker-pool" {
			t.Fatalf("status storage %+v (error %q), want docker-vg/docker-pool", st.Storage, st.StorageError)
		}
		if st.Storage.DataPercent <= 0 || st.Storage.MetadataPercent <= 0 {
			t.Errorf("pool usage data %.2f%% metadata %.2f%%, want both above 0 (XFS is on it)", st.Storage.DataPercent, st.Storage.MetadataPercent)
		}
		if text := sh(t, vm, "hostctl status"); !strings.Contains(text, "Storage: thin pool docker-vg/docker-pool: data ") {
			t.Errorf("hostctl status lacks the pool line:\n%s", text)
		}
	})

	t.Run("a disk added to DEVS grows the volume and its XFS", func(t *testing.T) {
		size := func(what string) int64 {
			var n int64
			cmd := "lvs --noheadings --units b --nosuffix -o lv_size docker-vg/container-root-lv"
			if what == "xfs" {
				cmd = "df -B1 --output=size /var/lib/hostd | tail -1"
			}
			if _, err := fmt.Sscan(sh(t, vm, cmd), &n); err != nil {
				t.Fatalf("%s size: %v", what, err)
			}
			return n
		}
		lvBefore, fsBefore := size("lv"), size("xfs")
		writeStorageConfig(t, vm, "DEVS=\"/dev/vdb /dev/vdc\"", "VG=docker-vg")
		t.Logf("storage-setup with vdc added:\n%s", storageSetup(t, vm))
		lvAfter, fsAfter := size("lv"), size("xfs")
		if lvAfter < lvBefore*19/10 || fsAfter < fsBefore*19/10 {
			t.Errorf("after doubling the VG: volume %d -> %d bytes, XFS %d -> %d; want both about doubled", lvBefore, lvAfter, fsBefore, fsAfter)
		}
		if got := sh(t, vm, "ls -A /var/lib/hostd | grep -v lost+found | wc -l"); got == "0" {
			t.Error("the engine's data is gone from the grown volume")
		}
	})

	t.Run("reset removes the pool and the output, keeps the VG", func(t *testing.T) {
		sh(t, vm, "systemctl stop hostd")
		storageSetup(t, vm, "--reset")
		lvs := guestLVs(t, vm, "docker-vg")
		if len(lvs) != 0 {
			t.Errorf("LVs left after --reset: %v", lvs)
		}
		if got := sh(t, vm, "vgs --noheadings -o vg_name"); got != "docker-vg" {
			t.Errorf("VGs after --reset %q, want docker-vg kept", got)
		}
		if got := sh(t, vm, "test -e /etc/sysconfig/docker-storage && echo present || echo gone"); got != "gone" {
			t.Errorf("output file %s after --reset", got)
		}
		if got := sh(t, vm, "findmnt -n -o SOURCE /var/lib/hostd || true"); got != "" {
			t.Errorf("/var/lib/hostd still mounted from %q after --reset", got)
		}
	})
}

// checkRootLVMount asserts the Bulkhead default: the container root volume
// mounted on /var/lib/hostd, XFS with ftype=1, its mount unit enabled.
func checkRootLVMount(t *testing.T, vm *VM) {
	t.Helper()
	got := strings.Fields(sh(t, vm, "findmnt -n -o SOURCE,FSTYPE /var/lib/hostd || true"))
	if len(got) != 2 || got[0] != "/dev/mapper/docker--vg-container--root--lv" || got[1] != "xfs" {
		t.Errorf("/var/lib/hostd mounted as %q, want /dev/mapper/docker--vg-container--root--lv xfs", got)
	}
	if info := sh(t, vm, "xfs_info /var/lib/hostd"); !strings.Contains(info, "ftype=1") {
		t.Errorf("xfs_info lacks ftype=1 (overlayfs needs d_type):\n%s", info)
	}
	if en := sh(t, vm, "systemctl is-enabled var-lib-hostd.mount || true"); en != "enabled" {
		t.Errorf("var-lib-hostd.mount is %q, want enabled", en)
	}
}

// expectRefused runs storage-setup, which must exit 1 saying why.
func expectRefused(t *testing.T, vm *VM, why string) {
	t.Helper()
	r := guestRun(t, vm, "hostctl storage-setup")
	if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, why) {
		t.Errorf("storage-setup exit %d, output %s%s; want 1 and %q", r.Code, r.Stdout, r.Stderr, why)
	}
}

// cleanStorage undoes a scenario: reset with its own config, drop the VG
// and every signature on the disks, remove the config.
const cleanStorage = `hostctl storage-setup --reset >/dev/null 2>&1
for vg in $(vgs --noheadings -o vg_name); do vgremove -qq -y "$vg"; done
for d in "$@"; do wipefs -q -a "${d}1" 2>/dev/null; wipefs -q -a "$d"; done
udevadm settle
rm -f /etc/sysconfig/docker-storage-setup /etc/sysconfig/docker-storage
true`

// TestStorageSetupMatrix is the rest of the original's test matrix
// (storage-setup/GUEST.md) on real LVM, one boot with three spare disks
// (vdb, vdc 10G; vdd 3T sparse), scenarios one after the other, each
// cleaning up after itself.
func TestStorageSetupMatrix(t *testing.T) {
	vm := bootVM(t, BootOpts{Extra: []Disk{newDisk(t, "vdb", "10G"), newDisk(t, "vdc", "10G"), newDisk(t, "vdd", "3T")}})
	waitReady(t, vm)
	waitUnit(t, vm, "bulkhead-storage-setup.service")
	sh(t, vm, "systemctl stop hostd")
	dm := []string{"STORAGE_DRIVER=devicemapper", "VG=css-test-foo", "CONTAINER_ROOT_LV_NAME=", "CONTAINER_ROOT_LV_MOUNT_PATH="}
	const dmPool = "dm.thinpooldev=/dev/mapper/css--test--foo-docker--pool"
	clean := func(t *testing.T) {
		guestScript(t, vm, cleanStorage, "/dev/vdb", "/dev/vdc", "/dev/vdd")
	}
	check001 := func(t *testing.T) {
		t.Helper()
		checkPool(t, vm, "css-test-foo")
		if got := storageOutput(t, vm); !strings.Contains(got, dmPool) || !strings.HasPrefix(got, `DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper `) {
			t.Errorf("docker-storage %q, want devicemapper with %s", got, dmPool)
		}
	}

	// The boot already wrote the overlay2 output (no DEVS); devicemapper
	// on top of it is a driver change, which the original refuses.
	clean(t)
	t.Run("001 DEVS+VG devicemapper", func(t *testing.T) {
		defer clean(t)
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdb")...)
		storageSetup(t, vm)
		check001(t)
		before := vgSeqno(t, vm, "css-test-foo")
		storageSetup(t, vm)
		if after := vgSeqno(t, vm, "css-test-foo"); after != before {
			t.Errorf("idempotent: vg_seqno %s -> %s", before, after)
		}
	})
	t.Run("002 PV signature refused", func(t *testing.T) {
		defer clean(t)
		sh(t, vm, "pvcreate -qq -y /dev/vdb")
		pvs := sh(t, vm, "pvs --noheadings -o pv_name,vg_name")
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdb")...)
		expectRefused(t, vm, "Found LVM2_member signature on device /dev/vdb")
		if got := sh(t, vm, "pvs --noheadings -o pv_name,vg_name"); got != pvs {
			t.Errorf("pvs changed from %q to %q", pvs, got)
		}
	})
	t.Run("003 WIPE_SIGNATURES", func(t *testing.T) {
		defer clean(t)
		sh(t, vm, "pvcreate -qq -y /dev/vdb")
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdb", "WIPE_SIGNATURES=true")...)
		storageSetup(t, vm)
		check001(t)
	})
	t.Run("004 bare name", func(t *testing.T) {
		defer clean(t)
		writeStorageConfig(t, vm, append(dm, "DEVS=vdb")...)
		storageSetup(t, vm)
		check001(t)
	})
	t.Run("005 reset", func(t *testing.T) {
		defer clean(t)
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdb")...)
		storageSetup(t, vm)
		storageSetup(t, vm, "--reset")
		if lvs := guestLVs(t, vm, "css-test-foo"); len(lvs) != 0 {
			t.Errorf("LVs after --reset: %v", lvs)
		}
		if got := storageOutput(t, vm); got != "" {
			t.Errorf("output after --reset: %q", got)
		}
		if got := sh(t, vm, "vgs --noheadings -o vg_name css-test-foo"); got != "css-test-foo" {
			t.Errorf("VG after --reset: %q, want kept", got)
		}
	})
	t.Run("007 EXTRA_STORAGE_OPTIONS", func(t *testing.T) {
		defer clean(t)
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdb", `EXTRA_STORAGE_OPTIONS="--storage-opt dm.basesize=30G"`)...)
		storageSetup(t, vm)
		if got := storageOutput(t, vm); !strings.HasSuffix(got, ` --storage-opt dm.basesize=30G"`) {
			t.Errorf("docker-storage %q, want the extra option at the end", got)
		}
	})
	t.Run("008 overlay2", func(t *testing.T) {
		defer clean(t)
		writeStorageConfig(t, vm, "STORAGE_DRIVER=overlay2", "CONTAINER_ROOT_LV_NAME=", "CONTAINER_ROOT_LV_MOUNT_PATH=")
		storageSetup(t, vm)
		if got := storageOutput(t, vm); got != `DOCKER_STORAGE_OPTIONS="--storage-driver overlay2"` {
			t.Errorf("docker-storage %q, want overlay2", got)
		}
		storageSetup(t, vm, "--reset")
		if got := storageOutput(t, vm); got != "" {
			t.Errorf("output after --reset: %q", got)
		}
	})
	t.Run("009 symlinked DEVS", func(t *testing.T) {
		defer clean(t)
		link := sh(t, vm, `for l in /dev/disk/by-path/*; do [ "$(readlink -f "$l")" = /dev/vdb ] && { echo "$l"; break; }; done`)
		if link == "" {
			t.Fatalf("no /dev/disk/by-path link to vdb:\n%s", sh(t, vm, "ls -l /dev/disk/by-path/"))
		}
		writeStorageConfig(t, vm, append(dm, "DEVS="+link)...)
		storageSetup(t, vm)
		check001(t)
	})
	t.Run("015 partition refused", func(t *testing.T) {
		defer clean(t)
		sh(t, vm, "echo ',1G' | sfdisk -q /dev/vdb && udevadm settle")
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdb1")...)
		expectRefused(t, vm, "/dev/vdb1: Partition specification unsupported at this time.")
		if got := sh(t, vm, "vgs --noheadings -o vg_name"); got != "" {
			t.Errorf("VGs %q after a refused run", got)
		}
	})
	t.Run("016 GPT over 2 TiB", func(t *testing.T) {
		defer clean(t)
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdd")...)
		storageSetup(t, vm)
		check001(t)
		if got := sh(t, vm, "sfdisk --dump /dev/vdd"); !strings.Contains(got, "label: gpt") {
			t.Errorf("3T disk partitioned as:\n%s\nwant label: gpt", got)
		}
		if got := sh(t, vm, "sfdisk --dump /dev/vdb 2>/dev/null | grep label: || true"); got != "" {
			t.Errorf("vdb touched: %q", got)
		}
	})
	t.Run("017/018 driver switch", func(t *testing.T) {
		defer clean(t)
		writeStorageConfig(t, vm, append(dm, "DEVS=/dev/vdb")...)
		storageSetup(t, vm)
		dmOut := storageOutput(t, vm)
		writeStorageConfig(t, vm, "STORAGE_DRIVER=overlay2", "VG=css-test-foo", "CONTAINER_ROOT_LV_NAME=", "CONTAINER_ROOT_LV_MOUNT_PATH=")
		storageSetup(t, vm)
		if got := storageOutput(t, vm); got != dmOut {
			t.Errorf("after switching to overlay2 the output is %q, want the devicemapper one kept %q", got, dmOut)
		}
		storageSetup(t, vm, "--reset")
		if _, ok := guestLVs(t, vm, "css-test-foo")["docker-pool"]; ok {
			t.Error("docker-pool left after --reset")
		}
		if got := storageOutput(t, vm); got != "" {
			t.Errorf("output after --reset: %q", got)
		}
	})
	// Last: it reboots the guest and leaves the storage in place.
	t.Run("012 container root LV survives reboot", func(t *testing.T) {
		writeStorageConfig(t, vm, "DEVS=/dev/vdc", "VG=docker-vg")
		storageSetup(t, vm)
		checkRootLVMount(t, vm)
		rebootGuest(t, vm)
		waitReady(t, vm)
		waitUnit(t, vm, "hostd.service")
		checkRootLVMount(t, vm)
		if got := sh(t, vm, "ls -A /var/lib/hostd | grep -v lost+found | wc -l"); got == "0" {
			t.Errorf("hostd's engine wrote nothing to the volume after the reboot")
		}
	})
}
