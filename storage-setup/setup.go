package storagesetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/growpart"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Setup carves container storage as docker-storage-setup did. Root is "/"
// on a host and a test tree in tests; Runner runs every external program.
type Setup struct {
	Root   fsroot.Root
	Runner run.Runner
	Log    *slog.Logger
	Config Config
}

// ErrRefused wraps the refusals that protect data: a partition given as a
// device, a disk with signatures, a disk partitioned by someone else.
var ErrRefused = errors.New("refused")

// host is what Run learns about the machine before changing it.
type host struct {
	rootDev string   // source of the / mount
	rootVG  string   // its VG when root is on LVM
	rootPVs []string // that VG's PVs
	pvs     []pv
	vgs     map[string]vgInfo
	vg      string // the VG to use: VG, else rootVG
}

func (s Setup) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s Setup) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return s.Runner.Run(ctx, run.Cmd{Name: name, Args: args})
}

// Run brings storage to the state the configuration describes. It follows
// run_docker_compatibility_code in container-storage-setup.sh: devices and
// VG, root growth, then the driver's storage and the container root volume.
// A second run with the same configuration only reads.
func (s Setup) Run(ctx context.Context) error {
	c := s.Config
	h, err := s.inspect(ctx)
	if err != nil {
		return err
	}
	if c.StorageDriver != "" && h.vg != "" {
		if err := s.checkRootLVTarget(c); err != nil {
			return err
		}
	}
	if len(c.Devs) > 0 {
		if h.vg == "" {
			return fmt.Errorf("DEVS is set but there is no volume group to add them to: set VG (the root filesystem is not on LVM)")
		}
		if err := s.partitionDisksCreateVG(ctx, h); err != nil {
			return err
		}
	}
	if err := s.growRoot(ctx, h); err != nil {
		return err
	}
	current, err := s.readCurrentOptions()
	if err != nil {
		return err
	}
	if isOldDataMetaMode(current) {
		return fmt.Errorf("Old mode of passing data and metadata logical volumes to docker is not supported. Exiting.")
	}
	if c.StorageDriver == "" {
		s.log().Info("STORAGE_DRIVER not set, no storage will be configured. You must specify STORAGE_DRIVER if you want to configure storage.")
		return nil
	}
	was, ok := existingDriver(current)
	if !ok {
		return fmt.Errorf("Failed to determine existing storage driver from %s", OutputFile)
	}
	if was != "" && was != c.StorageDriver {
		return s.keepOtherDriver(ctx, was, current)
	}
	c.VG = h.vg
	// Without a VG (no DEVS, root not on LVM) there is nothing to carve: the
	// engine's storage stays on the root filesystem. devicemapper cannot do
	// without a pool and says so in setupThinPool.
	if c.wantsPool() && (c.VG != "" || c.StorageDriver == "devicemapper") {
		if err := s.setupThinPool(ctx, c, current); err != nil {
			return err
		}
	}
	if c.StorageDriver != "devicemapper" {
		if err := s.writeOutput(c); err != nil {
			return err
		}
	}
	return s.setupRootLV(ctx, c)
}

// keepOtherDriver handles a STORAGE_DRIVER that differs from the one in the
// output file. The original refused ("Storage is already configured with
// ... driver"); after Atomic Host switched its default to overlay2, an
// upgraded host must still come up on its existing thin pool (tests
// 017-test-storage-driver-change-to-overlay2-in-atomic.sh and 018), so a
// devicemapper setup is kept and waited for, and only --reset changes it.
func (s Setup) keepOtherDriver(ctx context.Context, was, current string) error {
	msg := fmt.Sprintf("Storage is already configured with %s driver. Can't configure it with %s driver. To override, remove %s and retry.", was, s.Config.StorageDriver, OutputFile)
	if was != "devicemapper" {
		return errors.New(msg)
	}
	s.log().Info(msg + " Keeping the existing thin pool.")
	tpool := configuredThinPool(current)
	if tpool == "" {
		return nil
	}
	return s.waitConfiguredPool(ctx, tpool, "")
}

