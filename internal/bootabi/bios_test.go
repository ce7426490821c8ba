package bootabi

import (
	"encoding/binary"
	"testing"
)

// TestPatchBootSectors checks the grub-bios-setup arithmetic on synthetic
// images: boot.img code kept, the partition table kept, the core.img
// location and its blocklist pointed at the BIOS boot partition.
func TestPatchBootSectors(t *testing.T) {
	boot := make([]byte, 512)
	for i := range boot {
		boot[i] = 0xb0
	}
	mbr := make([]byte, 512)
	copy(mbr[0x1be:], []byte{0, 0, 2, 0, 0xee}) // protective MBR entry
	mbr[510], mbr[511] = 0x55, 0xaa
	core := make([]byte, 5*512)
	binary.LittleEndian.PutUint16(core[blocklistOffset+8:], 4) // grub-mkimage: 4 sectors follow
	s0, c, err := PatchBootSectors(boot, mbr, core, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(s0[BootKernelSector:]); got != 2048 {
		t.Errorf("kernel sector %d, want 2048", got)
	}
	if s0[0] != 0xb0 || s0[0x1be+4] != 0xee || s0[510] != 0x55 {
		t.Error("boot code or partition table not kept")
	}
	if s0[bootDriveCheck] != 0x90 {
		t.Error("drive check not patched")
	}
	if got := binary.LittleEndian.Uint64(c[blocklistOffset:]); got != 2049 {
		t.Errorf("blocklist start %d, want 2049", got)
	}
	binary.LittleEndian.PutUint16(core[blocklistOffset+8:], 9)
	if _, _, err := PatchBootSectors(boot, mbr, core, 2048); err == nil {
		t.Error("a blocklist that disagrees with the image size was accepted")
	}
}

func TestCoreLBAAndSectors(t *testing.T) {
	s0 := make([]byte, 512)
	binary.LittleEndian.PutUint64(s0[BootKernelSector:], 3072)
	if got := CoreLBA(s0); got != 3072 {
		t.Errorf("got LBA %d, want 3072", got)
	}
	core := make([]byte, 512)
	binary.LittleEndian.PutUint16(core[blocklistOffset+8:], 99)
	if got := CoreSectors(core); got != 100 {
		t.Errorf("got %d sectors, want 100", got)
	}
	if CoreLBA(nil) != 0 || CoreSectors(core[:10]) != 0 {
		t.Error("short input read as a pointer")
	}
}
