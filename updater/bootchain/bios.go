package bootchain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"unicode/utf16"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
)

const sector = bootabi.SectorSize

// biosBootType is the BIOS boot partition type GUID
// 21686148-6449-6e6f-744e-656564454649 as GPT stores it (the first three
// fields little-endian): "Hah!IdontNeedEFI" (UEFI spec, GPT partition types).
var biosBootType = []byte("Hah!IdontNeedEFI")

// ErrCoreTooBig means a core image does not fit in half of the BIOS boot
// partition, where it must go so the core in use is never overwritten.
var ErrCoreTooBig = errors.New("BIOS core image larger than half the BIOS boot partition")

// gptPart is one GPT entry, in sectors.
type gptPart struct {
	Num        int
	Start, End uint64 // first and last LBA
	Name       string
	bios       bool // its type is BIOS boot
}

// Sectors is the partition's length.
func (p gptPart) Sectors() uint64 { return p.End - p.Start + 1 }

// readGPTPart reads partition num from the primary GPT of disk (512-byte
// sectors: BIOS boot knows no other), checking the header's and the
// entries' CRC32s: a table that does not check out is not trusted to say
// where to write.
func readGPTPart(f *os.File, num int) (gptPart, error) {
	hdr := make([]byte, sector)
	if _, err := f.ReadAt(hdr, sector); err != nil {
		return gptPart{}, fmt.Errorf("reading the GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return gptPart{}, errors.New("no GPT header at LBA 1 (512-byte sectors)")
	}
	hsize := binary.LittleEndian.Uint32(hdr[12:])
	if hsize < 92 || hsize > sector {
		return gptPart{}, fmt.Errorf("GPT header size %d", hsize)
	}
	h := bytes.Clone(hdr[:hsize])
	want := binary.LittleEndian.Uint32(h[16:])
	binary.LittleEndian.PutUint32(h[16:], 0)
	if crc32.ChecksumIEEE(h) != want {
		return gptPart{}, errors.New("GPT header CRC32 does not match")
	}
	entLBA := binary.LittleEndian.Uint64(hdr[72:])
	count := binary.LittleEndian.Uint32(hdr[80:])
	esize := binary.LittleEndian.Uint32(hdr[84:])
	if esize < 128 || count > 1024 || num < 1 || uint32(num) > count {
		return gptPart{}, fmt.Errorf("GPT has %d entries of %d bytes, want partition %d", count, esize, num)
	}
	ents := make([]byte, int(count)*int(esize))
	if _, err := f.ReadAt(ents, int64(entLBA)*sector); err != nil {
		return gptPart{}, fmt.Errorf("reading the GPT entries: %w", err)
	}
	if crc32.ChecksumIEEE(ents) != binary.LittleEndian.Uint32(hdr[88:]) {
		return gptPart{}, errors.New("GPT entries CRC32 does not match")
	}
	e := ents[(num-1)*int(esize):]
	p := gptPart{Num: num, Start: binary.LittleEndian.Uint64(e[32:]), End: binary.LittleEndian.Uint64(e[40:]),
		bios: bytes.Equal(e[:16], biosBootType)}
	u := make([]uint16, 36)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(e[56+2*i:])
	}
	if i := indexZero(u); i >= 0 {
		u = u[:i]
	}
	p.Name = string(utf16.Decode(u))
	if p.Start == 0 || p.End < p.Start {
		return gptPart{}, fmt.Errorf("GPT partition %d is empty", num)
	}
	return p, nil
}

func indexZero(u []uint16) int {
	for i, c := range u {
		if c == 0 {
			return i
		}
	}
	return -1
}

// biosPlan is what installing a core image in the BIOS boot partition
// means for one disk, decided from the disk before any write.
type biosPlan struct {
	part    gptPart
	half    uint64 // sectors in each half
	inUse   uint64 // the LBA sector 0 points at now
	target  uint64 // the LBA the new core goes to
	sector0 []byte // the new sector 0
	core    []byte // the new core, patched for target
	done    bool   // the core in use already is this core, and sector 0 is the new one
	// prevCore is the core in use: its bytes' sha256 and length, so that a
	// restore can check it is still whole before pointing back at it.
	prevCore     Core
	prevSector0  []byte
	oldSector0OK bool // sector 0 held GRUB's pointer into the partition
}

// halfStart is the first LBA of half i (0 or 1).
func (p biosPlan) halfStart(i int) uint64 { return p.part.Start + uint64(i)*p.half }