// inspect reads the root mount, PVs and VGs.
func (s Setup) inspect(ctx context.Context) (*host, error) {
	h := &host{}
	h.rootDev = s.rootSource()
	if looksLikeLV(h.rootDev) {
		rep, err := lvmQuery(ctx, s.Runner, "lvs", "-o", "vg_name", h.rootDev)
		if err != nil {
			s.log().Info("Volume group backing root filesystem could not be determined", "device", h.rootDev, "err", err)
		}
		for _, part := range rep.Report {
			for _, row := range part.LV {
				h.rootVG = strings.TrimSpace(row["vg_name"])
			}
		}
	}
	var err error
	if len(s.Config.Devs) > 0 || h.rootVG != "" {
		if h.pvs, err = listPVs(ctx, s.Runner); err != nil {
			return nil, err
		}
	}
	for _, p := range h.pvs {
		if h.rootVG != "" && p.VG == h.rootVG {
			h.rootPVs = append(h.rootPVs, p.Name)
		}
	}
	h.vg = s.Config.VG
	if h.vg == "" {
		h.vg = h.rootVG
	}
	// Without a volume group to use there is nothing to list: a host with
	// its storage on the root filesystem never scans the disks for LVM.
	if h.vg != "" {
		if h.vgs, err = listVGs(ctx, s.Runner); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// looksLikeLV: only device-mapper sources can be logical volumes, so other
// roots (Bulkhead's own ext4 partition) are not asked about.
func looksLikeLV(dev string) bool {
	return strings.HasPrefix(dev, "/dev/mapper/") || strings.HasPrefix(dev, "/dev/dm-") ||
		(strings.HasPrefix(dev, "/dev/") && strings.Count(dev, "/") == 3)
}

// mounts reads the Root's /proc/mounts as (source, target) pairs.
func (s Setup) mounts() [][2]string {
	data, err := os.ReadFile(s.Root.Join("/proc/mounts"))
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			out = append(out, [2]string{unescapeMount(f[0]), unescapeMount(f[1])})
		}
	}
	return out
}

// unescapeMount decodes the octal escapes /proc/mounts uses for spaces etc.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// rootSource is the device mounted on / (the original read /proc/mounts
// with awk, skipping "rootfs").
func (s Setup) rootSource() string {
	src := ""
	for _, m := range s.mounts() {
		if m[1] == "/" && m[0] != "rootfs" {
			src = m[0]
		}
	}
	return src
}

func (s Setup) isMounted(target string) bool {
	for _, m := range s.mounts() {
		if m[1] == target {
			return true
		}
	}
	return false
}

// partitionDisksCreateVG is partition_disks_create_vg: resolve DEVS, skip
// disks already in the VG, refuse partitioned or signed disks unless
// WIPE_SIGNATURES=true, then partition, pvcreate and vgcreate/vgextend.
func (s Setup) partitionDisksCreateVG(ctx context.Context, h *host) error {
	c := s.Config
	var fresh []blockDev
	for _, name := range c.Devs {
		dev, err := s.canonicalDevice(ctx, name)
		if err != nil {
			return err
		}
		bd, err := lsblk(ctx, s.Runner, dev)
		if err != nil {
			return err
		}
		if bd.Type == "part" {
			return fmt.Errorf("%s: Partition specification unsupported at this time.: %w", dev, ErrRefused)
		}
		part := bd.firstPartition()
		if part != "" && pvInVG(h.pvs, part, h.vg) {
			s.log().Info(fmt.Sprintf("Device %s is already partitioned and is part of volume group %s", dev, h.vg), "device", dev)
			continue
		}
		// Not even WIPE_SIGNATURES=true takes a disk that carries a live
		// volume group: wiping it would break that VG, not free the disk.
		for _, child := range append([]blockDev{{Name: dev}}, bd.Children...) {
			for _, p := range h.pvs {
				if p.Name == child.Name && p.VG != "" && p.VG != h.vg {
					return fmt.Errorf("Device %s has %s in volume group %s; remove it from %s first: %w", dev, child.Name, p.VG, p.VG, ErrRefused)
				}
			}
		}
		// With WIPE_SIGNATURES=true a partitioned disk is taken as new: its
		// signatures, partition table included, are wiped below.
		if part != "" && !c.WipeSignatures {
			return fmt.Errorf("Device %s is already partitioned and cannot be added to volume group %s: %w", dev, h.vg, ErrRefused)
		}
		bd.Name = dev
		fresh = append(fresh, bd)
	}
	if len(fresh) == 0 {
		return nil
	}
	for _, bd := range fresh {
		if err := s.checkWipeSignatures(ctx, bd.Name); err != nil {
			return err
		}
	}
	var pvsNew []string
	for _, bd := range fresh {
		part, err := s.createPartition(ctx, bd)
		if err != nil {
			return err
		}
		// "By now we have ownership of disk": stray signatures inside the
		// new partition are wiped, as the original does.
		if _, err := s.run(ctx, "wipefs", "-f", "-a", part); err != nil {
			return fmt.Errorf("wiping signatures on %s: %w", part, err)
		}
		if _, err := s.run(ctx, "pvcreate", part); err != nil {
			return fmt.Errorf("creating physical volume on %s: %w", part, err)
		}
		pvsNew = append(pvsNew, part)
	}
	if _, ok := h.vgs[h.vg]; ok {
		if _, err := s.run(ctx, "vgextend", append([]string{h.vg}, pvsNew...)...); err != nil {
			return fmt.Errorf("extending volume group %s with %s: %w", h.vg, strings.Join(pvsNew, " "), err)
		}
	} else if _, err := s.run(ctx, "vgcreate", append([]string{h.vg}, pvsNew...)...); err != nil {
		return fmt.Errorf("creating volume group %s on %s: %w", h.vg, strings.Join(pvsNew, " "), err)
	}
	return nil
}

