package seed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// ErrNotSeed says a device or image holds no filesystem we can read as a seed.
var ErrNotSeed = errors.New("not an iso9660 or vfat filesystem")

// maxFile bounds each file read from a seed: user-data is limited to 16 KiB
// on EC2 and a few MiB in practice; a hostile image must not exhaust memory.
const maxFile = 16 << 20

// Probe reads the filesystem type ("iso9660" or "vfat") and volume label
// from r without mounting, the way blkid does, so devices can be matched
// against "cidata" without udev.
func Probe(r io.ReaderAt) (fstype, label string, err error) {
	buf := make([]byte, 2048)
	// ISO9660: the primary volume descriptor is sector 16; the volume
	// identifier is at byte 40, 32 d-characters padded with spaces.
	if _, err := r.ReadAt(buf, 16*2048); err == nil && buf[0] == 1 && string(buf[1:6]) == "CD001" {
		return "iso9660", strings.TrimRight(string(buf[40:72]), " \x00"), nil
	}
	if _, err := r.ReadAt(buf[:512], 0); err != nil {
		return "", "", fmt.Errorf("reading boot sector: %w", err)
	}
	if buf[510] != 0x55 || buf[511] != 0xaa {
		return "", "", ErrNotSeed
	}
	// FAT: BPB_FATSz16 (offset 22) is zero only on FAT32, whose extended
	// BPB puts the label at 71; FAT12/16 have it at 43 (Microsoft FAT spec).
	fat16Size := int(buf[22]) | int(buf[23])<<8
	off, sig := 43, 38
	if fat16Size == 0 {
		off, sig = 71, 66
	}
	if buf[sig] != 0x29 || (string(buf[off+11:off+14]) != "FAT" && string(buf[off+11:off+16]) != "MSWIN") {
		return "", "", ErrNotSeed
	}
	return "vfat", strings.TrimRight(string(buf[off:off+11]), " \x00"), nil
}

// IsSeedLabel reports whether a volume label is NoCloud's (cidata, any case).
func IsSeedLabel(label string) bool {
	return strings.EqualFold(label, Label)
}

// Read reads the seed files from an image file or block device at path.
func Read(path string) (Files, error) {
	f, err := os.Open(path)
	if err != nil {
		return Files{}, fmt.Errorf("reading seed %s: %w", path, err)
	}
	defer f.Close()
	files, err := ReadFrom(f)
	if err != nil {
		return Files{}, fmt.Errorf("reading seed %s: %w", path, err)
	}
	return files, nil
}

// ReadFrom reads the seed files from an open image or device. A malformed
// image is an error, never a panic: ISO9660 is read by our own bounded
// reader (readISO); go-diskfs's FAT parsers are not hardened against
// hostile input, so a panic in them becomes an error.
func ReadFrom(f *os.File) (Files, error) {
	return readFrom(f, true)
}

// readFrom is ReadFrom; recoverFAT false lets a panic through, so a fuzz
// target sees it.
func readFrom(f *os.File, recoverFAT bool) (files Files, err error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return Files{}, err
	}
	fstype, _, err := Probe(f)
	if err != nil {
		return Files{}, err
	}
	if fstype == "iso9660" {
		return readISO(f, size)
	}
	if recoverFAT {
		defer func() {
			if r := recover(); r != nil {
				files, err = Files{}, fmt.Errorf("malformed filesystem: %v", r)
			}
		}()
	}
	if err := checkFAT(f, size); err != nil {
		return Files{}, err
	}
	b := file.New(f, true)
	fsys, err := readFAT(b, size)
	if err != nil {
		return Files{}, fmt.Errorf("opening %s: %w", fstype, err)
	}
	var out Files
	for _, t := range out.named() {
		data, err := readFSFile(fsys, t.name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Files{}, fmt.Errorf("reading %s: %w", t.name, err)
		}
		*t.dst = data
	}
	return out, nil
}

func readFAT(st backend.Storage, size int64) (filesystem.FileSystem, error) {
	if fsys, err := fat12.Read(st, size, 0, 512); err == nil {
		return fsys, nil
	}
	if fsys, err := fat16.Read(st, size, 0, 512); err == nil {
		return fsys, nil
	}
	return fat32.Read(st, size, 0, 512)
}

func readFSFile(fsys filesystem.FileSystem, name string) ([]byte, error) {
	found := name
	// go-diskfs cannot list a FAT12 root directory; it can still open by
	// name (case-insensitively), so listing is only used where it works.
	if entries, err := fsys.ReadDir("/"); err == nil {
		found = ""
		for _, e := range entries {
			// Plain ISO9660 names (no Rock Ridge) may come back upper case.
			if strings.EqualFold(e.Name(), name) {
				found = e.Name()
				break
			}
		}
		if found == "" {
			return nil, fs.ErrNotExist
		}
	}
	r, err := fsys.OpenFile("/"+found, os.O_RDONLY)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil, fs.ErrNotExist
		}
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, maxFile+1))
	if err != nil {
		return nil, err
	}
	if n > maxFile {
		return nil, fmt.Errorf("larger than %d bytes", maxFile)
	}
	return buf.Bytes(), nil
}

// namedFile is one file of a seed and where its bytes go.
type namedFile struct {
	name string
	dst  *[]byte
}

// named lists the seed's files by their names on the medium.
func (f *Files) named() []namedFile {
	return []namedFile{
		{"user-data", &f.UserData},
		{"meta-data", &f.MetaData},
		{"network-config", &f.NetworkConfig},
		{"vendor-data", &f.VendorData},
	}
}
