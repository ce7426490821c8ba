package slotwriter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/updater/verity"
)

// Errors callers decide on.
var (
	ErrTooSmall     = errors.New("image does not fit in the partition")
	ErrReadBack     = errors.New("partition content read back does not match the image")
	ErrNotBlockSize = errors.New("image size is not a multiple of the verity block size")
)

// Device is an open partition (or a regular file standing in for one).
type Device interface {
	io.ReaderAt
	io.WriterAt
	io.Seeker
	Sync() error
	Close() error
}

// Opener opens a device for reading and writing. Tests wrap the real one to
// inject faults; production uses OpenDevice.
type Opener func(path string) (Device, error)

// OpenDevice opens a partition read-write without truncating it (a block
// device cannot be truncated, and a file standing in for one keeps its size).
// A block device is opened O_EXCL: the kernel then refuses (EBUSY) a device
// that is mounted or held by device-mapper, which is exactly the booted
// slot under dm-verity: the last guard against writing the running /usr.
func OpenDevice(path string) (Device, error) {
	flags := os.O_RDWR
	if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0 {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Writer writes slots.
type Writer struct {
	Open Opener // nil for OpenDevice
	Log  *slog.Logger
	// Progress, when set, is told the bytes written and read back per device.
	Progress func(what string, done, total int64)
}

// Image is one file to put at the start of a partition.
type Image struct {
	Name   string // "usr" or "verity", for errors and progress
	Src    string // the downloaded, already digest-checked file
	Dev    string // the partition's path
	Size   int64
	SHA256 string
	// Fill, when set, writes the image into the device itself instead of
	// a copy of Src (a delta update assembling it from chunks). The
	// read-back checks are the same.
	Fill func(ctx context.Context, dev io.WriterAt) error
}

// Slot is what WriteSlot writes and checks.
type Slot struct {
	Usr      Image
	Verity   Image
	RootHash string // hex; the read-back must give this dm-verity root
}

const chunk = 1 << 20

// WriteSlot copies both images into their partitions and verifies them. On
// error the partitions may hold anything: the caller has already made the
// slot read as empty and must not point the boot configuration at it.
func (w Writer) WriteSlot(ctx context.Context, s Slot) error {
	root, err := hex.DecodeString(s.RootHash)
	if err != nil || len(root) != sha256.Size {
		return fmt.Errorf("writing slot: root hash %q is not hex sha256", s.RootHash)
	}
	if s.Usr.Size%verity.BlockSize != 0 {
		return fmt.Errorf("writing %s (%d bytes): %w", s.Usr.Src, s.Usr.Size, ErrNotBlockSize)
	}
	usr, err := w.open(s.Usr)
	if err != nil {
		return err
	}
	defer usr.Close()
	vdev, err := w.open(s.Verity)
	if err != nil {
		return err
	}
	defer vdev.Close()
	for _, p := range []struct {
		img Image
		dev Device
	}{{s.Usr, usr}, {s.Verity, vdev}} {
		if p.img.Fill != nil {
			if err := w.fill(ctx, p.img, p.dev); err != nil {
				return err
			}
			continue
		}
		if err := w.copyImage(ctx, p.img, p.dev); err != nil {
			return err
		}
	}
	// Read back from the disk, not the page cache: both devices were synced,
	// so their clean pages can be dropped and the reads below hit the media.
	dropCache(usr, s.Usr.Size)
	dropCache(vdev, s.Verity.Size)
	vsum := sha256.New()
	if _, err := io.Copy(vsum, w.progress("verify "+s.Verity.Name, ctxReader{ctx, io.NewSectionReader(vdev, 0, s.Verity.Size)}, s.Verity.Size)); err != nil {
		return fmt.Errorf("reading back %s from %s: %w", s.Verity.Name, s.Verity.Dev, err)
	}
	if got := hex.EncodeToString(vsum.Sum(nil)); got != s.Verity.SHA256 {
		return fmt.Errorf("reading back %s from %s: sha256 %s, want %s: %w", s.Verity.Name, s.Verity.Dev, got, s.Verity.SHA256, ErrReadBack)
	}
	usum := sha256.New()
	data := io.TeeReader(w.progress("verify "+s.Usr.Name, ctxReader{ctx, io.NewSectionReader(usr, 0, s.Usr.Size)}, s.Usr.Size), usum)
	if err := verity.Verify(data, vdev, root); err != nil {
		return fmt.Errorf("verifying slot %s against root hash %s: %w: %w", s.Usr.Dev, s.RootHash, ErrReadBack, err)
	}
	// Verify read only the superblock's data blocks: finish the digest.
	if _, err := io.Copy(io.Discard, data); err != nil {
		return fmt.Errorf("reading back %s from %s: %w", s.Usr.Name, s.Usr.Dev, err)
	}
	if got := hex.EncodeToString(usum.Sum(nil)); got != s.Usr.SHA256 {
		return fmt.Errorf("reading back %s from %s: sha256 %s, want %s: %w", s.Usr.Name, s.Usr.Dev, got, s.Usr.SHA256, ErrReadBack)
	}
	return nil
}

// open opens an image's device and checks that the image fits.
func (w Writer) open(img Image) (Device, error) {
	open := w.Open
	if open == nil {
		open = OpenDevice
	}
	d, err := open(img.Dev)
	if err != nil {
		return nil, fmt.Errorf("opening partition %s for %s: %w", img.Dev, img.Name, err)
	}
	size, err := d.Seek(0, io.SeekEnd)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("sizing partition %s: %w", img.Dev, err)
	}
	if size < img.Size {
		d.Close()
		return nil, fmt.Errorf("writing %s (%d bytes) to %s (%d bytes): %w", img.Name, img.Size, img.Dev, size, ErrTooSmall)
	}
	return d, nil
}

// copyImage streams src into dev at offset 0 and syncs. The source is hashed
// on the way, so a file changed since its digest check is caught here too.
func (w Writer) copyImage(ctx context.Context, img Image, dev Device) error {
	src, err := os.Open(img.Src)
	if err != nil {
		return fmt.Errorf("writing %s: %w", img.Name, err)
	}
	defer src.Close()
	h := sha256.New()
	buf := make([]byte, chunk)
	var off int64
	for off < img.Size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("writing %s to %s at byte %d: %w", img.Name, img.Dev, off, err)
		}
		want := min(int64(chunk), img.Size-off)
		n, err := io.ReadFull(src, buf[:want])
		if err != nil {
			return fmt.Errorf("reading %s at byte %d: %w", img.Src, off, err)
		}
		m, err := dev.WriteAt(buf[:n], off)
		if err == nil && m < n {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fmt.Errorf("writing %s to %s at byte %d: %w", img.Name, img.Dev, off+int64(m), err)
		}
		h.Write(buf[:n])
		off += int64(n)
		if w.Progress != nil {
			w.Progress("write "+img.Name, off, img.Size)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != img.SHA256 {
		return fmt.Errorf("writing %s: source %s changed: sha256 %s, want %s", img.Name, img.Src, got, img.SHA256)
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", img.Dev, err)
	}
	w.log().Info("partition written", "part", img.Name, "device", img.Dev, "bytes", img.Size)
	return nil
}

// fill lets the image's Fill write the device, then syncs it.
func (w Writer) fill(ctx context.Context, img Image, dev Device) error {
	if err := img.Fill(ctx, dev); err != nil {
		return fmt.Errorf("writing %s to %s: %w", img.Name, img.Dev, err)
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", img.Dev, err)
	}
	w.log().Info("partition written", "part", img.Name, "device", img.Dev, "bytes", img.Size)
	return nil
}

func (w Writer) log() *slog.Logger {
	if w.Log == nil {
		return slog.Default()
	}
	return w.Log
}

// progress wraps r to report read progress.
func (w Writer) progress(what string, r io.Reader, total int64) io.Reader {
	return ProgressReader(what, r, total, w.Progress)
}

// ProgressReader wraps r to call fn(what, bytes read so far, total) as it
// is read; with a nil fn it is r.
func ProgressReader(what string, r io.Reader, total int64, fn func(what string, done, total int64)) io.Reader {
	if fn == nil {
		return r
	}
	return &progressReader{r: r, what: what, total: total, fn: fn}
}

type progressReader struct {
	r     io.Reader
	what  string
	done  int64
	total int64
	fn    func(string, int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if n > 0 {
		p.fn(p.what, p.done, p.total)
	}
	return n, err
}

// dropCache asks the kernel to forget the cached pages of a synced device, so
// that the read-back reads the media. Best effort: a wrapper in tests has no
// descriptor, and a failure only weakens the check to the page cache.
func dropCache(d Device, size int64) {
	if f, ok := d.(interface{ Fd() uintptr }); ok {
		_ = unix.Fadvise(int(f.Fd()), 0, size, unix.FADV_DONTNEED)
	}
}