func pvInVG(pvs []pv, name, vg string) bool {
	for _, p := range pvs {
		if p.Name == name && p.VG == vg {
			return true
		}
	}
	return false
}

// canonicalDevice is canonicalize_block_devs_compat: follow a symlink, take
// a bare name as /dev/NAME, insist on a block device. Devices that are not
// there yet are waited for up to DEVICE_WAIT_TIMEOUT (cloud disks attach
// late; the original only waited for partitions and pools).
func (s Setup) canonicalDevice(ctx context.Context, name string) (string, error) {
	p := name
	if !strings.HasPrefix(p, "/") {
		p = "/dev/" + p
	}
	if err := waitFor(ctx, s.Root, p, s.Config.DeviceWaitTimeout); err != nil && !errors.Is(err, errTimeout) {
		return "", fmt.Errorf("waiting for device %s: %w", p, err)
	}
	dev, err := resolveInRoot(s.Root, p)
	if err != nil || !isBlockDevice(s.Root, dev) {
		return "", fmt.Errorf("%s is not a valid block device.", p)
	}
	return dev, nil
}

// checkWipeSignatures is check_wipe_block_dev_sig: any signature refuses the
// disk unless WIPE_SIGNATURES=true, which wipes them all.
func (s Setup) checkWipeSignatures(ctx context.Context, dev string) error {
	out, err := s.run(ctx, "wipefs", "-p", dev)
	if err != nil {
		return fmt.Errorf("checking signatures on device %s: %w", dev, err)
	}
	sigs := parseWipefs(string(out))
	if len(sigs) == 0 {
		return nil
	}
	if s.Config.WipeSignatures {
		s.log().Info(fmt.Sprintf("Wipe Signatures is set to true. Any signatures on %s will be wiped.", dev), "device", dev)
		if _, err := s.run(ctx, "wipefs", "-a", dev); err != nil {
			return fmt.Errorf("wiping signatures on device %s: %w", dev, err)
		}
		return nil
	}
	sig := sigs[0]
	return fmt.Errorf("Found %s signature on device %s at offset %s. Wipe signatures using wipefs or use WIPE_SIGNATURES=true and retry.: %w", sig.Type, dev, sig.Offset, ErrRefused)
}

