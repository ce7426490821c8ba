package bootchain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
)

// Write points, in install order: the progress each write reports before
// it starts. A power-cut test cuts the machine at each one.
const (
	MarkGrubEFI = "install bootloader " + bootabi.ChainGrubEFI
	MarkMM      = "install bootloader " + bootabi.ChainMM
	MarkShim    = "install bootloader " + bootabi.ChainShim
	MarkCore    = "install bootloader core"
	MarkMBR     = "install bootloader mbr"
	MarkGrubCfg = "install bootloader " + bootabi.ChainGrubCfg
	MarkRecord  = "install bootloader record"
)

// Markers are the write points in the order Install passes them.
var Markers = []string{MarkGrubEFI, MarkMM, MarkShim, MarkCore, MarkMBR, MarkGrubCfg, MarkRecord}

// RecordFile is the installed chain's record, at the ESP's root.
// PendingFile is an install's record while it runs: written before its
// first write, removed after RecordFile.
const (
	RecordFile  = "bootchain.json"
	PendingFile = "bootchain.pending.json"
)

// Unknown is the version of a chain installed before boot chain updates:
// the builder wrote it and nothing recorded it.
const Unknown = "unknown (built before boot chain updates)"

// Suffixes of an ESP file's new copy (written, then renamed over it) and
// of the previous one, kept until the slot that brought the chain is
// blessed.
const (
	NewSuffix  = ".new"
	PrevSuffix = ".prev"
)

// Refusals and failures callers tell apart with errors.Is.
var (
	ErrBadFile    = errors.New("boot chain file does not match the signed manifest")
	ErrIncomplete = errors.New("boot chain incomplete")
	ErrReadBack   = errors.New("boot chain file read back does not match")
	ErrChainRan   = errors.New("the installed boot chain has booted the host since it was installed")
)

// Chain is a boot chain read whole into memory and checked, every file,
// against the sizes and sha256s of the signed manifest before anything is
// written: what is installed is what was checked.
type Chain struct {
	Version string
	// OSVersion is the Bulkhead version the chain came with: the record
	// keeps it, so that a bless never puts an older version's chain over a
	// newer one.
	OSVersion string
	Files     map[string][]byte // by bootabi chain file name
	Sums      map[string]string // sha256 by name, as the manifest has them
	Packages  map[string]string // the packages file, NAME -> version
}

// Load reads the chain's files (paths by chain file name) and checks each
// against its manifest part. Every bootabi.ChainFiles name must be there;
// parts of names this code does not know (a later chain's) count in the
// version only.
func Load(paths map[string]string, parts map[string]payload.Part) (*Chain, error) {
	c := &Chain{Files: map[string][]byte{}, Sums: map[string]string{}}
	for name, pt := range parts {
		c.Sums[name] = pt.SHA256
	}
	c.Version = bootabi.ChainVersion(c.Sums)
	for _, f := range bootabi.ChainFiles {
		pt, ok := parts[f.Name]
		if !ok {
			return nil, fmt.Errorf("loading boot chain %s: no %s in the manifest: %w", c.Version, f.Name, ErrIncomplete)
		}
		p, ok := paths[f.Name]
		if !ok {
			return nil, fmt.Errorf("loading boot chain %s: %s not downloaded: %w", c.Version, f.Name, ErrIncomplete)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("loading boot chain %s: %w", c.Version, err)
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != pt.Size || hex.EncodeToString(sum[:]) != pt.SHA256 {
			return nil, fmt.Errorf("loading boot chain %s: %s is %d bytes sha256 %x, the manifest says %d bytes %s: %w",
				c.Version, p, len(b), sum, pt.Size, pt.SHA256, ErrBadFile)
		}
		c.Files[f.Name] = b
	}
	c.Packages = bootabi.ParseRelease(c.Files[bootabi.ChainPackages])
	return c, nil
}

// LoadDir reads a chain from a directory holding its files by chain file
// name (bootabi.UsrChainDir in a booted /usr, which dm-verity vouches for):
// its version is the digest of the files as they are.
func LoadDir(dir string) (*Chain, error) {
	c := &Chain{Files: map[string][]byte{}, Sums: map[string]string{}}
	for _, f := range bootabi.ChainFiles {
		b, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			return nil, fmt.Errorf("loading the boot chain from %s: %w: %w", dir, ErrIncomplete, err)
		}
		sum := sha256.Sum256(b)
		c.Files[f.Name], c.Sums[f.Name] = b, hex.EncodeToString(sum[:])
	}
	c.Version = bootabi.ChainVersion(c.Sums)
	c.Packages = bootabi.ParseRelease(c.Files[bootabi.ChainPackages])
	return c, nil
}

// Describe is the chain's version for people.
func (c *Chain) Describe() string { return bootabi.DescribeChain(c.Version, c.Packages) }

