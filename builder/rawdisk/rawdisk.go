package rawdisk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Disk is an open raw image.
type Disk struct {
	f    *os.File
	path string
	size int64
}

// Open opens the raw image at path. It must be a regular file.
func Open(path string) (*Disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening raw image: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening raw image %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("raw image %s: not a regular file", path)
	}
	return &Disk{f: f, path: path, size: st.Size()}, nil
}

// Close closes the image.
func (d *Disk) Close() error { return d.f.Close() }

// Size is the image's size in bytes.
func (d *Disk) Size() int64 { return d.size }

// Path is the image's file name.
func (d *Disk) Path() string { return d.path }

// ReadAt reads from the image.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// Extent is a range of the file that may hold data (SEEK_DATA to
// SEEK_HOLE); everything outside every extent reads as zeros.
type Extent struct {
	Off, Len int64
}

// Extents lists the data ranges of the image in order, from the file
// system's view of its holes. A file system that does not report holes
// gives one extent, the whole file.
func (d *Disk) Extents() ([]Extent, error) {
	var out []Extent
	fd := int(d.f.Fd())
	for off := int64(0); off < d.size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("finding data in %s: %w", d.path, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("finding holes in %s: %w", d.path, err)
		}
		hole = min(hole, d.size)
		if hole > data {
			out = append(out, Extent{Off: data, Len: hole - data})
		}
		off = hole
	}
	return out, nil
}

// Blocks calls fn for every block of blockSize bytes (the last one may be
// shorter) that holds a non-zero byte, in order, with its index and
// contents. Blocks entirely in holes are never read. data is reused after
// fn returns.
func (d *Disk) Blocks(blockSize int64, fn func(index int64, data []byte) error) error {
	if blockSize <= 0 {
		return fmt.Errorf("reading %s: block size %d", d.path, blockSize)
	}
	exts, err := d.Extents()
	if err != nil {
		return err
	}
	buf := make([]byte, blockSize)
	next := int64(0) // first block not yet visited
	for _, e := range exts {
		first := max(e.Off/blockSize, next)
		last := (e.Off + e.Len - 1) / blockSize
		for i := first; i <= last; i++ {
			n := min(blockSize, d.size-i*blockSize)
			if _, err := d.f.ReadAt(buf[:n], i*blockSize); err != nil && err != io.EOF {
				return fmt.Errorf("reading block %d of %s: %w", i, d.path, err)
			}
			if !IsZero(buf[:n]) {
				if err := fn(i, buf[:n]); err != nil {
					return err
				}
			}
		}
		next = last + 1
	}
	return nil
}

var zeros = make([]byte, 1<<20)

// IsZero reports whether b holds only zero bytes.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
