package seed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// readISO reads the NoCloud files from the root directory of an ISO9660
// image (ECMA-119) of size bytes, by their Rock Ridge names (IEEE P1282,
// what xorrisofs -rational-rock and genisoimage -r write), else their Joliet
// names, else their plain ISO9660 names.
//
// It is its own small reader, not go-diskfs's, because a seed is input from
// outside and go-diskfs allocates whatever sizes the image claims (a 4 GiB
// directory extent is a 4 GiB allocation). Here every size is checked
// before anything is allocated: only the root directory is read (NoCloud's
// files are at the top), so deep trees and directory loops are never
// walked; a directory over maxISODir, an extent past the end of the image,
// a file over its MaxSize, more than maxContinuations Rock Ridge
// continuation areas, are errors naming the problem.
func readISO(r io.ReaderAt, size int64) (Files, error) {
	vds, err := readVolumeDescriptors(r, size)
	if err != nil {
		return Files{}, err
	}
	var pvd, joliet *volume
	for i := range vds {
		switch {
		case vds[i].typ == 1 && pvd == nil:
			pvd = &vds[i]
		case vds[i].typ == 2 && vds[i].joliet && joliet == nil:
			joliet = &vds[i]
		}
	}
	if pvd == nil {
		return Files{}, errors.New("iso9660: no primary volume descriptor")
	}
	entries, rockRidge, err := readRootDir(r, size, *pvd)
	if err != nil {
		return Files{}, fmt.Errorf("iso9660: root directory: %w", err)
	}
	if !rockRidge && joliet != nil {
		if entries, _, err = readRootDir(r, size, *joliet); err != nil {
			return Files{}, fmt.Errorf("iso9660: joliet root directory: %w", err)
		}
	}
	var out Files
	for _, t := range out.named() {
		e, ok := entries[t.name]
		if !ok {
			continue
		}
		if e.dir {
			return Files{}, fmt.Errorf("%s: is a directory", t.name)
		}
		if limit := MaxSize(t.name); e.size > limit {
			return Files{}, fmt.Errorf("%s: %d bytes: more than %d bytes: %w", t.name, e.size, limit, ErrTooLarge)
		}
		if err := inImage(e.start, e.size, size); err != nil {
			return Files{}, fmt.Errorf("%s: %w", t.name, err)
		}
		buf := make([]byte, e.size)
		if _, err := r.ReadAt(buf, e.start); err != nil {
			return Files{}, fmt.Errorf("reading %s: %w", t.name, err)
		}
		*t.dst = buf
	}
	return out, nil
}

const (
	isoSector = 2048
	// maxVolumeDescriptors bounds the descriptor set scan (sectors 16..).
	maxVolumeDescriptors = 64
	// maxISODir bounds the root directory extent: a seed's root holds a
	// handful of records; 1 MiB holds thousands.
	maxISODir = 1 << 20
	// maxContinuations bounds the Rock Ridge continuation areas (CE)
	// followed for one record, so a CE chain that loops ends.
	maxContinuations = 16
)

// volume is a primary (1) or supplementary (2) volume descriptor.
type volume struct {
	typ       byte
	joliet    bool
	blockSize int64
	root      []byte // the 34-byte root directory record
}

func readVolumeDescriptors(r io.ReaderAt, size int64) ([]volume, error) {
	var out []volume
	buf := make([]byte, isoSector)
	for i := int64(0); i < maxVolumeDescriptors; i++ {
		off := (16 + i) * isoSector
		if off+isoSector > size {
			return nil, errors.New("iso9660: volume descriptor set runs past the end of the image")
		}
		if _, err := r.ReadAt(buf, off); err != nil {
			return nil, fmt.Errorf("iso9660: reading volume descriptor %d: %w", i, err)
		}
		if string(buf[1:6]) != "CD001" {
			return nil, fmt.Errorf("iso9660: volume descriptor %d: no CD001 signature", i)
		}
		typ := buf[0]
		if typ == 255 {
			return out, nil
		}
		if typ != 1 && typ != 2 {
			continue
		}
		// Logical block size (8.4.12), both-endian at 128.
		bs := int64(binary.LittleEndian.Uint16(buf[128:]))
		if bs != 512 && bs != 1024 && bs != 2048 {
			return nil, fmt.Errorf("iso9660: volume descriptor %d: logical block size %d", i, bs)
		}
		// Joliet: escape sequences %/@, %/C or %/E at 88 (UCS-2 levels 1-3).
		esc := string(buf[88:91])
		v := volume{typ: typ, blockSize: bs, root: append([]byte(nil), buf[156:156+34]...)}
		v.joliet = typ == 2 && (esc == "%/@" || esc == "%/C" || esc == "%/E")
		out = append(out, v)
	}
	return nil, fmt.Errorf("iso9660: no volume descriptor set terminator in %d descriptors", maxVolumeDescriptors)
}

// inImage checks that the extent [start, start+n) lies within the image.
func inImage(start, n, size int64) error {
	if start < 0 || n < 0 || start > size || n > size-start {
		return fmt.Errorf("extent of %d bytes at byte %d runs past the end of the %d-byte image", n, start, size)
	}
	return nil
}

// isoEntry is a file or directory in the root directory.
type isoEntry struct {
	start, size int64
	dir         bool
}

