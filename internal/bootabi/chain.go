package bootabi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// The boot chain: the files that boot a slot before its kernel does, shared
// by both slots. The builder puts them in the payload (payload/bootchain/),
// publish signs each as a part of the version (ChainPart), and the updater
// installs them on the ESP and in the BIOS boot partition (updater/bootchain).
//
// The per-disk EFI stub configuration (EFI/BOOT/grub.cfg, naming the ESP's
// FAT volume ID) is not in the chain: it only hands over to the shared
// grub/grub.cfg, which is, so a change of boot logic never needs it.
const (
	ChainGrubEFI  = "grubx64.efi" // Debian's signed GRUB for UEFI
	ChainMM       = "mmx64.efi"   // shim's MokManager
	ChainShim     = "shimx64.efi" // shim, installed as the removable-media path BOOTX64.EFI
	ChainCore     = "core.img"    // GRUB's i386-pc core image as grub-mkimage made it (unpatched)
	ChainBootImg  = "boot.img"    // GRUB's i386-pc boot sector code
	ChainGrubCfg  = "grub.cfg"    // the shared configuration, for BIOS and UEFI
	ChainPackages = "packages"    // NAME=VERSION of the Debian packages the chain comes from
)

// UsrChainDir holds a copy of the chain's files in every /usr image the
// builder makes (by chain file name): dm-verity vouches for them, so a
// version that boots on a chain its updater did not install (a host built
// before boot chain updates, whose old updater left the chain alone) can
// install its own at its bless, and `hostctl bootloader update` can
// reinstall it without a repository.
const UsrChainDir = "/usr/lib/bulkhead/bootchain"

// ChainFile is one file of the chain.
type ChainFile struct {
	Name string // file name in payload/bootchain/, and the part name after ChainPart
	// ESP is the file's path on the ESP; "" for what is not an ESP file (the
	// BIOS boot code goes to the disk, the package list to the record).
	ESP string
}

// ChainFiles are the chain's files in install order. GRUB EFI goes before
// shim: an old shim accepts a new GRUB, while a new shim may revoke (SBAT)
// the old GRUB. The BIOS boot code follows, then grub.cfg, which both
// GRUBs must read (the new grub.cfg is written only once the new
// bootloaders are in place).
var ChainFiles = []ChainFile{
	{ChainGrubEFI, "EFI/BOOT/grubx64.efi"},
	{ChainMM, "EFI/BOOT/mmx64.efi"},
	{ChainShim, "EFI/BOOT/BOOTX64.EFI"},
	{ChainCore, ""},
	{ChainBootImg, ""},
	{ChainGrubCfg, ESPGrubDir + "/grub.cfg"},
	{ChainPackages, ""},
}

// ChainPackageNames are the Debian packages the chain comes from, listed in
// the packages file for people (the version is the digest).
var ChainPackageNames = []string{"shim-signed", "grub-efi-amd64-signed", "grub-pc-bin"}

// ChainPartPrefix starts the part names (and repository file names) of the
// chain's files in an update manifest: bootchain.grubx64.efi, ...
const ChainPartPrefix = "bootchain."

// ChainPart is the update-manifest part name of a chain file.
func ChainPart(name string) string { return ChainPartPrefix + name }

// ChainVersion is the chain's version: the first 16 hex digits of a sha256
// over its files' names and sha256s, sorted by name. It names the chain; the
// files are checked by their own sha256s.
func ChainVersion(sums map[string]string) string {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s %s\n", n, sums[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ChainPackagesFile renders the packages file: NAME=VERSION lines in
// ChainPackageNames order, for the packages that versions has.
func ChainPackagesFile(versions map[string]string) string {
	var b strings.Builder
	for _, n := range ChainPackageNames {
		if v, ok := versions[n]; ok {
			fmt.Fprintf(&b, "%s=%s\n", n, v)
		}
	}
	return b.String()
}

// DescribeChain renders a chain version for people: the digest and the
// package versions ("3f2a9c1e0b7d4a55 (shim-signed 1.44, ...)").
func DescribeChain(version string, packages map[string]string) string {
	var p []string
	for _, n := range ChainPackageNames {
		if v, ok := packages[n]; ok {
			p = append(p, n+" "+v)
		}
	}
	if len(p) == 0 {
		return version
	}
	return version + " (" + strings.Join(p, ", ") + ")"
}
