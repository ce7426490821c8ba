package seed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf16"
)

// UDF (ECMA-167 3rd edition, profiled by OSTA UDF 1.02-2.01) is what Azure
// writes its provisioning media in. Like readISO, this is a small bounded
// reader of our own: only the root directory of the first partition is
// read, through type 1 partition maps (no virtual, sparable or metadata
// partitions: those are for rewritable media), and every size and
// location is checked against the image before anything is allocated.

// ECMA-167 descriptor tag identifiers (3/7.2.1, 4/7.2.1).
const (
	tagAVDP = 2
	tagPD   = 5
	tagLVD  = 6
	tagTD   = 8
	tagFSD  = 256
	tagFID  = 257
	tagFE   = 261
	tagEFE  = 266
)

const (
	udfSector = 2048
	// maxVDS bounds the volume descriptor sequence walked: a real one
	// holds a handful of descriptors.
	maxVDS = 64
)

// udfTag checks the descriptor tag at the start of b (ECMA-167 3/7.2): its
// identifier, its checksum, and that it records the block it was read from.
func udfTag(b []byte, want uint16, block uint32) error {
	if len(b) < 16 {
		return fmt.Errorf("descriptor of %d bytes", len(b))
	}
	var sum byte
	for i := 0; i < 16; i++ {
		if i != 4 {
			sum += b[i]
		}
	}
	if id := binary.LittleEndian.Uint16(b); id != want {
		return fmt.Errorf("block %d: descriptor tag %d, want %d", block, id, want)
	}
	if sum != b[4] {
		return fmt.Errorf("block %d: descriptor tag checksum %#x, want %#x", block, b[4], sum)
	}
	if loc := binary.LittleEndian.Uint32(b[12:]); loc != block {
		return fmt.Errorf("block %d: descriptor tag says block %d", block, loc)
	}
	return nil
}

// udf is an opened UDF volume: where its partition starts.
type udf struct {
	r         io.ReaderAt
	size      int64
	partStart int64 // in sectors
}

// readBlock reads n bytes at partition-relative logical block lbn.
func (u *udf) read(lbn uint32, n int64) ([]byte, error) {
	start := (u.partStart + int64(lbn)) * udfSector
	if err := inImage(start, n, u.size); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := u.r.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("reading %d bytes at %d: %w", n, start, err)
	}
	return b, nil
}

// isUDF reports whether an anchor volume descriptor pointer is at sector
// 256, where every UDF volume has one (ECMA-167 3/8.4.2.1).
func isUDF(r io.ReaderAt) bool {
	b := make([]byte, 16)
	if _, err := r.ReadAt(b, 256*udfSector); err != nil {
		return false
	}
	return udfTag(b, tagAVDP, 256) == nil
}