// createPartition writes one LVM partition over the disk with sfdisk
// (util-linux, always present, unlike parted), waits for udev and for the
// partition node, and returns the partition's device.
func (s Setup) createPartition(ctx context.Context, bd blockDev) (string, error) {
	dev := bd.Name
	script := partitionScript(bd.bytes())
	if _, err := s.Runner.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{dev}, Stdin: strings.NewReader(script)}); err != nil {
		return "", fmt.Errorf("partitioning %s: %w", dev, err)
	}
	if _, err := s.run(ctx, "udevadm", "settle"); err != nil {
		return "", fmt.Errorf("udevadm settle after partition creation on %s: %w", dev, err)
	}
	after, err := lsblk(ctx, s.Runner, dev)
	if err != nil {
		return "", err
	}
	part := after.firstPartition()
	if part == "" {
		return "", fmt.Errorf("partitioning %s: no partition appeared", dev)
	}
	if err := waitFor(ctx, s.Root, part, s.Config.DeviceWaitTimeout); err != nil {
		return "", fmt.Errorf("Partition device %s is not available: %w", part, err)
	}
	return part, nil
}

// growRoot is grow_root_pvs and grow_root_lv_fs: only for a root on LVM.
func (s Setup) growRoot(ctx context.Context, h *host) error {
	c := s.Config
	if c.GrowPart && len(h.rootPVs) > 0 {
		for _, p := range h.rootPVs {
			// A PV on a whole disk has no partition to grow, only the PV.
			if disk, num, ok := splitPartition(p); ok {
				if _, err := growpart.Grow(ctx, s.Runner, disk, num); err != nil {
					return err
				}
			}
			if _, err := s.run(ctx, "pvresize", p); err != nil {
				return fmt.Errorf("resizing physical volume %s: %w", p, err)
			}
		}
	}
	if h.rootVG != "" && c.RootSize != "" {
		b, _ := parseBytes(c.RootSize)
		if _, err := s.run(ctx, "lvextend", "-r", "-L", lvmSize(b), h.rootDev); err != nil {
			// The original: "TODO: Error checking if specified size is <=
			// current size" and "|| true".
			s.log().Info("lvextend of the root volume did nothing", "device", h.rootDev, "err", err)
		}
	}
	return nil
}

