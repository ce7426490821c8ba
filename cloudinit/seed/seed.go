package seed

import (
	"encoding/binary"
	"github.com/bulkhead-os/bulkhead/internal/fatstamp"

	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// Format is the filesystem of a seed image.
type Format string

// The two formats cloud-localds writes.
const (
	FormatISO  Format = "iso"
	FormatVFAT Format = "vfat"
)

// ParseFormat accepts the names cloud-localds accepts for -f.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "iso", "iso9660", "":
		return FormatISO, nil
	case "vfat", "fat":
		return FormatVFAT, nil
	}
	return "", fmt.Errorf("seed format %q: want iso or vfat", s)
}

// Label is the volume label NoCloud looks for; vfat labels are upper case.
const Label = "cidata"

// DefaultMetaData is what cloud-localds writes when no meta-data is given.
const DefaultMetaData = "instance-id: iid-local01\n"

// Files are the seed's files. A nil slice means the file is absent.
type Files struct {
	UserData      []byte
	MetaData      []byte
	NetworkConfig []byte
	VendorData    []byte
}

// names lists the files in the order they are written (sorted, so the
// directory order is the same whichever tool made the seed).
func (f Files) entries() []entry {
	all := []entry{
		{"meta-data", f.MetaData},
		{"network-config", f.NetworkConfig},
		{"user-data", f.UserData},
		{"vendor-data", f.VendorData},
	}
	var out []entry
	for _, e := range all {
		if e.data != nil {
			out = append(out, e)
		}
	}
	return out
}

type entry struct {
	name string
	data []byte
}

// epoch stamps every timestamp we control, so the same files give the same
// bytes (SOURCE_DATE_EPOCH-style reproducibility).
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Write writes a seed image of the given format to path, atomically (a
// temporary file beside it, then rename). user-data is required; a nil
// meta-data becomes DefaultMetaData.
func Write(path string, f Files, format Format) error {
	if f.UserData == nil {
		return fmt.Errorf("writing seed %s: user-data is required", path)
	}
	if f.MetaData == nil {
		f.MetaData = []byte(DefaultMetaData)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing seed %s: %w", path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmpName)
		}
	}()
	switch format {
	case FormatISO:
		err = writeISO(tmpName, f)
	case FormatVFAT:
		err = writeVFAT(tmpName, f)
	default:
		err = fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return fmt.Errorf("writing seed %s: %w", path, err)
	}
	if err := os.Chmod(tmpName, 0o644); err != nil {
		return fmt.Errorf("writing seed %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("writing seed %s: %w", path, err)
	}
	ok = true
	return nil
}

func writeISO(path string, f Files) error {
	work, err := os.MkdirTemp("", "bulkhead-seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	out, err := os.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	var size int64 = 1 << 20
	for _, e := range f.entries() {
		size += int64(len(e.data)) + 2048
	}
	fs, err := iso9660.Create(file.New(out, false), size, 0, 2048, work)
	if err != nil {
		return fmt.Errorf("creating iso9660: %w", err)
	}
	for _, e := range f.entries() {
		if err := writeFSFile(fs, e); err != nil {
			return err
		}
		// go-diskfs takes each record's date from the workspace file.
		if err := os.Chtimes(filepath.Join(work, e.name), epoch, epoch); err != nil {
			return fmt.Errorf("stamping %s: %w", e.name, err)
		}
	}
	if err := os.Chtimes(work, epoch, epoch); err != nil {
		return err
	}
	// Rock Ridge keeps the exact lower-case names with dashes for Linux
	// readers, Joliet for others; plain ISO9660 would show USER_DAT.;1.
	err = fs.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		Joliet:           true,
		VolumeIdentifier: Label,
	})
	if err != nil {
		return fmt.Errorf("finalizing iso9660: %w", err)
	}
	if err := stampVolumeDescriptors(out); err != nil {
		return err
	}
	if err := stampRockRidgeTimes(out); err != nil {
		return err
	}
	// go-diskfs ends the image where the last file's data ends; a CD-ROM
	// reads whole 2048-byte sectors (and a loop device 512-byte ones), so
	// an unpadded tail would be cut off. Pad as genisoimage does.
	st, err := out.Stat()
	if err != nil {
		return err
	}
	if rem := st.Size() % 2048; rem != 0 {
		if err := out.Truncate(st.Size() + 2048 - rem); err != nil {
			return err
		}
	}
	return out.Sync()
}

