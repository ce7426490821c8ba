package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Names of the build outputs inside out/<name>/. `builder publish` and the
// QEMU tests read them; nothing else about the layout is promised.
const (
	DiskRaw      = "disk.raw"
	DiskQcow2    = "disk.qcow2"
	ManifestFile = "manifest.json"
	SBOMFile     = "sbom.cdx.json" // CycloneDX 1.5 JSON: the packages and binaries in the image
	PayloadDir   = "payload"
	UsrImage     = "payload/usr.erofs"  // the /usr slot image
	UsrVerity    = "payload/usr.verity" // its dm-verity hash tree (with superblock)
	KernelImage  = "payload/vmlinuz"
	InitrdImage  = "payload/initrd.img"
	// BootChainDir holds the boot chain's files (bootabi.ChainFiles), each
	// a part of the build manifest under bootabi.ChainPart(name).
	BootChainDir = "payload/bootchain"
)

// BootChainFile is the output path of a boot chain file.
func BootChainFile(name string) string { return BootChainDir + "/" + name }

// Part keys in Manifest.Parts.
const (
	PartUsr    = "usr"
	PartVerity = "verity"
	PartKernel = "kernel"
	PartInitrd = "initrd"
	PartRaw    = "disk.raw"
	PartQcow2  = "disk.qcow2"
)

// Part is one output file.
type Part struct {
	File   string `json:"file"` // relative to the output directory
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Partition is one GPT entry of disk.raw.
type Partition struct {
	Label string `json:"label"`
	Type  string `json:"type"`
	UUID  string `json:"uuid"`
	Start int64  `json:"start"` // bytes
	Size  int64  `json:"size"`  // bytes
}

// Build describes one build. Same inputs give the same manifest.
type Build struct {
	Name            string          `json:"name"`
	Version         string          `json:"version"`
	SourceDateEpoch int64           `json:"sourceDateEpoch"`
	KernelVersion   string          `json:"kernelVersion"`
	KernelArgs      []string        `json:"kernelArgs"` // the definition's extra arguments
	RootHash        string          `json:"rootHash"`   // dm-verity root hash of the /usr image
	VeritySalt      string          `json:"veritySalt"`
	DiskGUID        string          `json:"diskGUID"`
	DiskSize        int64           `json:"diskSize"`
	Parts           map[string]Part `json:"parts"`
	Partitions      []Partition     `json:"partitions"`
	// Builder is the builder that made the image; Binaries are our
	// programs it installed in /usr/bin.
	Builder  Tool     `json:"builder"`
	Binaries []Binary `json:"binaries"`
	// Packages is the package lock: every Debian package in the image, by
	// name and architecture, with the .deb it was installed from.
	Packages []Package `json:"packages"`
	SBOM     Part      `json:"sbom"` // SBOMFile
}

// Tool names a program by its version and the Go release that built it.
type Tool struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion,omitempty"`
}

// Binary is one of our programs in the image's /usr/bin.
type Binary struct {
	Name string `json:"name"`
	Tool
	SHA256 string `json:"sha256"`
}

// Package is one installed Debian package and the sha256 of its .deb.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	SHA256       string `json:"sha256"`
}

// ReadFile loads a build manifest from its path.
func ReadFile(path string) (*Build, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading build manifest: %w", err)
	}
	var m Build
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading build manifest %s: %w", path, err)
	}
	return &m, nil
}

// Read loads out/<name>/manifest.json.
func Read(outDir string) (*Build, error) {
	return ReadFile(filepath.Join(outDir, ManifestFile))
}

// Partition returns the partition with label, or nil.
func (m *Build) Partition(label string) *Partition {
	for i := range m.Partitions {
		if m.Partitions[i].Label == label {
			return &m.Partitions[i]
		}
	}
	return nil
}

// HashFile returns the size and hex sha256 of a file. Holes in sparse files
// (disk.raw is mostly holes) are hashed as zeros without reading them.
func HashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("hashing %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("hashing %s: %w", path, err)
	}
	h := sha256.New()
	if err := hashSparse(h, f, st.Size()); err != nil {
		return 0, "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return st.Size(), hex.EncodeToString(h.Sum(nil)), nil
}

// hashSparse feeds size bytes of f to w, data extents read from the file
// and holes (found with SEEK_DATA/SEEK_HOLE) written as zeros.
func hashSparse(w io.Writer, f *os.File, size int64) error {
	zeros := make([]byte, 1<<20)
	writeZeros := func(n int64) {
		for n > 0 {
			k := min(n, int64(len(zeros)))
			w.Write(zeros[:k])
			n -= k
		}
	}
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil { // ENXIO: only a hole is left
			writeZeros(size - off)
			return nil
		}
		writeZeros(data - off)
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if _, err := io.Copy(w, io.NewSectionReader(f, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// Write writes out/<name>/manifest.json.
func Write(outDir string, m *Build) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outDir, ManifestFile), append(b, '\n'), 0o644)
}