func (s Setup) readCurrentOptions() (string, error) {
	data, err := os.ReadFile(s.Root.Join(OutputFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", OutputFile, err)
	}
	return currentOptions(string(data)), nil
}

// writeOutput writes /etc/sysconfig/docker-storage atomically, and only when
// its content changes, so a re-run touches nothing.
func (s Setup) writeOutput(c Config) error {
	return s.writeIfChanged(OutputFile, []byte(storageOptions(c)), 0o644)
}

func (s Setup) writeIfChanged(name string, data []byte, perm os.FileMode) error {
	p := s.Root.Join(name)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	s.log().Info("writing "+name, "file", name)
	return fsroot.WriteFile(p, data, perm)
}

// waitConfiguredPool checks that a pool named in the output file is ours and
// waits for its device, as setup_lvm_thin_pool_compat does.
func (s Setup) waitConfiguredPool(ctx context.Context, tpool, pool string) error {
	s.log().Info(fmt.Sprintf("Found an already configured thin pool %s in %s", tpool, OutputFile))
	name, ok := strings.CutPrefix(tpool, "/dev/mapper/")
	_, lvName, split := splitDMName(name)
	if !ok || !split || (pool != "" && lvName != pool) {
		return fmt.Errorf("Thin pool %s does not seem to be managed by container-storage-setup. Exiting.", tpool)
	}
	if err := waitFor(ctx, s.Root, tpool, s.Config.DeviceWaitTimeout); err != nil {
		return fmt.Errorf("Already configured thin pool %s is not available. If thin pool exists and is taking longer to activate, set DEVICE_WAIT_TIMEOUT to a higher value and retry. If thin pool does not exist any more, remove %s and retry: %w", tpool, OutputFile, err)
	}
	return nil
}

// setupThinPool is setup_lvm_thin_pool_compat plus the autoextend profile.
func (s Setup) setupThinPool(ctx context.Context, c Config, current string) error {
	if tpool := configuredThinPool(current); tpool != "" {
		if err := s.waitConfiguredPool(ctx, tpool, c.ContainerThinPool); err != nil {
			return err
		}
	}
	if c.VG == "" {
		return fmt.Errorf("No valid volume group found. Exiting.")
	}
	vgs, err := listVGs(ctx, s.Runner)
	if err != nil {
		return err
	}
	vg, ok := vgs[c.VG]
	if !ok {
		return fmt.Errorf("No valid volume group found. Exiting. (volume group %s does not exist)", c.VG)
	}
	lvs, err := listLVs(ctx, s.Runner, c.VG)
	if err != nil {
		return err
	}
	pool, exists := lvs[c.ContainerThinPool]
	if exists && !pool.isThinPool() {
		return fmt.Errorf("logical volume %s/%s exists and is not a thin pool", c.VG, c.ContainerThinPool)
	}
	if !exists {
		if err := s.createThinPool(ctx, c, vg); err != nil {
			return err
		}
	}
	if c.StorageDriver == "devicemapper" {
		if err := s.writeOutput(c); err != nil {
			return err
		}
	}
	return s.setAutoExtend(ctx, c, pool.Profile)
}

// createThinPool is create_lvm_thin_pool with check_min_data_size_condition.
func (s Setup) createThinPool(ctx context.Context, c Config, vg vgInfo) error {
	if c.StorageDriver == "devicemapper" {
		// check_docker_storage_metadata: docker's old devicemapper metadata
		// would not match a new pool.
		if _, err := os.Stat(s.Root.Join("/var/lib/docker/devicemapper/metadata")); err == nil {
			return fmt.Errorf("Docker has been previously configured for use with devicemapper graph driver. Not creating a new thin pool as existing docker metadata will fail to work with it. Manual cleanup is required before this will succeed.")
		}
	}
	data, err := parseDataSize(c.DataSize)
	if err != nil {
		return fmt.Errorf("DATA_SIZE value %s is invalid: %w", c.DataSize, err)
	}
	if c.MinDataSize != "" {
		min, err := parseBytes(c.MinDataSize)
		if err != nil {
			return fmt.Errorf("MIN_DATA_SIZE value %s is invalid: %w", c.MinDataSize, err)
		}
		if vg.Free < min {
			return fmt.Errorf("There is not enough free space in volume group %s to create data volume of size MIN_DATA_SIZE=%s.", c.VG, c.MinDataSize)
		}
		if data.resolve(vg.Size, vg.Free) < min {
			s.log().Info(fmt.Sprintf("DATA_SIZE=%s is smaller than MIN_DATA_SIZE=%s. Will create data volume of size specified by MIN_DATA_SIZE.", c.DataSize, c.MinDataSize))
			data = dataSize{raw: c.MinDataSize, bytes: min}
		}
	}
	// "Reserve 0.1% of the free space in the VG for docker metadata": the
	// VG size in 512-byte sectors / 1000 + 1, in sectors.
	meta := strconv.FormatUint(vg.Size/512/1000+1, 10) + "s"
	if c.PoolMetaSize != "" {
		b, _ := parseBytes(c.PoolMetaSize)
		meta = lvmSize(b)
	}
	args := []string{"-y", "--type", "thin-pool", "--zero", "n"}
	if c.ChunkSize != "" {
		b, _ := parseBytes(c.ChunkSize)
		args = append(args, "-c", lvmSize(b))
	}
	args = append(args, "--poolmetadatasize", meta)
	args = append(args, data.lvmArgs()...)
	args = append(args, "-n", c.ContainerThinPool, c.VG)
	if _, err := s.run(ctx, "lvcreate", args...); err != nil {
		return fmt.Errorf("creating thin pool %s/%s: %w", c.VG, c.ContainerThinPool, err)
	}
	return nil
}

// setAutoExtend is enable_auto_pool_extension / disable_auto_pool_extension,
// touching the pool only when its profile is not already the wanted one.
func (s Setup) setAutoExtend(ctx context.Context, c Config, attached string) error {
	name := profileName(c.VG, c.ContainerThinPool)
	file := path.Join(ProfileDir, name+".profile")
	target := c.VG + "/" + c.ContainerThinPool
	if c.AutoExtendPool {
		if err := s.writeIfChanged(file, []byte(profileText(c.PoolAutoextendThreshold, c.PoolAutoextendPercent)), 0o644); err != nil {
			return err
		}
		if attached != name {
			if _, err := s.run(ctx, "lvchange", "--metadataprofile", name, target); err != nil {
				return fmt.Errorf("attaching profile %s to %s: %w", name, target, err)
			}
		}
		return nil
	}
	if attached != "" {
		if _, err := s.run(ctx, "lvchange", "--detachprofile", target); err != nil {
			return fmt.Errorf("detaching profile from %s: %w", target, err)
		}
	}
	if err := os.Remove(s.Root.Join(file)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", file, err)
	}
	return nil
}

// setupRootLV is setup_extra_lv_fs: a volume for CONTAINER_ROOT_LV_MOUNT_PATH,
// XFS, mounted by a systemd mount unit so it comes back after a reboot.
func (s Setup) setupRootLV(ctx context.Context, c Config) error {
	if !c.rootLVWanted() {
		return nil
	}
	if c.VG == "" {
		s.log().Info("no volume group: " + c.ContainerRootLVMountPath + " stays on the root filesystem")
		return nil
	}
	mp := c.ContainerRootLVMountPath
	if err := os.MkdirAll(s.Root.Join(mp), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", mp, err)
	}
	lvs, err := listLVs(ctx, s.Runner, c.VG)
	if err != nil {
		return err
	}
	dev := "/dev/" + c.VG + "/" + c.ContainerRootLVName
	mounted := s.isMounted(mp)
	existing, ok := lvs[c.ContainerRootLVName]
	grown := false
	if ok {
		if grown, err = s.growRootLV(ctx, c, existing); err != nil {
			return err
		}
	}
	if !ok {
		if err := s.createRootLV(ctx, c); err != nil {
			return err
		}
		if err := s.mkfs(ctx, c, dev); err != nil {
			return err
		}
	} else if !mounted {
		// A run cut short between lvcreate and mkfs leaves an empty volume;
		// anything else on it is kept.
		fsType, err := s.blkidType(ctx, dev)
		if err != nil {
			return err
		}
		switch fsType {
		case "xfs":
		case "":
			if err := s.mkfs(ctx, c, dev); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s holds a %s filesystem, not xfs: %w", dev, fsType, ErrRefused)
		}
	}
	unit := unitName(mp)
	unitFile := path.Join(UnitDir, unit)
	old, _ := os.ReadFile(s.Root.Join(unitFile))
	text := mountUnit(c.VG, c.ContainerRootLVName, mp)
	_, linkErr := os.Lstat(s.Root.Join(UnitDir, "hostd.service.requires", unit))
	if string(old) != text || linkErr != nil {
		if err := s.writeIfChanged(unitFile, []byte(text), 0o644); err != nil {
			return err
		}
		if _, err := s.run(ctx, "systemctl", "daemon-reload"); err != nil {
			return fmt.Errorf("reloading systemd for %s: %w", unit, err)
		}
		if _, err := s.run(ctx, "systemctl", "enable", unit); err != nil {
			return fmt.Errorf("enabling %s: %w", unit, err)
		}
	}
	if !mounted {
		if _, err := s.run(ctx, "systemctl", "start", unit); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", dev, mp, err)
		}
	}
	if grown {
		// XFS grows online, on the mounted filesystem only.
		if _, err := s.run(ctx, "xfs_growfs", mp); err != nil {
			return fmt.Errorf("growing the XFS on %s to its volume's new size: %w", mp, err)
		}
	}
	return nil
}