// Core is where a BIOS core image sits on the disk and what its bytes are.
type Core struct {
	LBA     uint64 `json:"lba"`
	Sectors uint64 `json:"sectors"`
	SHA256  string `json:"sha256"`
}

// Record is RecordFile: the installed chain.
type Record struct {
	Version string `json:"version"`
	// OSVersion is the Bulkhead version whose chain this is ("" when an
	// install did not say).
	OSVersion string            `json:"osVersion,omitempty"`
	Packages  map[string]string `json:"packages,omitempty"`
	Files     map[string]string `json:"files"` // sha256 by chain file name, as the manifest has them
	// Previous is the chain installed before, and PrevSector0 and PrevCore
	// the BIOS boot code it had (for Restore); Unknown for the builder's.
	Previous    string `json:"previous,omitempty"`
	PrevSector0 []byte `json:"prevSector0,omitempty"`
	PrevCore    *Core  `json:"prevCore,omitempty"`
	// Core is the patched core image sector 0 points at; nil for a host
	// without a BIOS boot partition.
	Core *Core `json:"core,omitempty"`
	// BootID is the kernel's boot ID when the chain was installed: a bless
	// in that same boot has not seen the chain boot yet.
	BootID string `json:"bootID,omitempty"`
}

// Target is the host a chain is installed on.
type Target struct {
	ESP string // host path of the ESP's root
	// Disk is the boot disk's device (host path) and BIOSPart the number of
	// its BIOS boot partition ("bios"); Disk "" for a host without one,
	// whose BIOS boot code is left alone.
	Disk     string
	BIOSPart int
	// BootID is the running kernel's boot ID
	// (/proc/sys/kernel/random/boot_id), "" when unknown.
	BootID string
}

// Installer installs chains on a Target.
type Installer struct {
	Target
	Log *slog.Logger
	// Progress is told each write point (a Markers string) before its write.
	Progress func(what string, done, total int64)
	// Force writes every file and the BIOS core again even where they
	// match (the core into the other half, and sector 0 pointing at it):
	// `hostctl bootloader update --force`.
	Force bool
	// Hook, when set, runs at each write point before its write, and
	// between the steps of one (a Markers string and ": new written",
	// ": previous kept", ": written"); an error stops the install there,
	// as a power cut would. Tests cut with it.
	Hook func(point string) error
}

func (in Installer) log() *slog.Logger {
	if in.Log == nil {
		return slog.Default()
	}
	return in.Log
}

func (in Installer) mark(m string) error {
	if in.Progress != nil {
		in.Progress(m, 0, 1)
	}
	return in.step(m)
}

// substep runs the hook between the writes of write point mark.
func (in Installer) substep(mark, what string) error {
	if mark == "" {
		return nil
	}
	return in.step(mark + what)
}

// step runs the hook at a point between writes.
func (in Installer) step(m string) error {
	if in.Hook != nil {
		if err := in.Hook(m); err != nil {
			return fmt.Errorf("at %q: %w", m, err)
		}
	}
	return nil
}

// ReadRecord reads the ESP's record; nil and no error when there is none
// (a host built before boot chain updates).
func ReadRecord(esp string) (*Record, error) { return readRecordFile(esp, RecordFile) }

func readRecordFile(esp, name string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(esp, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the boot chain record: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading the boot chain record %s: %w", filepath.Join(esp, name), err)
	}
	return &r, nil
}

// InstalledVersion is the version of the installed chain, Unknown when no
// chain was ever recorded.
func InstalledVersion(esp string) (string, error) {
	r, err := ReadRecord(esp)
	if err != nil || r == nil {
		return Unknown, err
	}
	return r.Version, nil
}

