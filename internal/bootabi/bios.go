package bootabi

import (
	"encoding/binary"
	"fmt"
)

// Offsets in GRUB's i386-pc boot.img and diskboot.img (grub-core/boot/i386/pc/
// boot.S and diskboot.S; include/grub/i386/pc/boot.h), as grub-bios-setup
// (util/setup.c) patches them.
const (
	BootKernelSector = 0x5c  // GRUB_BOOT_MACHINE_KERNEL_SECTOR: LBA of core.img, 8 bytes LE
	bootDriveCheck   = 0x66  // GRUB_BOOT_MACHINE_DRIVE_CHECK: 2-byte jmp made NOPs for hard disks
	BootPartStart    = 0x1b8 // GRUB_BOOT_MACHINE_WINDOWS_NT_MAGIC: disk signature + partition table
	// The first sector of core.img (diskboot.img) ends with a blocklist entry
	// {start uint64, len uint16, segment uint16} that loads the rest of it.
	blocklistOffset = 512 - 12
)

// SectorSize is the only logical sector size BIOS boot works with: boot.img
// and diskboot.img count in 512-byte sectors.
const SectorSize = 512

// PatchBootSectors makes the BIOS boot code for a disk whose core.img starts
// at LBA coreLBA: sector 0 is boot.img's code with the disk's own partition
// table (mbr, the protective MBR) kept, and core.img's first sector is pointed
// at the sectors that follow it. This is what grub-bios-setup does for a GPT
// disk with a BIOS boot partition, without needing a loop device.
func PatchBootSectors(bootImg, mbr, coreImg []byte, coreLBA uint64) (sector0, core []byte, err error) {
	if len(bootImg) != 512 || len(mbr) != 512 {
		return nil, nil, fmt.Errorf("patching boot sector: boot.img is %d bytes and the MBR %d, want 512", len(bootImg), len(mbr))
	}
	if len(coreImg) < 1024 || len(coreImg)%512 != 0 && len(coreImg) < 512 {
		return nil, nil, fmt.Errorf("patching core.img: %d bytes is too small", len(coreImg))
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, nil, fmt.Errorf("patching boot sector: the disk's sector 0 has no MBR signature")
	}
	sector0 = append([]byte(nil), bootImg...)
	copy(sector0[BootPartStart:], mbr[BootPartStart:])
	binary.LittleEndian.PutUint64(sector0[BootKernelSector:], coreLBA)
	sector0[bootDriveCheck], sector0[bootDriveCheck+1] = 0x90, 0x90

	core = append([]byte(nil), coreImg...)
	if pad := len(core) % 512; pad != 0 {
		core = append(core, make([]byte, 512-pad)...)
	}
	sectors := len(core) / 512
	bl := core[blocklistOffset:512]
	if got := int(binary.LittleEndian.Uint16(bl[8:])); got != sectors-1 {
		return nil, nil, fmt.Errorf("patching core.img: its blocklist loads %d sectors, the image has %d after the first", got, sectors-1)
	}
	binary.LittleEndian.PutUint64(bl[0:], coreLBA+1)
	return sector0, core, nil
}

// CoreLBA is the LBA of the core image a sector 0 made by PatchBootSectors
// loads.
func CoreLBA(sector0 []byte) uint64 {
	if len(sector0) < BootKernelSector+8 {
		return 0
	}
	return binary.LittleEndian.Uint64(sector0[BootKernelSector:])
}

// CoreSectors is how many sectors a core image spans, read from its first
// sector's blocklist (the sectors that follow it, plus itself); 0 when the
// sector is too short to hold one.
func CoreSectors(first []byte) int {
	if len(first) < 512 {
		return 0
	}
	return int(binary.LittleEndian.Uint16(first[blocklistOffset+8:])) + 1
}