// openUDF reads the volume descriptors down to the root directory's ICB.
func openUDF(r io.ReaderAt, size int64) (*udf, uint32, error) {
	avdp := make([]byte, 512)
	if err := inImage(256*udfSector, 512, size); err != nil {
		return nil, 0, fmt.Errorf("anchor: %w", err)
	}
	if _, err := r.ReadAt(avdp, 256*udfSector); err != nil {
		return nil, 0, fmt.Errorf("anchor: %w", err)
	}
	if err := udfTag(avdp, tagAVDP, 256); err != nil {
		return nil, 0, fmt.Errorf("anchor: %w", err)
	}
	vdsLen := binary.LittleEndian.Uint32(avdp[16:]) / udfSector
	vdsLoc := binary.LittleEndian.Uint32(avdp[20:])
	if vdsLen > maxVDS {
		vdsLen = maxVDS
	}
	parts := map[uint16]uint32{} // partition number -> start sector
	var partNum uint16
	var fsd uint32
	haveLVD := false
	buf := make([]byte, udfSector)
	for i := uint32(0); i < vdsLen; i++ {
		block := vdsLoc + i
		if err := inImage(int64(block)*udfSector, udfSector, size); err != nil {
			return nil, 0, fmt.Errorf("volume descriptor sequence: %w", err)
		}
		if _, err := r.ReadAt(buf, int64(block)*udfSector); err != nil {
			return nil, 0, fmt.Errorf("volume descriptor sequence: %w", err)
		}
		id := binary.LittleEndian.Uint16(buf)
		if id == 0 || id == tagTD {
			break
		}
		if err := udfTag(buf, id, block); err != nil {
			return nil, 0, fmt.Errorf("volume descriptor sequence: %w", err)
		}
		switch id {
		case tagPD:
			parts[binary.LittleEndian.Uint16(buf[22:])] = binary.LittleEndian.Uint32(buf[188:])
		case tagLVD:
			if haveLVD {
				continue // the first logical volume is the one read
			}
			haveLVD = true
			if bs := binary.LittleEndian.Uint32(buf[212:]); bs != udfSector {
				return nil, 0, fmt.Errorf("logical block size %d (only %d is read)", bs, udfSector)
			}
			fsd = binary.LittleEndian.Uint32(buf[252:])
			if n := binary.LittleEndian.Uint32(buf[268:]); n < 1 {
				return nil, 0, errors.New("logical volume without a partition map")
			}
			// The first map is partition reference 0, which the file
			// set descriptor and every long_ad here point into.
			if m := buf[440:446]; m[0] != 1 || m[1] != 6 {
				return nil, 0, fmt.Errorf("partition map of type %d (only type 1 is read)", m[0])
			}
			partNum = binary.LittleEndian.Uint16(buf[444:])
		}
	}
	if !haveLVD {
		return nil, 0, errors.New("no logical volume descriptor")
	}
	start, ok := parts[partNum]
	if !ok {
		return nil, 0, fmt.Errorf("no descriptor for partition %d", partNum)
	}
	u := &udf{r: r, size: size, partStart: int64(start)}
	b, err := u.read(fsd, 512)
	if err != nil {
		return nil, 0, fmt.Errorf("file set descriptor: %w", err)
	}
	if err := udfTag(b, tagFSD, fsd); err != nil {
		return nil, 0, fmt.Errorf("file set descriptor: %w", err)
	}
	return u, binary.LittleEndian.Uint32(b[404:]), nil
}