// Install puts the chain on the host, in bootabi.ChainFiles order:
//
//   - each ESP file NAME: NAME.new written and read back against its sha256,
//     the filesystem synced, the current NAME copied to NAME.prev (FAT has
//     no hard links), NAME.new renamed over NAME, synced again;
//   - the BIOS core into the half of the BIOS boot partition sector 0 does
//     not point into, flushed and read back, then sector 0 (boot.img's code,
//     the disk's own bytes from 0x1b8 on) pointing at it, in one write;
//   - the record, last.
//
// A cut anywhere leaves every file old or new and whole, and sector 0
// pointing at a whole core. Run again, it finishes the job: what already
// matches is not written again. Everything that can be refused (a core too
// big, a partition that is not BIOS boot) is, before the first write.
func (in Installer) Install(ctx context.Context, c *Chain) error {
	for _, f := range bootabi.ChainFiles {
		if _, ok := c.Files[f.Name]; !ok {
			return fmt.Errorf("installing boot chain %s: no %s: %w", c.Version, f.Name, ErrIncomplete)
		}
	}
	old, err := ReadRecord(in.ESP)
	if err != nil {
		return err
	}
	pending, err := readRecordFile(in.ESP, PendingFile)
	if err != nil {
		return err
	}
	if pending != nil && pending.Version != c.Version {
		pending = nil // another chain's install, cut short: this one starts afresh
	}
	// A rerun of an install that finished keeps its record's history, and
	// one cut short the history its first run decided (PendingFile). A new
	// chain over one whose .prev copies are still kept (no bless since)
	// keeps those, of the last chain a blessed boot ran, as the previous.
	same := old != nil && old.Version == c.Version
	kept := old != nil && !same && olderKept(in.ESP, old)
	rec := &Record{Version: c.Version, OSVersion: c.OSVersion, Packages: c.Packages, Files: c.Sums, Previous: Unknown, BootID: in.BootID}
	switch {
	case same:
		rec.Previous, rec.PrevSector0, rec.PrevCore, rec.BootID = old.Previous, old.PrevSector0, old.PrevCore, old.BootID
		if rec.OSVersion == "" {
			rec.OSVersion = old.OSVersion
		}
	case pending != nil:
		rec.Previous, rec.PrevSector0, rec.PrevCore = pending.Previous, pending.PrevSector0, pending.PrevCore
	case kept:
		rec.Previous, rec.PrevSector0, rec.PrevCore = old.Previous, old.PrevSector0, old.PrevCore
	case old != nil:
		rec.Previous = old.Version
	}
	var disk *os.File
	var bios biosPlan
	if in.Disk != "" {
		if disk, err = os.OpenFile(in.Disk, os.O_RDWR, 0); err != nil {
			return fmt.Errorf("opening boot disk %s for its BIOS boot code: %w", in.Disk, err)
		}
		defer disk.Close()
		if bios, err = planBIOS(disk, in.Disk, in.BIOSPart, c.Files[bootabi.ChainBootImg], c.Files[bootabi.ChainCore], in.Force); err != nil {
			return err
		}
		if !same && pending == nil && !kept && !bios.done && bios.oldSector0OK {
			// What a restore would point sector 0 back at.
			prev := bios.prevCore
			rec.PrevSector0, rec.PrevCore = bios.prevSector0[:bootabi.BootPartStart], &prev
		}
		sum := sha256.Sum256(bios.core)
		rec.Core = &Core{LBA: bios.target, Sectors: uint64(len(bios.core)) / sector, SHA256: hex.EncodeToString(sum[:])}
	}
	if !same && pending == nil {
		// Nothing is written yet: note what this install found, for a
		// rerun after a cut to record the same history.
		if err := writeRecordFile(ctx, in.ESP, PendingFile, rec); err != nil {
			return fmt.Errorf("installing boot chain %s: %w", c.Version, err)
		}
	}
	for _, f := range bootabi.ChainFiles {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case f.ESP != "":
			if err := in.installFile(ctx, f, c, !same); err != nil {
				return fmt.Errorf("installing boot chain %s: %w", c.Version, err)
			}
		case f.Name == bootabi.ChainCore && disk != nil:
			if err := in.installBIOS(disk, bios); err != nil {
				return fmt.Errorf("installing boot chain %s: %w", c.Version, err)
			}
		}
	}
	if err := in.mark(MarkRecord); err != nil {
		return err
	}
	if old == nil || !recordEqual(old, rec) {
		if err := writeRecord(ctx, in.ESP, rec); err != nil {
			return fmt.Errorf("installing boot chain %s: %w", c.Version, err)
		}
		if err := in.substep(MarkRecord, ": written"); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(in.ESP, PendingFile)); err == nil {
		slotwriter.SyncDir(in.ESP)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("installing boot chain %s: %w", c.Version, err)
	}
	if same {
		return nil
	}
	in.log().Info("boot chain installed", "version", c.Describe(), "previous", rec.Previous)
	return nil
}

func recordEqual(a, b *Record) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// writeRecord writes the record through RecordFile.new and a rename.
func writeRecord(ctx context.Context, esp string, r *Record) error {
	return writeRecordFile(ctx, esp, RecordFile, r)
}

func writeRecordFile(ctx context.Context, esp, name string, r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the boot chain record: %w", err)
	}
	return Installer{}.replace(ctx, replacement{dst: filepath.Join(esp, name), data: append(b, '\n')})
}

// installFile puts one ESP file in place (see Install). keep: the current
// file is another chain's, to keep as .prev unless one is kept already.
func (in Installer) installFile(ctx context.Context, f bootabi.ChainFile, c *Chain, keep bool) error {
	dst := filepath.Join(in.ESP, filepath.FromSlash(f.ESP))
	if sumFile(dst) == c.Sums[f.Name] && !in.Force {
		return nil
	}
	m := "install bootloader " + f.Name
	if err := in.mark(m); err != nil {
		return err
	}
	return in.replace(ctx, replacement{dst: dst, data: c.Files[f.Name], sum: c.Sums[f.Name], keep: keep, mark: m})
}

