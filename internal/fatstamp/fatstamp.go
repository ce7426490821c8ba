package fatstamp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrNotFAT means the boot sector does not describe a FAT filesystem.
var ErrNotFAT = errors.New("not a FAT filesystem")

// volume is the geometry from the boot sector (Microsoft FAT specification,
// section 3: the BPB).
type volume struct {
	f           *os.File
	bytesPerSec int64
	secPerClus  int64
	fatStart    int64 // byte offset of the first FAT
	rootStart   int64 // FAT12/16: byte offset of the fixed root directory
	rootEntries int64
	dataStart   int64 // byte offset of cluster 2
	clusters    int64
	bits        int // 12, 16 or 32
	rootCluster uint32
}

func open(f *os.File) (*volume, error) {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, 0); err != nil {
		return nil, fmt.Errorf("reading boot sector: %w", err)
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(bs[o:])) }
	v := &volume{f: f, bytesPerSec: le16(11), secPerClus: int64(bs[13])}
	if bs[510] != 0x55 || bs[511] != 0xaa || v.bytesPerSec < 512 || v.secPerClus == 0 {
		return nil, ErrNotFAT
	}
	reserved, fats := le16(14), int64(bs[16])
	v.rootEntries = le16(17)
	fatSize := le16(22)
	if fatSize == 0 {
		fatSize = le32(36)
	}
	total := le16(19)
	if total == 0 {
		total = le32(32)
	}
	rootSecs := (v.rootEntries*32 + v.bytesPerSec - 1) / v.bytesPerSec
	firstData := reserved + fats*fatSize + rootSecs
	if fats == 0 || fatSize == 0 || total <= firstData {
		return nil, ErrNotFAT
	}
	v.fatStart = reserved * v.bytesPerSec
	v.rootStart = (reserved + fats*fatSize) * v.bytesPerSec
	v.dataStart = firstData * v.bytesPerSec
	v.clusters = (total - firstData) / v.secPerClus
	switch {
	case v.clusters < 4085:
		v.bits = 12
	case v.clusters < 65525:
		v.bits = 16
	default:
		v.bits = 32
		v.rootCluster = uint32(le32(44))
	}
	return v, nil
}

// next returns the FAT entry of cluster c and whether it ends the chain.
func (v *volume) next(c uint32) (uint32, bool, error) {
	var b [4]byte
	switch v.bits {
	case 12:
		if _, err := v.f.ReadAt(b[:2], v.fatStart+int64(c)+int64(c)/2); err != nil {
			return 0, true, err
		}
		n := uint32(binary.LittleEndian.Uint16(b[:2]))
		if c%2 == 1 {
			n >>= 4
		} else {
			n &= 0xfff
		}
		return n, n >= 0xff8 || n < 2, nil
	case 16:
		if _, err := v.f.ReadAt(b[:2], v.fatStart+int64(c)*2); err != nil {
			return 0, true, err
		}
		n := uint32(binary.LittleEndian.Uint16(b[:2]))
		return n, n >= 0xfff8 || n < 2, nil
	}
	if _, err := v.f.ReadAt(b[:], v.fatStart+int64(c)*4); err != nil {
		return 0, true, err
	}
	n := binary.LittleEndian.Uint32(b[:]) & 0x0fffffff
	return n, n >= 0x0ffffff8 || n < 2, nil
}

// Stamp sets the create, access and write dates and times of every entry
// in the image at path to t (UTC), recursing into subdirectories.
func Stamp(path string, t time.Time) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("stamping %s: %w", path, err)
	}
	defer f.Close()
	v, err := open(f)
	if err != nil {
		return fmt.Errorf("stamping %s: %w", path, err)
	}
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	s := stamper{v: v, date: uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day()),
		time: uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2), seen: map[uint32]bool{}}
	if v.bits == 32 {
		err = s.chain(v.rootCluster)
	} else {
		err = s.region(v.rootStart, v.rootEntries*32)
	}
	if err != nil {
		return fmt.Errorf("stamping %s: %w", path, err)
	}
	return f.Sync()
}

type stamper struct {
	v          *volume
	date, time uint16
	seen       map[uint32]bool // directories done (guards against loops)
}

// chain stamps the directory stored in the cluster chain from c.
func (s *stamper) chain(c uint32) error {
	size := s.v.secPerClus * s.v.bytesPerSec
	for steps := int64(0); steps <= s.v.clusters; steps++ {
		if s.seen[c] || int64(c) >= s.v.clusters+2 {
			return nil
		}
		s.seen[c] = true
		if err := s.region(s.v.dataStart+int64(c-2)*size, size); err != nil {
			return err
		}
		n, end, err := s.v.next(c)
		if err != nil || end {
			return err
		}
		c = n
	}
	return nil
}

// region stamps the entries in a directory region and recurses.
func (s *stamper) region(off, size int64) error {
	dir := make([]byte, size)
	if _, err := s.v.f.ReadAt(dir, off); err != nil {
		return err
	}
	var subdirs []uint32
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xe5 || e[11] == 0x0f {
			continue // deleted, or a long-name part (no dates)
		}
		e[13] = 0 // creation tenths
		for _, o := range []int{14, 22} {
			binary.LittleEndian.PutUint16(e[o:], s.time)
		}
		for _, o := range []int{16, 18, 24} {
			binary.LittleEndian.PutUint16(e[o:], s.date)
		}
		if e[11]&0x10 != 0 && e[0] != '.' {
			c := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
			if c >= 2 {
				subdirs = append(subdirs, c)
			}
		}
	}
	if _, err := s.v.f.WriteAt(dir, off); err != nil {
		return err
	}
	for _, c := range subdirs {
		if err := s.chain(c); err != nil {
			return err
		}
	}
	return nil
}