// file reads the data of the file entry at lbn, at most limit bytes (a
// larger file is ErrTooLarge). dir says it must be a directory.
func (u *udf) file(lbn uint32, limit int64, dir bool) ([]byte, error) {
	fe, err := u.read(lbn, udfSector)
	if err != nil {
		return nil, fmt.Errorf("file entry: %w", err)
	}
	id := binary.LittleEndian.Uint16(fe)
	if err := udfTag(fe, id, lbn); err != nil || (id != tagFE && id != tagEFE) {
		return nil, fmt.Errorf("file entry at block %d: not a file entry (tag %d)", lbn, id)
	}
	if isDir := fe[27] == 4; isDir != dir {
		return nil, fmt.Errorf("file entry at block %d: file type %d", lbn, fe[27])
	}
	n := binary.LittleEndian.Uint64(fe[56:])
	if n > uint64(limit) {
		return nil, fmt.Errorf("%d bytes: more than %d bytes: %w", n, limit, ErrTooLarge)
	}
	eaOff, adOff := 168, 176
	if id == tagEFE {
		eaOff, adOff = 208, 216
	}
	lEA := int(binary.LittleEndian.Uint32(fe[eaOff:]))
	lAD := int(binary.LittleEndian.Uint32(fe[eaOff+4:]))
	if lEA < 0 || lAD < 0 || lEA > udfSector || lAD > udfSector || adOff+lEA+lAD > udfSector {
		return nil, fmt.Errorf("file entry at block %d: %d bytes of attributes and %d of descriptors do not fit", lbn, lEA, lAD)
	}
	ads := fe[adOff+lEA : adOff+lEA+lAD]
	out := make([]byte, 0, n)
	switch typ := binary.LittleEndian.Uint16(fe[34:]) & 7; typ {
	case 3: // the data is in the entry itself
		if uint64(len(ads)) < n {
			return nil, fmt.Errorf("file entry at block %d: %d embedded bytes, want %d", lbn, len(ads), n)
		}
		return append(out, ads[:n]...), nil
	case 0, 1: // short_ad (8 bytes) or long_ad (16): length, then block
		step := 8
		if typ == 1 {
			step = 16
		}
		for i := 0; i+step <= len(ads) && uint64(len(out)) < n; i += step {
			raw := binary.LittleEndian.Uint32(ads[i:])
			kind, l := raw>>30, int64(raw&0x3fffffff)
			if l == 0 {
				break
			}
			if kind == 3 {
				return nil, fmt.Errorf("file entry at block %d: continued allocation descriptors (not read)", lbn)
			}
			want := min(l, int64(n)-int64(len(out)))
			if kind != 0 { // allocated or not, but not recorded: zeros
				out = append(out, make([]byte, want)...)
				continue
			}
			b, err := u.read(binary.LittleEndian.Uint32(ads[i+4:]), want)
			if err != nil {
				return nil, fmt.Errorf("file entry at block %d: extent: %w", lbn, err)
			}
			out = append(out, b...)
		}
		if uint64(len(out)) != n {
			return nil, fmt.Errorf("file entry at block %d: extents hold %d bytes, want %d", lbn, len(out), n)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("file entry at block %d: allocation descriptor type %d", lbn, typ)
	}
}

// udfRootFile reads the file name (compared without case) from the root
// directory, at most limit bytes. os.ErrNotExist when it is not there.
func udfRootFile(r io.ReaderAt, size int64, name string, limit int64) ([]byte, error) {
	u, root, err := openUDF(r, size)
	if err != nil {
		return nil, fmt.Errorf("udf: %w", err)
	}
	dir, err := u.file(root, maxISODir, true)
	if err != nil {
		return nil, fmt.Errorf("udf: root directory: %w", err)
	}
	for off := 0; off+38 <= len(dir); {
		fid := dir[off:]
		if id := binary.LittleEndian.Uint16(fid); id != tagFID {
			return nil, fmt.Errorf("udf: root directory: byte %d: tag %d, want a file identifier", off, id)
		}
		lFI, lIU := int(fid[19]), int(binary.LittleEndian.Uint16(fid[36:]))
		n := (38 + lIU + lFI + 3) &^ 3
		if off+38+lIU+lFI > len(dir) {
			return nil, fmt.Errorf("udf: root directory: byte %d: identifier runs past the directory", off)
		}
		chars := fid[18]
		fname := cs0(fid[38+lIU : 38+lIU+lFI])
		off += n
		if chars&0x0c != 0 || !strings.EqualFold(fname, name) { // deleted or parent
			continue
		}
		if chars&0x02 != 0 {
			return nil, fmt.Errorf("udf: %s: is a directory", name)
		}
		data, err := u.file(binary.LittleEndian.Uint32(fid[24:]), limit, false)
		if err != nil {
			return nil, fmt.Errorf("udf: %s: %w", name, err)
		}
		return data, nil
	}
	return nil, fmt.Errorf("udf: %s: %w", name, os.ErrNotExist)
}

// cs0 decodes an OSTA compressed unicode name (UDF 2.1.1): a compression
// byte, 8 (Latin-1) or 16 (UTF-16BE), then the characters.
func cs0(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	switch b[0] {
	case 8:
		r := make([]rune, len(b)-1)
		for i, c := range b[1:] {
			r[i] = rune(c)
		}
		return string(r)
	case 16:
		u := make([]uint16, (len(b)-1)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(b[1+2*i:])
		}
		return string(utf16.Decode(u))
	}
	return ""
}

// ReadRootFile reads the file name (without regard to case) from the root
// directory of a UDF or ISO9660 image or device, at most limit bytes (a
// larger one is an error wrapping ErrTooLarge): how Azure's provisioning
// media (ovf-env.xml) is read without mounting it. UDF is read when the
// image has a UDF anchor (a UDF/ISO9660 bridge disc is read as UDF).
// os.ErrNotExist when the file is not there.
func ReadRootFile(f *os.File, name string, limit int64) ([]byte, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if isUDF(f) {
		return udfRootFile(f, size, name, limit)
	}
	vds, err := readVolumeDescriptors(f, size)
	if err != nil {
		return nil, err
	}
	for _, v := range vds {
		if v.typ != 1 {
			continue
		}
		entries, _, err := readRootDir(f, size, v)
		if err != nil {
			return nil, fmt.Errorf("iso9660: root directory: %w", err)
		}
		for n, e := range entries {
			if !strings.EqualFold(n, name) {
				continue
			}
			if e.dir {
				return nil, fmt.Errorf("iso9660: %s: is a directory", name)
			}
			if e.size > limit {
				return nil, fmt.Errorf("iso9660: %s: %d bytes: more than %d bytes: %w", name, e.size, limit, ErrTooLarge)
			}
			if err := inImage(e.start, e.size, size); err != nil {
				return nil, fmt.Errorf("iso9660: %s: %w", name, err)
			}
			buf := make([]byte, e.size)
			if _, err := f.ReadAt(buf, e.start); err != nil {
				return nil, fmt.Errorf("iso9660: reading %s: %w", name, err)
			}
			return buf, nil
		}
		break
	}
	return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
}
