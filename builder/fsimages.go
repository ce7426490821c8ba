package builder

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/fatstamp"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/etcmerge"
)

// biosModules go into GRUB's i386-pc core image, so that no module directory
// is needed on the ESP: everything grub.cfg uses.
var biosModules = []string{
	"biosdisk", "part_gpt", "part_msdos", "fat", "normal", "linux", "loadenv", "test", "echo",
	"serial", "terminal", "configfile", "search", "search_fs_uuid", "regexp", "sleep",
	"minicmd", "reboot", "halt", "cat", "ls", "gzio", "true",
	// entry.cfg reads the boot disk's PARTUUIDs
	"probe",
}

// bootloaders makes GRUB's BIOS core image with the tree's own grub-mkimage,
// so the bootloader matches the packages in the image. Its prefix is
// (,gpt2)/grub: the ESP on the disk the BIOS booted.
func (s *buildState) bootloaders(ctx context.Context) error {
	args := append([]string{"-O", "i386-pc", "-o", "/tmp/bulkhead-core.img", "-p", "(,gpt2)/grub",
		"-d", "/usr/lib/grub/i386-pc"}, biosModules...)
	if _, err := s.chroot(ctx, "grub-mkimage", args...); err != nil {
		return err
	}
	p, err := s.inTree("/tmp/bulkhead-core.img")
	if err != nil {
		return err
	}
	core, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("reading GRUB's core image: %w", err)
	}
	// Half the partition: an update writes the next core into the half
	// not in use (updater/bootchain), so that a cut never leaves none.
	if half := s.part(LabelBIOS).Size / 2; int64(len(core)) > half {
		return fmt.Errorf("GRUB core image is %d bytes, more than half the BIOS boot partition (%d of %d): an update needs the other half free",
			len(core), half, s.part(LabelBIOS).Size)
	}
	s.coreImg = core
	return os.Remove(p)
}

var rootHashRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})\s*$`)

// erofsOptions compress /usr with lz4hc (the kernel's erofs has no lzma) in
// physical clusters of up to 64 KiB, with file tails packed into their
// inodes: 15% smaller than 4 KiB clusters (see the README's image figures
// for size and boot time side by side).
var erofsOptions = []string{"-zlz4hc", "-C65536", "-Eztailpacking"}

// buildOnly are the parts of /usr only the build uses, left out of the /usr
// image (relative to /usr; directories whole, names by regular expression):
// the ESP's shim and GRUB and the BIOS core image are made from them before
// the image is, and dracut made the initrd. No running host reads them,
// and the updater never installs them from /usr.
var (
	buildOnlyDirs  = []string{"lib/grub", "lib/shim", "share/grub", "lib/dracut"}
	buildOnlyNames = []string{"^s?bin/grub-", "^bin/dracut", "^bin/lsinitrd$"}
)

// usrImageArgs are mkfs.erofs's arguments for /usr from dir into img.
func usrImageArgs(epoch int64, uuid, img, dir string) []string {
	args := append([]string{}, erofsOptions...)
	args = append(args, fmt.Sprintf("-T%d", epoch), "-U"+uuid, "--quiet")
	for _, d := range buildOnlyDirs {
		args = append(args, "--exclude-path="+d)
	}
	for _, re := range buildOnlyNames {
		args = append(args, "--exclude-regex="+re)
	}
	return append(args, img, dir)
}

// usrImage moves /usr out of the tree into an erofs image (erofsOptions,
// without the build-only parts) and computes its dm-verity hash tree (4 KiB
// blocks, salt and UUID derived from the name and version).
func (s *buildState) usrImage(ctx context.Context) error {
	usr := filepath.Join(s.work, "usr")
	if err := os.Rename(filepath.Join(s.tree, "usr"), usr); err != nil {
		return err
	}
	// The mount point, 0755 whatever the umask: it is in the root image.
	if err := mkdirTree(s.root(), "usr", 0o755); err != nil {
		return err
	}
	img := s.path(manifest.UsrImage)
	if _, err := s.b.Runner.Run(ctx, run.Cmd{Name: "mkfs.erofs", Args: usrImageArgs(s.b.Epoch, s.ids.UUID("usr-fs"), img, usr)}); err != nil {
		return err
	}
	if err := s.fits(img, LabelUsrA); err != nil {
		return err
	}
	out, err := s.b.Runner.Run(ctx, run.Cmd{Name: "veritysetup", Args: []string{
		"format", "--data-block-size=4096", "--hash-block-size=4096",
		"--salt=" + s.ids.Hex("verity-salt", 32), "--uuid=" + s.ids.UUID("verity"),
		img, s.path(manifest.UsrVerity),
	}})
	if err != nil {
		return err
	}
	m := rootHashRE.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("veritysetup printed no root hash: %q", out)
	}
	s.rootHash = string(m[1])
	st, _ := os.Stat(img)
	s.b.progress("      /usr: %d MiB erofs, verity root hash %s", st.Size()>>20, s.rootHash)
	return s.fits(s.path(manifest.UsrVerity), LabelUsrAVerity)
}

// fits checks that a file fits in its partition.
func (s *buildState) fits(file, label string) error {
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	if p := s.part(label); st.Size() > p.Size {
		return fmt.Errorf("%s is %d MiB, more than partition %s (%d MiB): raise partitions.* in the definition",
			filepath.Base(file), st.Size()>>20, label, p.Size>>20)
	}
	return nil
}

// rootImage makes the root ext4 from what is left of the tree: /etc, /var,
// the merged-/usr symlinks and the mount points.
func (s *buildState) rootImage(ctx context.Context) error {
	img := filepath.Join(s.work, "root.img")
	p := s.part(LabelRoot)
	if err := s.etcMerged(ctx); err != nil {
		return err
	}
	_, err := s.b.Runner.Run(ctx, run.Cmd{Name: "mkfs.ext4", Args: []string{
		// metadata_csum_seed: the first boot gives the mounted root a
		// UUID of its own (hostctl identity) without rewriting checksums.
		"-q", "-F", "-L", "root", "-U", s.ids.UUID("root-fs"), "-O", "metadata_csum_seed",
		"-E", "hash_seed=" + s.ids.UUID("root-fs-hash") + ",root_owner=0:0",
		"-d", s.tree, img, fmt.Sprintf("%dk", p.Size>>10),
	}, Env: []string{fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", s.b.Epoch), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", s.b.Epoch)}})
	if err != nil {
		return err
	}
	return s.stampExt4(ctx, img)
}

// etcMerged records /etc as merged with this /usr's factory tree, as the
// first boot's merge would: the factory tree as the merge base, and the
// root hash it was merged with. The first boot then skips the merge.
func (s *buildState) etcMerged(ctx context.Context) error {
	dir := strings.TrimPrefix(filepath.Dir(etcmerge.BaseDir), "/")
	if err := mkdirTree(s.root(), dir, 0o755); err != nil {
		return err
	}
	base, err := s.inTree(etcmerge.BaseDir)
	if err != nil {
		return err
	}
	factory := filepath.Join(s.work, strings.TrimPrefix(etcmerge.FactoryDir, "/"))
	if _, err := s.b.Runner.Run(ctx, run.Cmd{Name: "cp", Args: []string{"-a", factory, base}}); err != nil {
		return fmt.Errorf("recording the merge base of /etc: %w", err)
	}
	return s.root().WriteFile(etcmerge.MergedFile, []byte(s.rootHash+"\n"), 0o644)
}

// stampExt4 sets every inode's atime, ctime and mtime in the ext4 image to
// the epoch. mke2fs -d copies them from the source tree, and a file's ctime
// (and the atime of anything read since the tree's times were clamped)
// cannot be set with utimes: debugfs rewrites them, checksums included.
func (s *buildState) stampExt4(ctx context.Context, img string) error {
	var cmds strings.Builder
	err := filepath.WalkDir(s.tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, s.tree), "/")
		if strings.ContainsAny(rel, "\"\n") {
			return fmt.Errorf("stamping %s: a path with a quote or newline", rel)
		}
		for _, field := range []string{"atime", "ctime", "mtime"} {
			fmt.Fprintf(&cmds, "sif \"%s\" %s @%d\n", rel, field, s.b.Epoch)
		}
		return nil
	})
	if err != nil {
		return err
	}
	script := filepath.Join(s.work, "debugfs.cmds")
	if err := os.WriteFile(script, []byte(cmds.String()), 0o644); err != nil {
		return err
	}
	var stderr bytes.Buffer
	if _, err := s.b.Runner.Run(ctx, run.Cmd{Name: "debugfs", Args: []string{"-w", "-f", script, img}, Stderr: &stderr,
		Env: []string{fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", s.b.Epoch)}}); err != nil {
		return err
	}
	// debugfs reports a failed command on stderr and still exits 0; its
	// only other stderr line is its version banner.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			return fmt.Errorf("stamping root image times with debugfs: %s", line)
		}
	}
	return nil
}

// esp makes the FAT32 ESP: shim (BOOTX64.EFI) and Debian's signed GRUB for
// UEFI and Secure Boot, the shared grub.cfg and environment block, and slot
// A's kernel, initrd and entry.
func (s *buildState) esp(ctx context.Context) error {
	stage := filepath.Join(s.work, "esp")
	_, volUUID := s.ids.FATVolumeID("esp")
	entry := s.entry()
	env, err := grubenv.Encode(bootabi.State{Default: bootabi.SlotA}.Env(grubenv.Env{}), grubenv.Size)
	if err != nil {
		return err
	}
	copies := map[string]string{
		"a/" + bootabi.KernelFile: s.path(manifest.KernelImage),
		"a/" + bootabi.InitrdFile: s.path(manifest.InitrdImage),
	}
	// The ESP's bootloaders and grub.cfg are the payload's boot chain, the
	// same bytes an update installs.
	for _, f := range bootabi.ChainFiles {
		if f.ESP != "" {
			copies[f.ESP] = s.path(manifest.BootChainFile(f.Name))
		}
	}
	for dst, src := range copies {
		if err := copyFile(src, filepath.Join(stage, dst), 0o644); err != nil {
			return err
		}
	}
	files := map[string]string{
		"EFI/BOOT/grub.cfg":        EFIStubConfig(volUUID),
		"EFI/debian/grub.cfg":      EFIStubConfig(volUUID),
		bootabi.ESPGrubEnv:         string(env),
		bootabi.ESPGrubEnvBackup:   string(env),
		"a/" + bootabi.EntryFile:   entry.GrubConfig(),
		"a/" + bootabi.ReleaseFile: entry.Release(s.def.Name),
	}
	for dst, content := range files {
		if err := writeFile(filepath.Join(stage, dst), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := clampTimes(stage, timeOf(s.b.Epoch)); err != nil {
		return err
	}
	return MakeFAT(ctx, s.b.Runner, FATSpec{
		Image: filepath.Join(s.work, "esp.img"), Size: s.part(LabelESP).Size, Label: "ESP",
		VolumeID: s.ids.Hex("esp", 4), Epoch: s.b.Epoch, Source: stage,
	})
}

// chainFromUsr are the boot chain's files the tree's packages hold (relative
// to /usr), by chain file name.
var chainFromUsr = map[string]string{
	bootabi.ChainShim:    "lib/shim/shimx64.efi.signed",
	bootabi.ChainMM:      "lib/shim/mmx64.efi.signed",
	bootabi.ChainGrubEFI: "lib/grub/x86_64-efi-signed/grubx64.efi.signed",
	bootabi.ChainBootImg: "lib/grub/i386-pc/boot.img",
}

// bootChain writes the boot chain into payload/bootchain/: shim, MokManager
// and GRUB EFI from the tree, GRUB's BIOS boot.img and the core image as
// grub-mkimage made it (the disk and the updater patch in its location),
// the shared grub.cfg and the versions of the packages they come from. The
// ESP and the disk's BIOS boot code are made from these files, and publish
// signs each as a part of the version. A copy goes into the tree's
// bootabi.UsrChainDir, where the version finds its own chain once booted.
func (s *buildState) bootChain(ctx context.Context) error {
	usr, err := s.inTree("usr")
	if err != nil {
		return err
	}
	for name, rel := range chainFromUsr {
		src, err := inRoot(usr, rel)
		if err != nil {
			return err
		}
		if err := copyFile(src, s.path(manifest.BootChainFile(name)), 0o644); err != nil {
			return fmt.Errorf("writing the boot chain: %w", err)
		}
	}
	versions := map[string]string{}
	for _, p := range s.packages {
		versions[p.Name] = p.Version
	}
	for _, n := range bootabi.ChainPackageNames {
		if _, ok := versions[n]; !ok {
			return fmt.Errorf("writing the boot chain: package %s is not in the root tree", n)
		}
	}
	for name, data := range map[string][]byte{
		bootabi.ChainCore:     s.coreImg,
		bootabi.ChainGrubCfg:  []byte(GrubConfig()),
		bootabi.ChainPackages: []byte(bootabi.ChainPackagesFile(versions)),
	} {
		if err := writeFile(s.path(manifest.BootChainFile(name)), data, 0o644); err != nil {
			return fmt.Errorf("writing the boot chain: %w", err)
		}
	}
	if err := mkdirTree(s.root(), bootabi.UsrChainDir, 0o755); err != nil {
		return err
	}
	dir, err := s.inTree(bootabi.UsrChainDir)
	if err != nil {
		return err
	}
	for _, f := range bootabi.ChainFiles {
		if err := copyFile(s.path(manifest.BootChainFile(f.Name)), filepath.Join(dir, f.Name), 0o644); err != nil {
			return fmt.Errorf("copying the boot chain into the tree: %w", err)
		}
	}
	return nil
}

// entry is slot A's boot entry.
func (s *buildState) entry() bootabi.Entry {
	return bootabi.Entry{
		Slot: bootabi.SlotA, Version: s.def.Version,
		RootPartUUID: s.part(LabelRoot).UUID, UsrPartUUID: s.part(LabelUsrA).UUID,
		VerityPartUUID: s.part(LabelUsrAVerity).UUID, RootHash: s.rootHash,
		// GrubConfig counts restarts.
		Args: s.def.Kernel.Cmdline, VerityOptions: bootabi.VerityOptions,
		RootPart: s.partNum(LabelRoot), UsrPart: s.partNum(LabelUsrA), VerityPart: s.partNum(LabelUsrAVerity),
	}
}

// FATSpec describes a FAT32 image made from a directory.
type FATSpec struct {
	Image    string
	Size     int64
	Label    string
	VolumeID string // 8 hex digits
	Epoch    int64
	Source   string // its contents become the filesystem's root
}

// MakeFAT makes a FAT32 image with mkfs.fat and fills it with mtools,
// without mounting anything; every timestamp is the epoch.
//
// The bytes depend only on Source's names and contents: its directories are
// made (mmd) and its files copied (mcopy) in lexical order, never in the
// order the build host's filesystem lists them (mcopy -s would), because
// FAT keeps entries, short-name tails and clusters in creation order.
func MakeFAT(ctx context.Context, r run.Runner, f FATSpec) error {
	// mtools' global flags from the environment, over whatever the build
	// host's mtools.conf says: long names as VFAT entries, numeric tails.
	env := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", f.Epoch), "TZ=UTC", "LC_ALL=C.UTF-8", "MTOOLS_SKIP_CHECK=1",
		"MTOOLS_NO_VFAT=0", "MTOOLS_NAME_NUMERIC_TAIL=1", "MTOOLS_LOWER_CASE=0", "MTOOLS_FAT_COMPATIBILITY=0"}
	_ = os.Remove(f.Image)
	if _, err := r.Run(ctx, run.Cmd{Name: "mkfs.fat", Args: []string{
		"-F", "32", "-n", f.Label, "-i", f.VolumeID, "-C", f.Image, fmt.Sprint(f.Size >> 10),
	}, Env: env}); err != nil {
		return fmt.Errorf("making FAT image %s: %w", f.Image, err)
	}
	dirs, files, err := fatContents(f.Source)
	if err != nil {
		return fmt.Errorf("making FAT image %s: %w", f.Image, err)
	}
	if len(dirs) > 0 {
		args := []string{"-i", f.Image}
		for _, d := range dirs {
			args = append(args, "::/"+d)
		}
		if _, err := r.Run(ctx, run.Cmd{Name: "mmd", Args: args, Env: env}); err != nil {
			return fmt.Errorf("making FAT image %s: %w", f.Image, err)
		}
	}
	for _, g := range files {
		args := []string{"-i", f.Image, "-p", "-m", "-Q"}
		for _, name := range g.names {
			args = append(args, filepath.Join(f.Source, g.dir, name))
		}
		if _, err = r.Run(ctx, run.Cmd{Name: "mcopy", Args: append(args, "::/"+g.dir), Env: env}); err != nil {
			return fmt.Errorf("making FAT image %s: %w", f.Image, err)
		}
	}
	// mtools stamps directory entries with the clock: reset them all.
	return fatstamp.Stamp(f.Image, timeOf(f.Epoch))
}

// fatDir is one directory's files, for one mcopy.
type fatDir struct {
	dir   string // slash-separated, relative to the source; "" for the root
	names []string
}

// fatContents lists src's directories and, per directory, its regular
// files, all in lexical order (fs.WalkDir sorts), parents first. Anything
// else (a symlink, a device) has no place on an ESP and is an error.
func fatContents(src string) (dirs []string, files []fatDir, err error) {
	err = fs.WalkDir(os.DirFS(src), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dir := path.Dir(p)
		if dir == "." {
			dir = ""
		}
		switch {
		case d.IsDir():
			if p != "." {
				dirs = append(dirs, p)
			}
		case d.Type().IsRegular():
			if len(files) == 0 || files[len(files)-1].dir != dir {
				files = append(files, fatDir{dir: dir})
			}
			files[len(files)-1].names = append(files[len(files)-1].names, path.Base(p))
		default:
			return fmt.Errorf("%s in %s is not a file or directory", p, src)
		}
		return nil
	})
	return dirs, files, err
}

// qcow2 converts disk.raw.
func (s *buildState) qcow2(ctx context.Context) error {
	_, err := s.b.Runner.Run(ctx, run.Cmd{Name: "qemu-img", Args: []string{
		"convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", s.path(manifest.DiskRaw), s.path(manifest.DiskQcow2),
	}})
	return err
}

// manifest hashes every output and writes manifest.json.
func (s *buildState) manifest(ctx context.Context) error {
	m := &manifest.Build{
		Name: s.def.Name, Version: s.def.Version, SourceDateEpoch: s.b.Epoch,
		KernelVersion: s.kver, KernelArgs: s.def.Kernel.Cmdline,
		RootHash: s.rootHash, VeritySalt: s.ids.Hex("verity-salt", 32),
		DiskGUID: bootabi.PristineDiskGUID, DiskSize: s.diskSize, Parts: map[string]manifest.Part{},
		Partitions: s.parts, Builder: builderTool(), Binaries: s.binaries, Packages: s.packages,
	}
	for key, file := range map[string]string{
		manifest.PartUsr: manifest.UsrImage, manifest.PartVerity: manifest.UsrVerity, manifest.PartKernel: manifest.KernelImage, manifest.PartInitrd: manifest.InitrdImage,
		manifest.PartRaw: manifest.DiskRaw, manifest.PartQcow2: manifest.DiskQcow2,
	} {
		n, sum, err := manifest.HashFile(s.path(file))
		if err != nil {
			return err
		}
		m.Parts[key] = manifest.Part{File: file, Size: n, SHA256: sum}
	}
	for _, f := range bootabi.ChainFiles {
		file := manifest.BootChainFile(f.Name)
		n, sum, err := manifest.HashFile(s.path(file))
		if err != nil {
			return err
		}
		m.Parts[bootabi.ChainPart(f.Name)] = manifest.Part{File: file, Size: n, SHA256: sum}
	}
	if m.KernelArgs == nil {
		m.KernelArgs = []string{}
	}
	if err := s.writeSBOM(m); err != nil {
		return err
	}
	s.m = m
	return manifest.Write(s.out, m)
}
