package bootchain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
)

// FileStatus is one installed ESP file against the record.
type FileStatus struct {
	Name   string `json:"name"` // chain file name
	Path   string `json:"path"` // on the ESP
	SHA256 string `json:"sha256,omitempty"`
	OK     bool   `json:"ok"`
	// Problem says what is wrong: missing, damaged (another sha256), or
	// not recorded (a host built before boot chain updates).
	Problem string `json:"problem,omitempty"`
}

// BIOSStatus is the BIOS boot code on the boot disk.
type BIOSStatus struct {
	Device    string `json:"device"`
	Partition int    `json:"partition"`
	CoreLBA   uint64 `json:"coreLBA"`
	Half      int    `json:"half"` // 1 or 2: the half of the BIOS boot partition sector 0 points into; 0 outside
	OK        bool   `json:"ok"`
	Problem   string `json:"problem,omitempty"`
}

// Status is the installed chain, as `hostctl bootloader status` shows it.
type Status struct {
	Version      string            `json:"version"`             // Unknown without a record
	OSVersion    string            `json:"osVersion,omitempty"` // the Bulkhead version it came with
	Description  string            `json:"description"`
	Packages     map[string]string `json:"packages,omitempty"`
	Previous     string            `json:"previous,omitempty"`
	PreviousKept bool              `json:"previousKept"`
	Files        []FileStatus      `json:"files"`
	BIOS         *BIOSStatus       `json:"bios,omitempty"`
}

// OK tells whether every file and the BIOS core match the record.
func (s Status) OK() bool {
	for _, f := range s.Files {
		if !f.OK {
			return false
		}
	}
	return s.BIOS == nil || s.BIOS.OK
}

// ReadStatus checks the installed chain against its record: each ESP
// file's sha256, and the core sector 0 points at.
func ReadStatus(t Target) (Status, error) {
	s := Status{Version: Unknown, Description: Unknown, PreviousKept: PreviousKept(t.ESP)}
	rec, err := ReadRecord(t.ESP)
	if err != nil {
		return s, err
	}
	if rec != nil {
		s.Version, s.OSVersion, s.Packages, s.Previous = rec.Version, rec.OSVersion, rec.Packages, rec.Previous
		s.Description = bootabi.DescribeChain(rec.Version, rec.Packages)
	}
	for _, f := range bootabi.ChainFiles {
		if f.ESP == "" {
			continue
		}
		fs := FileStatus{Name: f.Name, Path: f.ESP}
		got := sumFile(filepath.Join(t.ESP, filepath.FromSlash(f.ESP)))
		switch {
		case got == "":
			fs.Problem = "missing"
		case rec == nil || rec.Files[f.Name] == "":
			fs.SHA256, fs.OK, fs.Problem = got, true, "not recorded"
		case got != rec.Files[f.Name]:
			fs.SHA256, fs.Problem = got, fmt.Sprintf("damaged: sha256 %s, recorded %s", got, rec.Files[f.Name])
		default:
			fs.SHA256, fs.OK = got, true
		}
		s.Files = append(s.Files, fs)
	}
	if t.Disk != "" {
		b, err := biosStatus(t, rec)
		if err != nil {
			return s, err
		}
		s.BIOS = &b
	}
	return s, nil
}

func biosStatus(t Target, rec *Record) (BIOSStatus, error) {
	b := BIOSStatus{Device: t.Disk, Partition: t.BIOSPart}
	f, err := os.Open(t.Disk)
	if err != nil {
		// The ESP part of the status stands without it.
		b.Problem = fmt.Sprintf("cannot read the boot disk: %v", err)
		return b, nil
	}
	defer f.Close()
	part, err := readGPTPart(f, t.BIOSPart)
	if err != nil {
		b.Problem = err.Error()
		return b, nil
	}
	s0 := make([]byte, sector)
	if _, err := f.ReadAt(s0, 0); err != nil {
		return b, fmt.Errorf("reading sector 0 of %s: %w", t.Disk, err)
	}
	b.CoreLBA = bootabi.CoreLBA(s0)
	half := part.Sectors() / 2
	switch {
	case b.CoreLBA >= part.Start && b.CoreLBA < part.Start+half:
		b.Half = 1
	case b.CoreLBA >= part.Start+half && b.CoreLBA <= part.End:
		b.Half = 2
	default:
		b.Problem = fmt.Sprintf("sector 0 points at LBA %d, outside the BIOS boot partition (LBA %d-%d)", b.CoreLBA, part.Start, part.End)
		return b, nil
	}
	if rec == nil || rec.Core == nil {
		b.OK, b.Problem = true, "not recorded"
		return b, nil
	}
	if rec.Core.LBA != b.CoreLBA {
		b.Problem = fmt.Sprintf("sector 0 points at LBA %d, the record at %d", b.CoreLBA, rec.Core.LBA)
		return b, nil
	}
	core := make([]byte, rec.Core.Sectors*sector)
	if _, err := f.ReadAt(core, int64(b.CoreLBA)*sector); err != nil {
		return b, fmt.Errorf("reading the BIOS core at LBA %d of %s: %w", b.CoreLBA, t.Disk, err)
	}
	if sum := sha256.Sum256(core); hex.EncodeToString(sum[:]) != rec.Core.SHA256 {
		b.Problem = fmt.Sprintf("damaged: the core at LBA %d has sha256 %x, recorded %s", b.CoreLBA, sum, rec.Core.SHA256)
		return b, nil
	}
	b.OK = true
	return b, nil
}
