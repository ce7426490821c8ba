package diskfmt

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/bulkhead-os/bulkhead/builder/rawdisk"
)

// A GCE image tarball: a gzip-compressed tar holding one file, disk.raw,
// in the old GNU format with a sparse entry (what `tar --format=oldgnu -S`
// writes and Compute Engine's import asks for), so the holes of the disk
// are neither stored nor compressed. Compute Engine takes disks whose size
// is a whole number of GiB: the entry's size is rounded up, the padding a
// hole.
const (
	gceAlign    = 1 << 30
	gceDiskName = "disk.raw"
	tarBlock    = 512
)

// GCESize is the size disk.raw has inside the tarball of a disk of size bytes.
func GCESize(size int64) int64 { return (size + gceAlign - 1) / gceAlign * gceAlign }

type sparseEntry struct{ off, n int64 }

// WriteGCE writes the GCE tarball of d to w; mtime is the entry's time.
func WriteGCE(w io.Writer, d *rawdisk.Disk, mtime time.Time) error {
	if d.Size()%sector != 0 {
		return fmt.Errorf("writing GCE tarball of %s: size %d is not a multiple of %d bytes", d.Path(), d.Size(), sector)
	}
	exts, err := d.Extents()
	if err != nil {
		return fmt.Errorf("writing GCE tarball of %s: %w", d.Path(), err)
	}
	realSize := GCESize(d.Size())
	var sp []sparseEntry
	var stored int64
	for _, e := range exts {
		// Extents come from the file system's blocks; round them out to
		// sectors so every piece of data is whole tar blocks.
		off := e.Off / sector * sector
		end := min((e.Off+e.Len+sector-1)/sector*sector, d.Size())
		if n := len(sp); n > 0 && sp[n-1].off+sp[n-1].n >= off {
			stored += end - (sp[n-1].off + sp[n-1].n)
			sp[n-1].n = end - sp[n-1].off
			continue
		}
		sp = append(sp, sparseEntry{off, end - off})
		stored += end - off
	}
	// GNU tar ends the map of a file that ends in a hole with an empty
	// entry at its end.
	if n := len(sp); n == 0 || sp[n-1].off+sp[n-1].n < realSize {
		sp = append(sp, sparseEntry{realSize, 0})
	}
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	zw.ModTime = mtime
	for _, b := range oldGNUSparseHeaders(gceDiskName, mtime, realSize, stored, sp) {
		if _, err := zw.Write(b); err != nil {
			return fmt.Errorf("writing GCE tarball of %s: %w", d.Path(), err)
		}
	}
	for _, e := range sp {
		if _, err := io.Copy(zw, io.NewSectionReader(d, e.off, e.n)); err != nil {
			return fmt.Errorf("writing GCE tarball of %s: %w", d.Path(), err)
		}
	}
	// Stored data is whole sectors, so whole tar blocks; then the two
	// zero blocks that end an archive.
	if _, err := zw.Write(make([]byte, 2*tarBlock)); err != nil {
		return fmt.Errorf("writing GCE tarball of %s: %w", d.Path(), err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("writing GCE tarball of %s: %w", d.Path(), err)
	}
	return nil
}

// oldGNUSparseHeaders is the header block of an old GNU sparse file (type
// 'S', four map entries in the header) and the extension blocks holding the
// rest of the map, 21 entries each.
func oldGNUSparseHeaders(name string, mtime time.Time, realSize, stored int64, sp []sparseEntry) [][]byte {
	h := make([]byte, tarBlock)
	copy(h[0:100], name)
	putTarNum(h[100:108], 0o644)
	putTarNum(h[108:116], 0)
	putTarNum(h[116:124], 0)
	putTarNum(h[124:136], stored)
	putTarNum(h[136:148], mtime.Unix())
	h[156] = 'S'
	copy(h[257:265], "ustar  \x00")
	copy(h[265:297], "root")
	copy(h[297:329], "root")
	putEntries := func(b []byte, es []sparseEntry) {
		for i, e := range es {
			putTarNum(b[24*i:24*i+12], e.off)
			putTarNum(b[24*i+12:24*i+24], e.n)
		}
	}
	first := sp[:min(4, len(sp))]
	putEntries(h[386:482], first)
	rest := sp[len(first):]
	if len(rest) > 0 {
		h[482] = 1
	}
	putTarNum(h[483:495], realSize)
	// The checksum is over the header with its field as spaces.
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	out := [][]byte{h}
	for len(rest) > 0 {
		x := make([]byte, tarBlock)
		n := min(21, len(rest))
		putEntries(x[:504], rest[:n])
		rest = rest[n:]
		if len(rest) > 0 {
			x[504] = 1
		}
		out = append(out, x)
	}
	return out
}

// putTarNum writes n in a numeric header field: octal with a NUL when it
// fits, else GNU's base-256 (high bit set, big-endian).
func putTarNum(b []byte, n int64) {
	s := strconv.FormatInt(n, 8)
	if len(s) < len(b) {
		copy(b, fmt.Sprintf("%0*s", len(b)-1, s))
		b[len(b)-1] = 0
		return
	}
	for i := len(b) - 1; i > 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	b[0] = 0x80
}