// stampVolumeDescriptors overwrites the dates that go-diskfs takes from the
// clock in each volume descriptor (creation, modification, expiration,
// effective: ECMA-119 8.4.26-8.4.29, 17 bytes each at offset 813), so the
// image is byte-for-byte reproducible.
func stampVolumeDescriptors(f *os.File) error {
	const first = 16 * 2048
	date := []byte(epoch.Format("20060102150405") + "00\x00")
	buf := make([]byte, 2048)
	for i := int64(0); i < 16; i++ {
		off := first + i*2048
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("reading volume descriptor %d: %w", i, err)
		}
		if string(buf[1:6]) != "CD001" {
			return fmt.Errorf("volume descriptor %d: no CD001 signature", i)
		}
		typ := buf[0]
		if typ == 255 { // set terminator
			return nil
		}
		if typ != 1 && typ != 2 { // primary, supplementary (Joliet)
			continue
		}
		for j := 0; j < 4; j++ {
			copy(buf[813+17*j:], date)
		}
		// An expiration date means "never" when zero-filled (8.4.28).
		copy(buf[813+17*2:], "0000000000000000\x00")
		if _, err := f.WriteAt(buf, off); err != nil {
			return fmt.Errorf("writing volume descriptor %d: %w", i, err)
		}
	}
	return errors.New("no volume descriptor set terminator")
}

// stampRockRidgeTimes sets the Rock Ridge TF timestamps of the root
// directory's records (the seed has no subdirectories) to epoch: go-diskfs
// takes the attribute-change time from the workspace file's ctime, which
// no call can set, so two seeds written a second apart would differ there.
func stampRockRidgeTimes(f *os.File) error {
	pvd := make([]byte, 2048)
	if _, err := f.ReadAt(pvd, 16*2048); err != nil {
		return fmt.Errorf("reading the primary volume descriptor: %w", err)
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return errors.New("sector 16 is not a primary volume descriptor")
	}
	root := pvd[156 : 156+34]
	lba, size := binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:])
	if size > 1<<20 {
		return fmt.Errorf("root directory of %d bytes", size)
	}
	dir := make([]byte, size)
	if _, err := f.ReadAt(dir, int64(lba)*2048); err != nil {
		return fmt.Errorf("reading the root directory: %w", err)
	}
	stamp := []byte{byte(epoch.Year() - 1900), byte(epoch.Month()), byte(epoch.Day()), byte(epoch.Hour()), byte(epoch.Minute()), byte(epoch.Second()), 0}
	for off := 0; off < len(dir); {
		n := int(dir[off])
		if n == 0 { // records do not cross sectors: on to the next one
			off = (off/2048 + 1) * 2048
			continue
		}
		if off+n > len(dir) || n < 34 {
			return fmt.Errorf("root directory record at %d: bad length %d", off, n)
		}
		rec := dir[off : off+n]
		su := 33 + int(rec[32])
		if rec[32]%2 == 0 {
			su++ // the padding byte after an even-length name
		}
		for su+4 <= len(rec) {
			l := int(rec[su+2])
			if l < 4 || su+l > len(rec) {
				break
			}
			if string(rec[su:su+2]) == "TF" && l >= 5 {
				w := 7
				if rec[su+4]&0x80 != 0 {
					w = 17 // long form: not what go-diskfs writes
				}
				for t := su + 5; w == 7 && t+w <= su+l; t += w {
					copy(rec[t:t+w], stamp)
				}
			}
			su += l
		}
		off += n
	}
	if _, err := f.WriteAt(dir, int64(lba)*2048); err != nil {
		return fmt.Errorf("writing the root directory: %w", err)
	}
	return nil
}

func writeVFAT(path string, f Files) error {
	// 128 KiB as cloud-localds makes it, more when the files need it; FAT12
	// for small images as mkfs.vfat chooses, so every reader agrees on the type.
	var need int64
	for _, e := range f.entries() {
		need += (int64(len(e.data))/512 + 2) * 512
	}
	size := int64(128 << 10)
	for size < need*2+64<<10 {
		size *= 2
	}
	out, err := os.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return err
	}
	b := file.New(out, false)
	label := strings.ToUpper(Label)
	var fs filesystem.FileSystem
	switch {
	case size <= 16<<20:
		fs, err = fat12.Create(b, size, 0, 512, label, true)
	case size <= 1<<30:
		fs, err = fat16.Create(b, size, 0, 512, label, true)
	default:
		fs, err = fat32.Create(b, size, 0, 512, label, true)
	}
	if err != nil {
		return fmt.Errorf("creating vfat: %w", err)
	}
	for _, e := range f.entries() {
		if err := writeFSFile(fs, e); err != nil {
			return err
		}
	}
	if err := fatstamp.Stamp(out.Name(), epoch); err != nil {
		return err
	}
	return out.Sync()
}

func writeFSFile(fs filesystem.FileSystem, e entry) error {
	w, err := fs.OpenFile("/"+e.name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("creating %s: %w", e.name, err)
	}
	if _, err := io.Copy(w, bytes.NewReader(e.data)); err != nil {
		w.Close()
		return fmt.Errorf("writing %s: %w", e.name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", e.name, err)
	}
	return nil
}
