package diskfmt

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/bulkhead-os/bulkhead/builder/rawdisk"
)

// A stream-optimized VMDK, as the VMware Virtual Disk Format 1.1 describes
// it: a sparse extent header with the grain directory "at the end", the
// embedded descriptor, then every non-zero 64 KiB grain compressed with
// deflate (zlib framing) behind a grain marker, a grain table behind a
// marker after each 512 grains that hold data, the grain directory, a
// footer (the header again, now with the directory's offset) and an
// end-of-stream marker. Zero grains are not stored (grain table entry 0).
const (
	vmdkMagic       = 0x564d444b // "KDMV"
	vmdkVersion     = 3          // stream-optimized, compressed grains
	vmdkGrainSect   = 128        // 64 KiB grains
	vmdkGTEsPerGT   = 512
	vmdkDescSect    = 20 // descriptor area, sectors
	vmdkOverhead    = 128
	vmdkGDAtEnd     = ^uint64(0)
	vmdkFlagNewline = 1 << 0
	vmdkFlagCompr   = 1 << 16
	vmdkFlagMarkers = 1 << 17
	vmdkDeflate     = 1

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3
)

const sector = 512

// vmdkHeader is SparseExtentHeader, packed little-endian (79 bytes and
// padding to a sector).
type vmdkHeader struct {
	Magic              uint32
	Version            uint32
	Flags              uint32
	Capacity           uint64
	GrainSize          uint64
	DescriptorOffset   uint64
	DescriptorSize     uint64
	NumGTEsPerGT       uint32
	RGDOffset          uint64
	GDOffset           uint64
	OverHead           uint64
	UncleanShutdown    uint8
	SingleEndLineChar  byte
	NonEndLineChar     byte
	DoubleEndLineChar1 byte
	DoubleEndLineChar2 byte
	CompressAlgorithm  uint16
	Pad                [433]byte
}

func newVMDKHeader(capacity, gdOffset uint64) *vmdkHeader {
	return &vmdkHeader{
		Magic: vmdkMagic, Version: vmdkVersion,
		Flags:    vmdkFlagNewline | vmdkFlagCompr | vmdkFlagMarkers,
		Capacity: capacity, GrainSize: vmdkGrainSect,
		DescriptorOffset: 1, DescriptorSize: vmdkDescSect,
		NumGTEsPerGT: vmdkGTEsPerGT, GDOffset: gdOffset, OverHead: vmdkOverhead,
		SingleEndLineChar: '\n', NonEndLineChar: ' ', DoubleEndLineChar1: '\r', DoubleEndLineChar2: '\n',
		CompressAlgorithm: vmdkDeflate,
	}
}

// VMDKOptions names the disk inside its descriptor.
type VMDKOptions struct {
	CID      uint32 // content ID; any value, the same for the same image
	FileName string // the extent's file name in the descriptor
}

// vmdkDescriptor is the text descriptor of a monolithic stream-optimized
// disk. The geometry is the one IDE/SATA disks report (16 heads, 63
// sectors), which is what the adapter type "ide" asks for.
func vmdkDescriptor(capacity uint64, o VMDKOptions) []byte {
	cyl := min(capacity/(16*63), 16383)
	return fmt.Appendf(nil, `# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%08x
parentCID=ffffffff
createType="streamOptimized"

# Extent description
RW %d SPARSE %q

# The Disk Data Base
#DDB

ddb.adapterType = "ide"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.virtualHWVersion = "4"
`, o.CID, capacity, o.FileName, cyl)
}

// sectorWriter writes whole sectors and knows where it is.
type sectorWriter struct {
	w   *bufio.Writer
	pos uint64 // bytes written
	err error
}

func (s *sectorWriter) write(b []byte) {
	if s.err != nil {
		return
	}
	n, err := s.w.Write(b)
	s.pos += uint64(n)
	s.err = err
}

// pad writes zeros up to the next sector boundary.
func (s *sectorWriter) pad() {
	if r := s.pos % sector; r != 0 {
		s.write(make([]byte, sector-r))
	}
}