// replacement is one file to put in place.
type replacement struct {
	dst  string
	data []byte
	sum  string // hex sha256 of data, from the manifest; "" to compute
	keep bool   // keep the current dst as dst.prev
	mark string // the write point, for the hook's steps; "" for none
}

// replace writes data to dst.new, checks it read back (against sum, or
// data's own when sum is ""), syncs the filesystem, copies the current dst
// to dst.prev (with keep, when there is no dst.prev: an existing one is an
// older chain's that a blessed boot ran, or this install's own), renames
// dst.new over dst and syncs.
func (in Installer) replace(ctx context.Context, r replacement) error {
	dst, data, sum := r.dst, r.data, r.sum
	if sum == "" {
		s := sha256.Sum256(data)
		sum = hex.EncodeToString(s[:])
	}
	n, got, err := slotwriter.Install(ctx, bytes.NewReader(data), dst+NewSuffix, 0o644)
	if err != nil {
		return err
	}
	if n != int64(len(data)) || got != sum {
		os.Remove(dst + NewSuffix)
		return fmt.Errorf("reading back %s: %d bytes sha256 %s, want %d bytes %s: %w", dst+NewSuffix, n, got, len(data), sum, ErrReadBack)
	}
	dir := filepath.Dir(dst)
	if err := slotwriter.SyncFS(dir); err != nil {
		return err
	}
	if err := in.substep(r.mark, ": new written"); err != nil {
		return err
	}
	if _, err := os.Stat(dst + PrevSuffix); r.keep && errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dst); err == nil {
			if _, _, err := slotwriter.InstallFile(ctx, dst, dst+PrevSuffix, 0o644); err != nil {
				return fmt.Errorf("keeping the previous %s: %w", dst, err)
			}
			if err := slotwriter.SyncFS(dir); err != nil {
				return err
			}
			if err := in.substep(r.mark, ": previous kept"); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(dst+NewSuffix, dst); err != nil {
		return fmt.Errorf("installing %s: %w", dst, err)
	}
	slotwriter.SyncDir(dir)
	return slotwriter.SyncFS(dir)
}

// installBIOS writes the core into its half, then sector 0 (see Install).
func (in Installer) installBIOS(disk *os.File, p biosPlan) error {
	if p.done {
		return nil
	}
	if err := in.mark(MarkCore); err != nil {
		return err
	}
	if !sectorsEqual(disk, p.target, p.core) {
		if err := writeSectors(disk, p.target, p.core, "the BIOS core image"); err != nil {
			return err
		}
		if err := in.substep(MarkCore, ": written"); err != nil {
			return err
		}
	}
	if err := in.mark(MarkMBR); err != nil {
		return err
	}
	// Sector 0 read again: its bytes from 0x1b8 on (disk signature,
	// protective MBR) are the disk's, whatever changed them since the plan.
	s0 := make([]byte, sector)
	if _, err := disk.ReadAt(s0, 0); err != nil {
		return fmt.Errorf("reading sector 0 of %s: %w", disk.Name(), err)
	}
	next := slices.Clone(p.sector0)
	copy(next[bootabi.BootPartStart:], s0[bootabi.BootPartStart:])
	if bytes.Equal(next, s0) {
		return nil
	}
	// One sector, one write: a cut leaves the old pointer or the new one,
	// and both name a whole core.
	if err := writeSectors(disk, 0, next, "the boot sector"); err != nil {
		return err
	}
	if err := in.substep(MarkMBR, ": written"); err != nil {
		return err
	}
	in.log().Info("BIOS boot code installed", "device", disk.Name(), "coreLBA", p.target)
	return nil
}

// sumFile is a file's hex sha256, "" when it cannot be read.
func sumFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// PreviousKept tells whether any ESP file of the chain has a .prev copy.
func PreviousKept(esp string) bool {
	for _, f := range bootabi.ChainFiles {
		if f.ESP == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(esp, filepath.FromSlash(f.ESP)) + PrevSuffix); err == nil {
			return true
		}
	}
	return false
}

// olderKept tells whether a .prev copy is of a chain older than the
// recorded one (kept since its install, no bless since), rather than the
// recorded chain's own, kept by a cut-short install of a new one.
func olderKept(esp string, rec *Record) bool {
	for _, f := range bootabi.ChainFiles {
		if f.ESP == "" {
			continue
		}
		sum := sumFile(filepath.Join(esp, filepath.FromSlash(f.ESP)) + PrevSuffix)
		if sum != "" && sum != rec.Files[f.Name] {
			return true
		}
	}
	return false
}