// growRootLV extends an existing thin container volume whose size is a
// percentage of the VG when the VG has grown (a disk added to DEVS), so
// the engine's filesystem follows the pool; reports whether it did. A
// plain LV, a fixed size already met, or a smaller target (volumes never
// shrink) leaves it as it is.
func (s Setup) growRootLV(ctx context.Context, c Config, l lv) (bool, error) {
	if !c.rootLVThin() {
		return false, nil
	}
	want, err := s.rootLVBytes(ctx, c)
	if err != nil {
		return false, err
	}
	if want <= l.Size {
		return false, nil
	}
	target := c.VG + "/" + c.ContainerRootLVName
	s.log().Info(fmt.Sprintf("growing %s from %s to %s (CONTAINER_ROOT_LV_SIZE=%s)", target, lvmSize(l.Size), lvmSize(want), c.ContainerRootLVSize))
	if _, err := s.run(ctx, "lvextend", "-L", lvmSize(want), target); err != nil {
		return false, fmt.Errorf("growing %s to %s: %w", target, lvmSize(want), err)
	}
	return true, nil
}

// rootLVBytes is the container volume's size in bytes for a thin volume: a
// percentage is taken of the VG's size (the pool autoextends into the VG),
// rounded down to whole MiB.
func (s Setup) rootLVBytes(ctx context.Context, c Config) (uint64, error) {
	size, err := parseDataSize(c.ContainerRootLVSize)
	if err != nil {
		return 0, fmt.Errorf("CONTAINER_ROOT_LV_SIZE value %s is invalid: %w", c.ContainerRootLVSize, err)
	}
	if size.percent == 0 {
		return size.bytes, nil
	}
	vgs, err := listVGs(ctx, s.Runner)
	if err != nil {
		return 0, err
	}
	vg := vgs[c.VG]
	return dataSize{percent: size.percent, of: "VG"}.resolve(vg.Size, vg.Free) &^ (1<<20 - 1), nil
}

