package storagesetup

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

const (
	gib = uint64(1) << 30
	tib = uint64(1) << 40
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// scenario loads cfgText as /etc/sysconfig/docker-storage-setup in h's tree
// and runs storage setup (or reset) there.
func (h *fakeHost) setup(t *testing.T, cfgText string, reset bool) error {
	t.Helper()
	h.writeFile(DockerSetupFile, cfgText)
	cfg, err := Load(h.root, "", quiet)
	if err != nil {
		t.Fatalf("loading %q: %v", cfgText, err)
	}
	s := Setup{Root: h.root, Runner: h.rec, Log: quiet, Config: cfg}
	if reset {
		return s.Reset(context.Background())
	}
	return s.Run(context.Background())
}

func mustRun(t *testing.T, h *fakeHost, cfg string) {
	t.Helper()
	if err := h.setup(t, cfg, false); err != nil {
		t.Fatalf("run: %v\n%s", err, h.transcript())
	}
}

func mustReset(t *testing.T, h *fakeHost, cfg string) {
	t.Helper()
	if err := h.setup(t, cfg, true); err != nil {
		t.Fatalf("reset: %v\n%s", err, h.transcript())
	}
}

// The original's own test matrix (tests/0NN-*.sh) with the devicemapper
// driver it defaulted to and no container root volume.
const dmConfig = "STORAGE_DRIVER=devicemapper\nCONTAINER_ROOT_LV_NAME=\nCONTAINER_ROOT_LV_MOUNT_PATH=\n"

// 001-test-use-devs-to-create-thin-pool.sh
func TestScenarioDevsAndVG(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n")
	golden.Assert(t, "devs-vg.txt", []byte(h.transcript()))
	golden.Assert(t, "devs-vg.docker-storage", []byte(h.readFile(OutputFile)))
	golden.Assert(t, "devs-vg.profile", []byte(h.readFile(ProfileDir+"/docker-vg--docker-pool-extend.profile")))
	if got := h.lvs["docker-vg"]["docker-pool"]; got == nil || got.profile != "docker-vg--docker-pool-extend" {
		t.Errorf("got pool %+v, want a pool with the extend profile attached", got)
	}
}

// Re-running with the same configuration changes nothing.
func TestScenarioIdempotentSecondRun(t *testing.T) {
	for _, tc := range []struct{ name, cfg string }{
		{"devicemapper", dmConfig + "DEVS=/dev/vdb\nVG=docker-vg\n"},
		{"bulkhead-default", "DEVS=/dev/vdb\nVG=docker-vg\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.addDisk("/dev/vdb", 10*gib, "disk")
			mustRun(t, h, tc.cfg)
			out := h.readFile(OutputFile)
			h.log = nil
			mustRun(t, h, tc.cfg)
			if m := h.mutations(); len(m) != 0 {
				t.Errorf("second run changed things: %q", m)
			}
			golden.Assert(t, "idempotent-"+tc.name+".txt", []byte(h.transcript()))
			if got := h.readFile(OutputFile); got != out {
				t.Errorf("got %q, want %q", got, out)
			}
		})
	}
}