func (s *sectorWriter) sector() uint64 { return s.pos / sector }

// marker writes a metadata marker sector: numSectors of what follows, size
// 0 and the marker's type.
func (s *sectorWriter) marker(numSectors uint64, typ uint32) {
	b := make([]byte, sector)
	binary.LittleEndian.PutUint64(b, numSectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	s.write(b)
}

func (s *sectorWriter) header(h *vmdkHeader) {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, h)
	s.write(b.Bytes())
}

// WriteVMDK writes d as a stream-optimized VMDK to w. d's size must be a
// multiple of 512 bytes.
func WriteVMDK(w io.Writer, d *rawdisk.Disk, o VMDKOptions) error {
	if d.Size()%sector != 0 {
		return fmt.Errorf("writing VMDK of %s: size %d is not a multiple of %d bytes", d.Path(), d.Size(), sector)
	}
	capacity := uint64(d.Size()) / sector
	grainBytes := int64(vmdkGrainSect * sector)
	numGrains := (capacity + vmdkGrainSect - 1) / vmdkGrainSect
	gd := make([]uint32, (numGrains+vmdkGTEsPerGT-1)/vmdkGTEsPerGT)

	s := &sectorWriter{w: bufio.NewWriterSize(w, 1<<20)}
	s.header(newVMDKHeader(capacity, vmdkGDAtEnd))
	desc := vmdkDescriptor(capacity, o)
	if len(desc) > vmdkDescSect*sector {
		return fmt.Errorf("writing VMDK of %s: descriptor of %d bytes does not fit", d.Path(), len(desc))
	}
	s.write(desc)
	s.write(make([]byte, vmdkOverhead*sector-int(s.pos)))

	var gt []uint32 // the grain table being filled, nil when none
	curGT := -1
	flushGT := func() {
		if gt == nil {
			return
		}
		s.marker(vmdkGTEsPerGT*4/sector, markerGT)
		gd[curGT] = uint32(s.sector())
		b := make([]byte, 4*len(gt))
		for i, e := range gt {
			binary.LittleEndian.PutUint32(b[4*i:], e)
		}
		s.write(b)
		gt = nil
	}
	var comp bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&comp, zlib.DefaultCompression)
	grain := make([]byte, grainBytes)
	err := d.Blocks(grainBytes, func(i int64, data []byte) error {
		if g := int(i / vmdkGTEsPerGT); g != curGT {
			flushGT()
			curGT = g
		}
		if gt == nil {
			gt = make([]uint32, vmdkGTEsPerGT)
		}
		// Every grain inflates to a whole grain, the last one too.
		n := copy(grain, data)
		clear(grain[n:])
		comp.Reset()
		zw.Reset(&comp)
		zw.Write(grain)
		if err := zw.Close(); err != nil {
			return err
		}
		gt[i%vmdkGTEsPerGT] = uint32(s.sector())
		var m [12]byte
		binary.LittleEndian.PutUint64(m[:], uint64(i)*vmdkGrainSect)
		binary.LittleEndian.PutUint32(m[8:], uint32(comp.Len()))
		s.write(m[:])
		s.write(comp.Bytes())
		s.pad()
		return s.err
	})
	if err != nil {
		return fmt.Errorf("writing VMDK of %s: %w", d.Path(), err)
	}
	flushGT()

	gdBytes := make([]byte, 4*len(gd))
	for i, e := range gd {
		binary.LittleEndian.PutUint32(gdBytes[4*i:], e)
	}
	s.marker((uint64(len(gdBytes))+sector-1)/sector, markerGD)
	gdOffset := s.sector()
	s.write(gdBytes)
	s.pad()
	s.marker(1, markerFooter)
	s.header(newVMDKHeader(capacity, gdOffset))
	s.marker(0, markerEOS)
	if s.err == nil {
		s.err = s.w.Flush()
	}
	if s.err != nil {
		return fmt.Errorf("writing VMDK of %s: %w", d.Path(), s.err)
	}
	return nil
}