// checkRootLVTarget refuses to put the container volume on a mount point
// that holds data: hostd may have run before with its engine on the root
// filesystem (no DEVS then), and the volume mounted over that would hide
// every image and container. Checked before anything is made.
func (s Setup) checkRootLVTarget(c Config) error {
	mp := c.ContainerRootLVMountPath
	if !c.rootLVWanted() || s.isMounted(mp) {
		return nil
	}
	f, err := firstFile(s.Root.Join(mp))
	if err != nil || f == "" {
		return err
	}
	return fmt.Errorf("%s already holds data on the root filesystem (%s): the container volume would hide it; move it away (or empty %s) and run again: %w",
		mp, path.Join(mp, f), mp, ErrRefused)
}

// firstFile returns the first entry under dir that is not a directory
// (relative to dir), "" when dir holds only (empty) directories.
func firstFile(dir string) (string, error) {
	found := ""
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			found, _ = filepath.Rel(dir, p)
			return fs.SkipAll
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("checking %s for data: %w", dir, err)
	}
	return found, nil
}

// createRootLV makes the container root volume: a thin volume in the pool
// (Bulkhead's default) or a plain LV as the original made (create_lv). A
// thin volume's size is virtual: a percentage is taken of the VG's size,
// since the pool autoextends into the VG.
func (s Setup) createRootLV(ctx context.Context, c Config) error {
	size, err := parseDataSize(c.ContainerRootLVSize)
	if err != nil {
		return fmt.Errorf("CONTAINER_ROOT_LV_SIZE value %s is invalid: %w", c.ContainerRootLVSize, err)
	}
	var args []string
	if c.rootLVThin() {
		b, err := s.rootLVBytes(ctx, c)
		if err != nil {
			return err
		}
		args = []string{"-y", "--type", "thin", "-V", lvmSize(b), "--thinpool", c.ContainerThinPool, "-n", c.ContainerRootLVName, c.VG}
	} else {
		args = append(append([]string{"-y"}, size.lvmArgs()...), "-n", c.ContainerRootLVName, c.VG)
	}
	if _, err := s.run(ctx, "lvcreate", args...); err != nil {
		return fmt.Errorf("Failed to create volume %s of size %s: %w", c.ContainerRootLVName, c.ContainerRootLVSize, err)
	}
	return nil
}

// mkfs makes XFS; overlay and overlay2 need d_type, which XFS has only with
// ftype=1 (the default since xfsprogs 4.x, asked for explicitly).
func (s Setup) mkfs(ctx context.Context, c Config, dev string) error {
	args := []string{}
	if c.StorageDriver == "overlay" || c.StorageDriver == "overlay2" {
		args = append(args, "-n", "ftype=1")
	}
	if _, err := s.run(ctx, "mkfs.xfs", append(args, dev)...); err != nil {
		return fmt.Errorf("Failed to create filesystem on %s: %w", dev, err)
	}
	return nil
}

// blkidType returns the filesystem type on dev, "" when there is none
// (blkid exits 2 when it finds nothing).
func (s Setup) blkidType(ctx context.Context, dev string) (string, error) {
	out, err := s.run(ctx, "blkid", "-o", "value", "-s", "TYPE", dev)
	if run.ExitCode(err) == 2 {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("probing filesystem on %s: %w", dev, err)
	}
	return strings.TrimSpace(string(out)), nil
}