// 002-test-reject-disk-with-lvm-signature.sh
func TestScenarioPVSignatureRefused(t *testing.T) {
	h := newFakeHost(t)
	d := h.addDisk("/dev/vdb", 10*gib, "disk")
	d.sigs = []signature{{Offset: "0x218", UUID: "Vbq2b1-xxxx", Type: "LVM2_member"}}
	err := h.setup(t, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n", false)
	want := "Found LVM2_member signature on device /dev/vdb at offset 0x218. Wipe signatures using wipefs or use WIPE_SIGNATURES=true and retry."
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if m := h.mutations(); len(m) != 0 {
		t.Errorf("refused disk was touched: %q", m)
	}
	golden.Assert(t, "pv-signature-refused.txt", []byte(h.transcript()))
	if h.exists(OutputFile) {
		t.Errorf("%s written after a refusal", OutputFile)
	}
}

// 003-test-override-signature-wipes-existing-signatures.sh
func TestScenarioWipeSignatures(t *testing.T) {
	h := newFakeHost(t)
	d := h.addDisk("/dev/vdb", 10*gib, "disk")
	d.sigs = []signature{{Offset: "0x218", UUID: "Vbq2b1-xxxx", Type: "LVM2_member"}}
	mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\nWIPE_SIGNATURES=true\n")
	golden.Assert(t, "wipe-signatures.txt", []byte(h.transcript()))
	if h.lvs["docker-vg"]["docker-pool"] == nil {
		t.Error("no pool after WIPE_SIGNATURES=true")
	}
}

// 004-test-non-absolute-disk-name-support.sh
func TestScenarioBareDeviceName(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	mustRun(t, h, dmConfig+"DEVS=vdb\nVG=docker-vg\n")
	golden.Assert(t, "bare-name.txt", []byte(h.transcript()))
}

// 005-test-devmapper-cleanup.sh: --reset removes the pool and the output,
// keeps the VG and its PVs.
func TestScenarioReset(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	cfg := dmConfig + "DEVS=/dev/vdb\nVG=docker-vg\n"
	mustRun(t, h, cfg)
	h.log = nil
	mustReset(t, h, cfg)
	golden.Assert(t, "reset.txt", []byte(h.transcript()))
	if h.exists(OutputFile) || h.lvs["docker-vg"]["docker-pool"] != nil {
		t.Errorf("reset left output %v or pool %v", h.exists(OutputFile), h.lvs["docker-vg"]["docker-pool"])
	}
	if h.pvs["/dev/vdb1"] != "docker-vg" {
		t.Errorf("got PV in %q, want the VG kept", h.pvs["/dev/vdb1"])
	}
	if h.exists(ProfileDir + "/docker-vg--docker-pool-extend.profile") {
		t.Error("reset left the autoextend profile")
	}
}

// 006/008-test-overlay2-setup-cleanup.sh: overlay2 writes only the driver.
func TestScenarioOverlay2(t *testing.T) {
	h := newFakeHost(t)
	cfg := "STORAGE_DRIVER=overlay2\nCONTAINER_ROOT_LV_NAME=\nCONTAINER_ROOT_LV_MOUNT_PATH=\n"
	mustRun(t, h, cfg)
	golden.Assert(t, "overlay2.txt", []byte(h.transcript()))
	golden.Assert(t, "overlay2.docker-storage", []byte(h.readFile(OutputFile)))
	mustReset(t, h, cfg)
	if h.exists(OutputFile) {
		t.Error("reset left the output file")
	}
}

// 007-test-setting-extra-opts.sh
func TestScenarioExtraStorageOptions(t *testing.T) {
	for _, tc := range []struct{ name, extra string }{
		{"basesize", "--storage-opt dm.basesize=30G"},
		{"dm-fs", "--storage-opt dm.fs=ext4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.addDisk("/dev/vdb", 10*gib, "disk")
			mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\nEXTRA_STORAGE_OPTIONS=\""+tc.extra+"\"\n")
			golden.Assert(t, "extra-options-"+tc.name+".docker-storage", []byte(h.readFile(OutputFile)))
		})
	}
}

// 009-test-follow-symlinked-devices.sh
func TestScenarioSymlinkedDevs(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	if err := mkdirSymlink(h, "../../vdb", "/dev/disk/by-id/virtio-data1"); err != nil {
		t.Fatal(err)
	}
	mustRun(t, h, dmConfig+"DEVS=/dev/disk/by-id/virtio-data1\nVG=docker-vg\n")
	golden.Assert(t, "symlinked-devs.txt", []byte(h.transcript()))
}