// planBIOS reads the BIOS boot partition and sector 0 and decides where the
// new core goes: the half sector 0 does not point into. It refuses a core
// larger than half the partition, a partition that is not of the BIOS boot
// type, and a core in use that spills into the half to be written (an
// image made before the halves with a core over half the partition). With
// force, a core already in place is written again, into the other half.
func planBIOS(f *os.File, disk string, num int, bootImg, core []byte, force bool) (biosPlan, error) {
	var p biosPlan
	part, err := readGPTPart(f, num)
	if err != nil {
		return p, fmt.Errorf("reading BIOS boot partition %d of %s: %w", num, disk, err)
	}
	if !part.bios {
		return p, fmt.Errorf("partition %d (%s) of %s is not a BIOS boot partition", num, part.Name, disk)
	}
	p.part, p.half = part, part.Sectors()/2
	padded := (uint64(len(core)) + sector - 1) / sector
	if padded > p.half {
		return p, fmt.Errorf("installing the BIOS core image in partition %d (%s) of %s: %d bytes, half the partition is %d bytes (of %d): %w",
			num, part.Name, disk, len(core), p.half*sector, part.Sectors()*sector, ErrCoreTooBig)
	}
	s0 := make([]byte, sector)
	if _, err := f.ReadAt(s0, 0); err != nil {
		return p, fmt.Errorf("reading sector 0 of %s: %w", disk, err)
	}
	p.prevSector0 = s0
	p.inUse = bootabi.CoreLBA(s0)
	inPart := p.inUse >= part.Start && p.inUse <= part.End
	p.oldSector0OK = inPart
	if inPart {
		first := make([]byte, sector)
		if _, err := f.ReadAt(first, int64(p.inUse)*sector); err != nil {
			return p, fmt.Errorf("reading the BIOS core in use at LBA %d of %s: %w", p.inUse, disk, err)
		}
		n := uint64(bootabi.CoreSectors(first))
		if n == 0 || p.inUse+n-1 > part.End {
			n = part.End - p.inUse + 1
		}
		cur := make([]byte, n*sector)
		if _, err := f.ReadAt(cur, int64(p.inUse)*sector); err != nil {
			return p, fmt.Errorf("reading the BIOS core in use at LBA %d of %s: %w", p.inUse, disk, err)
		}
		sum := sha256.Sum256(cur)
		p.prevCore = Core{LBA: p.inUse, Sectors: n, SHA256: hex.EncodeToString(sum[:])}
		// Already installed: the core in use is this one, patched for
		// where it is, and sector 0 is what this boot.img makes.
		if s, c, err := bootabi.PatchBootSectors(bootImg, s0, core, p.inUse); err == nil && !force &&
			(p.inUse == p.halfStart(0) || p.inUse == p.halfStart(1)) && bytes.Equal(s, s0) &&
			uint64(len(c)) <= n*sector && bytes.Equal(c, cur[:len(c)]) {
			p.done, p.target, p.sector0, p.core = true, p.inUse, s, c
			return p, nil
		}
	}
	// The half sector 0 does not point into; a sector 0 pointing elsewhere
	// (no GRUB yet) leaves both free: the first.
	p.target = p.halfStart(0)
	if inPart && p.inUse < p.halfStart(1) {
		p.target = p.halfStart(1)
		if end := p.inUse + p.prevCore.Sectors - 1; end >= p.target {
			return p, fmt.Errorf("installing the BIOS core image in partition %d (%s) of %s: the core in use at LBA %d runs to LBA %d, into the half from LBA %d, so no half is free",
				num, part.Name, disk, p.inUse, end, p.target)
		}
	}
	p.sector0, p.core, err = bootabi.PatchBootSectors(bootImg, s0, core, p.target)
	if err != nil {
		return p, fmt.Errorf("installing the BIOS core image on %s: %w", disk, err)
	}
	return p, nil
}

// writeSectors writes b at LBA lba of f, flushes it to the disk and reads it
// back past the page cache, comparing.
func writeSectors(f *os.File, lba uint64, b []byte, what string) error {
	if _, err := f.WriteAt(b, int64(lba)*sector); err != nil {
		return fmt.Errorf("writing %s at LBA %d of %s: %w", what, lba, f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("flushing %s at LBA %d of %s: %w", what, lba, f.Name(), err)
	}
	_ = unix.Fadvise(int(f.Fd()), int64(lba)*sector, int64(len(b)), unix.FADV_DONTNEED)
	got := make([]byte, len(b))
	if _, err := f.ReadAt(got, int64(lba)*sector); err != nil {
		return fmt.Errorf("reading back %s at LBA %d of %s: %w", what, lba, f.Name(), err)
	}
	if !bytes.Equal(got, b) {
		return fmt.Errorf("reading back %s at LBA %d of %s: %w", what, lba, f.Name(), ErrReadBack)
	}
	return nil
}

// sectorsEqual tells whether the disk holds b at lba.
func sectorsEqual(f *os.File, lba uint64, b []byte) bool {
	got := make([]byte, len(b))
	if _, err := f.ReadAt(got, int64(lba)*sector); err != nil {
		return false
	}
	return bytes.Equal(got, b)
}
