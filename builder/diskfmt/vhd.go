package diskfmt

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bulkhead-os/bulkhead/builder/rawdisk"
)

// A fixed VHD, as Microsoft's Virtual Hard Disk Image Format Specification
// describes it: the disk's bytes, then a 512-byte footer. Azure takes only
// fixed VHDs whose virtual size is a whole number of MiB, so the disk is
// padded with zeros up to the next MiB.
const (
	vhdAlign      = 1 << 20
	vhdFooterSize = 512
	vhdDiskFixed  = 2
)

// vhdEpoch is the VHD time stamp's zero: 2000-01-01 00:00:00 UTC.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// VHDOptions are the footer's variable fields.
type VHDOptions struct {
	Time     time.Time // creation time stamp (the build's SOURCE_DATE_EPOCH)
	UniqueID [16]byte  // the disk's identifier
}

// VHDSize is the virtual size of the VHD of a disk of size bytes.
func VHDSize(size int64) int64 { return (size + vhdAlign - 1) / vhdAlign * vhdAlign }

// vhdGeometry is the CHS geometry the specification's algorithm gives for
// a disk of totalSectors sectors: cylinders, heads, sectors per track.
func vhdGeometry(totalSectors int64) (uint16, uint8, uint8) {
	totalSectors = min(totalSectors, 65535*16*255)
	var spt, heads, cth int64
	if totalSectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = totalSectors / spt
	} else {
		spt = 17
		cth = totalSectors / spt
		heads = max((cth+1023)/1024, 4)
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = totalSectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = totalSectors / spt
		}
	}
	return uint16(cth / heads), uint8(heads), uint8(spt)
}

// vhdFooter is the hard disk footer of a fixed disk of size bytes.
//
// The creator application is "win " (with host OS "Wi2k"), as Hyper-V and
// Azure's own tools write: readers (qemu among them) then take the size from
// the footer, while for other creators they compute it from the CHS
// geometry, which for most sizes is smaller than the disk.
func vhdFooter(size int64, o VHDOptions) []byte {
	b := make([]byte, vhdFooterSize)
	be := binary.BigEndian
	copy(b[0:], "conectix")
	be.PutUint32(b[8:], 2)           // features: reserved bit, always set
	be.PutUint32(b[12:], 0x00010000) // file format version 1.0
	be.PutUint64(b[16:], ^uint64(0)) // data offset: none for a fixed disk
	be.PutUint32(b[24:], uint32(max(o.Time.Sub(vhdEpoch)/time.Second, 0)))
	copy(b[28:], "win ")
	be.PutUint32(b[32:], 0x000a0000) // creator version 10.0
	copy(b[36:], "Wi2k")
	be.PutUint64(b[40:], uint64(size)) // original size
	be.PutUint64(b[48:], uint64(size)) // current size
	c, h, s := vhdGeometry(size / sector)
	be.PutUint16(b[56:], c)
	b[58], b[59] = h, s
	be.PutUint32(b[60:], vhdDiskFixed)
	copy(b[68:], o.UniqueID[:])
	be.PutUint32(b[64:], vhdChecksum(b))
	return b
}

// vhdChecksum is the one's complement of the sum of the footer's bytes,
// the checksum field itself counted as zero.
func vhdChecksum(footer []byte) uint32 {
	var sum uint32
	for i, c := range footer {
		if i >= 64 && i < 68 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// WriteVHD writes d as a fixed VHD to dst, a new empty file: only the data
// is written, so the zeros stay holes.
func WriteVHD(dst *os.File, d *rawdisk.Disk, o VHDOptions) error {
	if d.Size()%sector != 0 {
		return fmt.Errorf("writing VHD of %s: size %d is not a multiple of %d bytes", d.Path(), d.Size(), sector)
	}
	size := VHDSize(d.Size())
	if err := copyData(dst, d); err != nil {
		return fmt.Errorf("writing VHD of %s to %s: %w", d.Path(), dst.Name(), err)
	}
	if _, err := dst.WriteAt(vhdFooter(size, o), size); err != nil {
		return fmt.Errorf("writing VHD footer to %s: %w", dst.Name(), err)
	}
	return nil
}

// copyData copies d's data extents to the same offsets of dst.
func copyData(dst *os.File, d *rawdisk.Disk) error {
	exts, err := d.Extents()
	if err != nil {
		return err
	}
	for _, e := range exts {
		if _, err := dst.Seek(e.Off, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(dst, io.NewSectionReader(d, e.Off, e.Len)); err != nil {
			return err
		}
	}
	return nil
}