// 012/013-test-*-container-root-volume: Bulkhead's default mode, a thin
// container root volume in the pool mounted on /var/lib/hostd, which comes
// back after a reboot and goes with --reset.
func TestScenarioContainerRootLV(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	cfg := "DEVS=/dev/vdb\nVG=docker-vg\n"
	mustRun(t, h, cfg)
	golden.Assert(t, "container-root-lv.txt", []byte(h.transcript()))
	golden.Assert(t, "container-root-lv.docker-storage", []byte(h.readFile(OutputFile)))
	golden.Assert(t, "var-lib-hostd.mount", []byte(h.readFile(UnitDir+"/var-lib-hostd.mount")))
	if got := h.mnt["/var/lib/hostd"]; got != "/dev/docker-vg/container-root-lv" {
		t.Errorf("got %q mounted on /var/lib/hostd, want the container root LV", got)
	}

	h.reboot()
	mustRun(t, h, cfg)
	golden.Assert(t, "container-root-lv-after-reboot.txt", []byte(h.transcript()))

	h.log = nil
	mustReset(t, h, cfg)
	golden.Assert(t, "container-root-lv-reset.txt", []byte(h.transcript()))
	if h.exists(UnitDir+"/var-lib-hostd.mount") || len(h.lvs["docker-vg"]) != 0 || len(h.mnt) != 0 {
		t.Errorf("reset left unit %v, LVs %v, mounts %v", h.exists(UnitDir+"/var-lib-hostd.mount"), h.lvs["docker-vg"], h.mnt)
	}
}

// The original's plain LV (CONTAINER_ROOT_LV_THIN=no), and devicemapper
// with a root volume, where the volume is plain beside docker's pool.
func TestScenarioPlainRootLV(t *testing.T) {
	for _, tc := range []struct{ name, cfg string }{
		{"overlay2-plain", "DEVS=/dev/vdb\nVG=docker-vg\nCONTAINER_ROOT_LV_THIN=no\nCONTAINER_ROOT_LV_MOUNT_PATH=/var/lib/containers\n"},
		{"devicemapper-plain", "STORAGE_DRIVER=devicemapper\nDEVS=/dev/vdb\nVG=docker-vg\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.addDisk("/dev/vdb", 10*gib, "disk")
			mustRun(t, h, tc.cfg)
			golden.Assert(t, "plain-root-lv-"+tc.name+".txt", []byte(h.transcript()))
		})
	}
}

// 110/15-test-*: a partition given as a device is refused.
func TestScenarioPartitionRefused(t *testing.T) {
	h := newFakeHost(t)
	d := h.addDisk("/dev/vdb", 10*gib, "disk")
	h.addDisk("/dev/vdb1", 10*gib-1<<20, "part")
	d.parts = []string{"/dev/vdb1"}
	err := h.setup(t, dmConfig+"DEVS=/dev/vdb1\nVG=docker-vg\n", false)
	if err == nil || !strings.Contains(err.Error(), "/dev/vdb1: Partition specification unsupported at this time.") || !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want the partition refusal", err)
	}
	if m := h.mutations(); len(m) != 0 {
		t.Errorf("got %q, want nothing changed", m)
	}
}

