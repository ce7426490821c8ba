package payload

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
)

// FormatVersion is the manifest format this code writes and reads.
const FormatVersion = 1

// Part names in Manifest.Parts: the four files an update needs.
const (
	PartUsr    = "usr"    // erofs image for the usr-<slot> partition
	PartVerity = "verity" // veritysetup hash device for usr-<slot>-verity
	PartKernel = "kernel" // vmlinuz for the ESP slot directory
	PartInitrd = "initrd" // initrd.img for the ESP slot directory
)

// RequiredParts are the parts every update manifest carries.
var RequiredParts = []string{PartUsr, PartVerity, PartKernel, PartInitrd}

// IndexPart names the optional part holding the chunk index (casync .caibx)
// of a required part: a host with an earlier version assembles the part
// from chunks it has and fetches only the others from the repository's
// chunk store (package delta). Hosts that know no index parts ignore them.
func IndexPart(part string) string { return part + ".caibx" }

// IndexFile is the file name of a part's chunk index.
func IndexFile(partFile string) string { return partFile + ".caibx" }

// ErrInvalidManifest wraps every problem found in a manifest.
var ErrInvalidManifest = errors.New("invalid update manifest")

// Part is one file of an update, relative to the version's directory.
type Part struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest is versions/<version>/manifest.json in an update repository. Its
// exact bytes are signed (manifest.json.sig), so it is parsed only after the
// signature checks out.
type Manifest struct {
	Format         int             `json:"format"`
	Name           string          `json:"name"` // image name (builder definition)
	Version        string          `json:"version"`
	MinFromVersion string          `json:"minFromVersion,omitempty"` // oldest version that may update to this one
	KernelVersion  string          `json:"kernelVersion"`
	KernelArgs     []string        `json:"kernelArgs"`
	RootHash       string          `json:"rootHash"` // dm-verity root hash of the usr part, hex
	VeritySalt     string          `json:"veritySalt"`
	Parts          map[string]Part `json:"parts"`
}

// Parse decodes and validates a manifest; unknown fields are refused so a
// newer format is not half-understood.
func Parse(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the manifest", ErrInvalidManifest)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal renders the manifest the way publish signs it.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding update manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Validate reports every problem with its field path.
func (m *Manifest) Validate() error {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	if m.Format != FormatVersion {
		add("format: %d, want %d", m.Format, FormatVersion)
	}
	if m.Name == "" {
		add("name: must be set")
	}
	if err := CheckVersion(m.Version); err != nil {
		add("version: %v", err)
	}
	if m.MinFromVersion != "" {
		if err := CheckVersion(m.MinFromVersion); err != nil {
			add("minFromVersion: %v", err)
		}
	}
	if b, err := hex.DecodeString(m.RootHash); err != nil || len(b) != 32 {
		add("rootHash: %q is not a hex sha256", m.RootHash)
	}
	if b, err := hex.DecodeString(m.VeritySalt); err != nil || len(b) > 256 {
		add("veritySalt: %q is not hex of at most 256 bytes", m.VeritySalt)
	}
	for i, a := range m.KernelArgs {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$;") {
			add("kernelArgs[%d]: %q is not a plain kernel argument", i, a)
		}
	}
	for _, name := range RequiredParts {
		if _, ok := m.Parts[name]; !ok {
			add("parts.%s: missing", name)
		}
	}
	if _, has := m.BootChain(); has {
		for _, f := range bootabi.ChainFiles {
			if _, ok := m.Parts[bootabi.ChainPart(f.Name)]; !ok {
				add("parts.%s: missing (the boot chain is installed whole or not at all)", bootabi.ChainPart(f.Name))
			}
		}
	}
	names := make([]string, 0, len(m.Parts))
	for n := range m.Parts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pt := m.Parts[n]
		if pt.File == "" || strings.Contains(pt.File, "/") || strings.HasPrefix(pt.File, ".") {
			add("parts.%s.file: %q must be a plain file name", n, pt.File)
		}
		if pt.Size <= 0 {
			add("parts.%s.size: must be > 0", n)
		}
		if b, err := hex.DecodeString(pt.SHA256); err != nil || len(b) != 32 {
			add("parts.%s.sha256: %q is not a hex sha256", n, pt.SHA256)
		}
	}
	if len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidManifest, strings.Join(p, "; "))
	}
	return nil
}

// BootChain returns the boot chain's parts by chain file name
// (bootabi.ChainFiles), and whether the manifest carries a chain at all:
// manifests published before boot chain updates have none. The chain parts
// are optional for readers, so hosts that know none ignore them.
func (m *Manifest) BootChain() (map[string]Part, bool) {
	out := map[string]Part{}
	for name, pt := range m.Parts {
		if strings.HasPrefix(name, bootabi.ChainPartPrefix) {
			out[strings.TrimPrefix(name, bootabi.ChainPartPrefix)] = pt
		}
	}
	return out, len(out) > 0
}

// BootChainVersion is the version of the manifest's boot chain
// (bootabi.ChainVersion of its files' sha256s), or "" when it has none.
func (m *Manifest) BootChainVersion() string {
	parts, ok := m.BootChain()
	if !ok {
		return ""
	}
	sums := map[string]string{}
	for n, pt := range parts {
		sums[n] = pt.SHA256
	}
	return bootabi.ChainVersion(sums)
}