// readRootDir reads the root directory of v into name -> entry, and says
// whether Rock Ridge names were found.
func readRootDir(r io.ReaderAt, size int64, v volume) (map[string]isoEntry, bool, error) {
	if v.root[0] < 34 {
		return nil, false, fmt.Errorf("root directory record of %d bytes", v.root[0])
	}
	start := int64(binary.LittleEndian.Uint32(v.root[2:])) * v.blockSize
	n := int64(binary.LittleEndian.Uint32(v.root[10:]))
	if n > maxISODir {
		return nil, false, fmt.Errorf("extent of %d bytes: over the %d-byte limit for a seed's root directory", n, maxISODir)
	}
	if err := inImage(start, n, size); err != nil {
		return nil, false, err
	}
	dir := make([]byte, n)
	if _, err := r.ReadAt(dir, start); err != nil {
		return nil, false, fmt.Errorf("reading %d bytes at %d: %w", n, start, err)
	}
	entries := map[string]isoEntry{}
	rockRidge := false
	skip := 0 // SUSP SP "bytes skipped" (from the "." record)
	for off, i := 0, 0; off < len(dir); i++ {
		l := int(dir[off])
		if l == 0 {
			// Records do not cross sectors: the rest is padding (9.1).
			off = (off/isoSector + 1) * isoSector
			continue
		}
		if l < 34 || off+l > len(dir) {
			return nil, false, fmt.Errorf("record %d at byte %d: length %d", i, off, l)
		}
		rec := dir[off : off+l]
		off += l
		nameLen := int(rec[32])
		if 33+nameLen > l {
			return nil, false, fmt.Errorf("record %d: name of %d bytes in a %d-byte record", i, nameLen, l)
		}
		rawName := rec[33 : 33+nameLen]
		su := rec[33+nameLen:]
		if nameLen%2 == 0 && len(su) > 0 { // padding byte after an even-length name
			su = su[1:]
		}
		flags := rec[25]
		if i == 0 { // "." carries SUSP's SP entry
			if sp := findSUSP(su, "SP"); len(sp) >= 7 && sp[4] == 0xbe && sp[5] == 0xef {
				skip = int(sp[6])
			}
			continue
		}
		if nameLen == 1 && (rawName[0] == 0 || rawName[0] == 1) { // "." and ".."
			continue
		}
		if flags&0x80 != 0 {
			return nil, false, fmt.Errorf("record %d: multi-extent file (not used for seed files)", i)
		}
		if skip > len(su) {
			skip = len(su)
		}
		name, rr, err := rockRidgeName(r, size, v.blockSize, su[skip:])
		if err != nil {
			return nil, false, fmt.Errorf("record %d: %w", i, err)
		}
		switch {
		case rr:
			rockRidge = true
		case v.joliet:
			name = jolietName(rawName)
		default:
			name = strings.ToLower(string(rawName))
		}
		if !rr {
			name, _, _ = strings.Cut(name, ";")
			name = strings.TrimSuffix(name, ".")
		}
		if _, dup := entries[name]; dup {
			continue // the first record of a name wins
		}
		entries[name] = isoEntry{
			start: int64(binary.LittleEndian.Uint32(rec[2:])) * v.blockSize,
			size:  int64(binary.LittleEndian.Uint32(rec[10:])),
			dir:   flags&0x02 != 0,
		}
	}
	return entries, rockRidge, nil
}

// findSUSP returns the first System Use entry with signature sig in su.
func findSUSP(su []byte, sig string) []byte {
	for len(su) >= 4 {
		l := int(su[2])
		if l < 4 || l > len(su) {
			return nil
		}
		if string(su[:2]) == sig {
			return su[:l]
		}
		su = su[l:]
	}
	return nil
}

// rockRidgeName assembles a record's Rock Ridge NM name from its System
// Use area and continuation areas (CE). ok is false without an NM entry.
func rockRidgeName(r io.ReaderAt, size, blockSize int64, su []byte) (name string, ok bool, err error) {
	var b strings.Builder
	for cont := 0; ; cont++ {
		var next []byte
		for len(su) >= 4 {
			l := int(su[2])
			if l < 4 || l > len(su) {
				break // malformed tail: stop, as the kernel does
			}
			e := su[:l]
			su = su[l:]
			switch string(e[:2]) {
			case "NM":
				if l < 5 {
					continue
				}
				ok = true
				if e[4]&0x06 != 0 { // CURRENT/PARENT: not a file name
					continue
				}
				b.Write(e[5:])
				if b.Len() > 255 {
					return "", false, errors.New("rock ridge name longer than 255 bytes")
				}
			case "CE":
				if l >= 28 {
					next = e
				}
			case "ST":
				su = nil
			}
		}
		if next == nil {
			return b.String(), ok, nil
		}
		if cont >= maxContinuations {
			return "", false, fmt.Errorf("more than %d rock ridge continuation areas", maxContinuations)
		}
		start := int64(binary.LittleEndian.Uint32(next[4:]))*blockSize + int64(binary.LittleEndian.Uint32(next[12:]))
		n := int64(binary.LittleEndian.Uint32(next[20:]))
		if n > blockSize {
			return "", false, fmt.Errorf("rock ridge continuation area of %d bytes", n)
		}
		if err := inImage(start, n, size); err != nil {
			return "", false, fmt.Errorf("rock ridge continuation area: %w", err)
		}
		su = make([]byte, n)
		if _, err := r.ReadAt(su, start); err != nil {
			return "", false, fmt.Errorf("reading rock ridge continuation area: %w", err)
		}
	}
}

// jolietName decodes a Joliet (UCS-2 big-endian) file identifier.
func jolietName(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