// A disk someone else partitioned is refused unless WIPE_SIGNATURES=true.
func TestScenarioPartitionedDiskRefused(t *testing.T) {
	h := newFakeHost(t)
	d := h.addDisk("/dev/vdb", 10*gib, "disk")
	h.addDisk("/dev/vdb1", 10*gib-1<<20, "part")
	d.parts = []string{"/dev/vdb1"}
	err := h.setup(t, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n", false)
	want := "Device /dev/vdb is already partitioned and cannot be added to volume group docker-vg"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// 016-test-gpt-partition-table-creation-2tb.sh: a 3 TiB disk gets GPT.
func TestScenarioGPTOver2TiB(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 3*tib, "disk")
	mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n")
	golden.Assert(t, "gpt-3t.txt", []byte(h.transcript()))
	if !strings.Contains(h.transcript(), "  < label: gpt") {
		t.Error("got no GPT label for a 3 TiB disk")
	}
}

// 017/018: the driver changed to overlay2 after a devicemapper setup; the
// thin pool is kept and waited for, and --reset still removes it.
func TestScenarioDriverSwitch(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n")
	out := h.readFile(OutputFile)

	h.log = nil
	mustRun(t, h, "STORAGE_DRIVER=overlay2\n")
	if m := h.mutations(); len(m) != 0 {
		t.Errorf("driver switch changed things: %q", m)
	}
	if got := h.readFile(OutputFile); got != out {
		t.Errorf("got %q, want the devicemapper output kept", got)
	}

	h.log = nil
	mustReset(t, h, "STORAGE_DRIVER=overlay2\n")
	golden.Assert(t, "driver-switch-reset.txt", []byte(h.transcript()))
	if h.lvs["docker-vg"]["docker-pool"] != nil || h.exists(OutputFile) {
		t.Error("reset after the driver switch left the pool or the output")
	}

	// overlay2 -> devicemapper is refused as the original refused it.
	h2 := newFakeHost(t)
	mustRun(t, h2, "STORAGE_DRIVER=overlay2\nCONTAINER_ROOT_LV_NAME=\nCONTAINER_ROOT_LV_MOUNT_PATH=\n")
	err := h2.setup(t, "STORAGE_DRIVER=devicemapper\nVG=docker-vg\n", false)
	want := "Storage is already configured with overlay2 driver. Can't configure it with devicemapper driver. To override, remove /etc/sysconfig/docker-storage and retry."
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// No spare disk: container storage stays on the root filesystem.
func TestScenarioNoDevsRootFS(t *testing.T) {
	h := newFakeHost(t)
	mustRun(t, h, "")
	golden.Assert(t, "no-devs-root-fs.txt", []byte(h.transcript()))
	golden.Assert(t, "no-devs-root-fs.docker-storage", []byte(h.readFile(OutputFile)))
	if len(h.mnt) != 0 {
		t.Errorf("got mounts %v, want none", h.mnt)
	}
}

// DEVS without VG on a root that is not on LVM has nowhere to go.
func TestScenarioDevsWithoutVG(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	err := h.setup(t, "DEVS=vdb\n", false)
	if err == nil || !strings.Contains(err.Error(), "set VG") {
		t.Fatalf("got %v, want a request for VG", err)
	}
}

// GROWPART and ROOT_SIZE on a root that is on LVM.
func TestScenarioGrowPartLVMRoot(t *testing.T) {
	h := newFakeHost(t)
	h.rootSrc = "/dev/mapper/rootvg-root"
	h.addDisk("/dev/vda2", 20*gib, "part")
	h.pvs["/dev/vda2"] = "rootvg"
	h.lvs["rootvg"] = map[string]*fakeLV{"root": {attr: "-wi-ao----", size: 4 * gib}}
	h.writeMounts()
	mustRun(t, h, "GROWPART=true\nROOT_SIZE=8G\nCONTAINER_ROOT_LV_NAME=\nCONTAINER_ROOT_LV_MOUNT_PATH=\n")
	golden.Assert(t, "growpart-lvm-root.txt", []byte(h.transcript()))
}

func TestScenarioMinDataSize(t *testing.T) {
	t.Run("raised", func(t *testing.T) {
		h := newFakeHost(t)
		h.addDisk("/dev/vdb", 10*gib, "disk")
		mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\nDATA_SIZE=1%FREE\nMIN_DATA_SIZE=4G\n")
		if !strings.Contains(h.transcript(), "-L 4g -n docker-pool docker-vg") {
			t.Errorf("got %s, want DATA_SIZE raised to MIN_DATA_SIZE", h.transcript())
		}
	})
	t.Run("not enough space", func(t *testing.T) {
		h := newFakeHost(t)
		h.addDisk("/dev/vdb", 1*gib, "disk")
		err := h.setup(t, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n", false)
		want := "There is not enough free space in volume group docker-vg to create data volume of size MIN_DATA_SIZE=2G."
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
}

// AUTO_EXTEND_POOL=no detaches the profile the first run attached.
func TestScenarioAutoExtendOff(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n")
	h.log = nil
	mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\nAUTO_EXTEND_POOL=no\n")
	if got := h.mutations(); len(got) != 1 || got[0] != "lvchange --detachprofile docker-vg/docker-pool" {
		t.Errorf("got %q, want only the profile detached", got)
	}
	if h.exists(ProfileDir + "/docker-vg--docker-pool-extend.profile") {
		t.Error("profile file left behind")
	}
}

// A second disk added to DEVS later extends the VG.
func TestScenarioAddDisk(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	h.addDisk("/dev/nvme0n1", 10*gib, "disk")
	mustRun(t, h, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n")
	h.log = nil
	mustRun(t, h, dmConfig+"DEVS=\"/dev/vdb /dev/nvme0n1\"\nVG=docker-vg\n")
	golden.Assert(t, "add-disk.txt", []byte(h.transcript()))
}

// A disk added to DEVS grows the VG, the pool autoextends into it, and the
// container volume (40%FREE of the VG by default) and its XFS follow; a
// run with nothing added grows nothing.
func TestScenarioAddDiskGrowsContainerRootLV(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	h.addDisk("/dev/vdc", 10*gib, "disk")
	mustRun(t, h, "DEVS=/dev/vdb\nVG=docker-vg\n")
	before := h.lvs["docker-vg"]["container-root-lv"].size
	h.log = nil
	mustRun(t, h, "DEVS=/dev/vdb\nVG=docker-vg\n")
	if strings.Contains(h.transcript(), "lvextend -L") || strings.Contains(h.transcript(), "xfs_growfs") {
		t.Errorf("a second run with the same disks grew the volume:\n%s", h.transcript())
	}
	h.log = nil
	mustRun(t, h, "DEVS=\"/dev/vdb /dev/vdc\"\nVG=docker-vg\n")
	golden.Assert(t, "add-disk-grows-root-lv.txt", []byte(h.transcript()))
	after := h.lvs["docker-vg"]["container-root-lv"].size
	if after < before*19/10 {
		t.Errorf("container volume %d bytes after doubling the VG, was %d: want it grown with the VG", after, before)
	}
	tr := h.transcript()
	if g, x := strings.Index(tr, "lvextend -L"), strings.Index(tr, "xfs_growfs"); g < 0 || x < g {
		t.Errorf("want lvextend then xfs_growfs on the mounted volume:\n%s", tr)
	}
}

func TestScenarioMissingDevice(t *testing.T) {
	h := newFakeHost(t)
	err := h.setup(t, dmConfig+"DEVS=/dev/vdz\nVG=docker-vg\nDEVICE_WAIT_TIMEOUT=0\n", false)
	if err == nil || err.Error() != "/dev/vdz is not a valid block device." {
		t.Errorf("got %v, want the original's message", err)
	}
}

// A pool named in the output file that is not ours is not touched.
func TestScenarioForeignThinPool(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	h.writeFile(OutputFile, `DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper --storage-opt dm.thinpooldev=/dev/mapper/other-thin"`+"\n")
	err := h.setup(t, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n", false)
	want := "Thin pool /dev/mapper/other-thin does not seem to be managed by container-storage-setup. Exiting."
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestPoolUsage(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	mustRun(t, h, "DEVS=/dev/vdb\nVG=docker-vg\n")
	h.lvs["docker-vg"]["docker-pool"].data = "42.50"
	cfg, err := Load(h.root, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	u, err := PoolUsage(context.Background(), h.rec, cfg)
	if err != nil || u != (Usage{VG: "docker-vg", Pool: "docker-pool", DataPercent: 42.5, MetadataPercent: 10.55}) {
		t.Errorf("got %+v, %v", u, err)
	}
	if _, err := PoolUsage(context.Background(), h.rec, Defaults()); !errors.Is(err, ErrNoPool) {
		t.Errorf("got %v, want ErrNoPool without a VG", err)
	}
	cfg.ContainerThinPool = "nope"
	if _, err := PoolUsage(context.Background(), h.rec, cfg); !errors.Is(err, ErrNoPool) {
		t.Errorf("got %v, want ErrNoPool for a missing pool", err)
	}
}

// 116-test-storage-driver-nil-create-remove.sh: STORAGE_DRIVER="" still
// builds the VG from DEVS, then configures no storage and writes no output.
func TestScenarioEmptyDriver(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	mustRun(t, h, "STORAGE_DRIVER=\"\"\nDEVS=vdb\nVG=docker-vg\n")
	if h.pvs["/dev/vdb1"] != "docker-vg" || len(h.lvs["docker-vg"]) != 0 || h.exists(OutputFile) {
		t.Errorf("got PV in %q, LVs %v, output %v; want the VG only", h.pvs["/dev/vdb1"], h.lvs["docker-vg"], h.exists(OutputFile))
	}
}

// Refusals the original made before touching a pool.
func TestScenarioOldStateRefused(t *testing.T) {
	for _, tc := range []struct{ name, output, dir, want string }{
		{"old data/meta mode", `DOCKER_STORAGE_OPTIONS="--storage-opt dm.datadev=/dev/vg/data --storage-opt dm.metadatadev=/dev/vg/meta"`, "",
			"Old mode of passing data and metadata logical volumes to docker is not supported. Exiting."},
		{"docker devicemapper metadata", "", "/var/lib/docker/devicemapper/metadata/x",
			"Docker has been previously configured for use with devicemapper graph driver."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.addDisk("/dev/vdb", 10*gib, "disk")
			if tc.output != "" {
				h.writeFile(OutputFile, tc.output+"\n")
			}
			if tc.dir != "" {
				h.touch(tc.dir)
			}
			err := h.setup(t, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\n", false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if h.lvs["docker-vg"]["docker-pool"] != nil {
				t.Error("pool created despite the refusal")
			}
		})
	}
}

// WIPE_SIGNATURES=true does not reach into another live volume group.
func TestScenarioOtherVGRefusedEvenWithWipe(t *testing.T) {
	h := newFakeHost(t)
	d := h.addDisk("/dev/vdb", 10*gib, "disk")
	h.addDisk("/dev/vdb1", 10*gib-1<<20, "part")
	d.parts = []string{"/dev/vdb1"}
	h.pvs["/dev/vdb1"] = "data"
	h.lvs["data"] = map[string]*fakeLV{}
	err := h.setup(t, dmConfig+"DEVS=/dev/vdb\nVG=docker-vg\nWIPE_SIGNATURES=true\n", false)
	want := "Device /dev/vdb has /dev/vdb1 in volume group data; remove it from data first"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if m := h.mutations(); len(m) != 0 {
		t.Errorf("got %q, want nothing changed", m)
	}
}

// An engine that ran on the root filesystem before (hostd without DEVS)
// keeps its data in sight: the new volume is not made nor mounted over it,
// and the refusal names the path.
func TestScenarioRootLVOverEngineDataRefused(t *testing.T) {
	h := newFakeHost(t)
	h.addDisk("/dev/vdb", 10*gib, "disk")
	h.writeFile("/var/lib/hostd/containers/abc/container.json", "{}")
	err := h.setup(t, "DEVS=/dev/vdb\nVG=docker-vg\n", false)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "/var/lib/hostd/containers/abc/container.json") {
		t.Fatalf("got %v, want a refusal naming the engine's data", err)
	}
	if got, ok := h.mnt["/var/lib/hostd"]; ok {
		t.Errorf("%s was mounted over the engine's data", got)
	}
	if h.exists(UnitDir + "/var-lib-hostd.mount") {
		t.Errorf("the mount unit was written: the next boot would hide the data")
	}
	if len(h.lvs["docker-vg"]) != 0 {
		t.Errorf("volumes were made before the refusal: %v", h.lvs["docker-vg"])
	}
}
