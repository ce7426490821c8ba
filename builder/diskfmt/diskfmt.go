package diskfmt

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/builder/rawdisk"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// Format is an output format.
type Format string

// The formats, by the name --format takes; each is also its key in the
// manifest's parts.
const (
	VMDK    Format = "vmdk"            // disk.vmdk, stream-optimized
	OVA     Format = "ova"             // disk.ova: OVF descriptor + the VMDK
	VHD     Format = "vhd"             // disk.vhd, fixed, 1 MiB aligned
	GCE     Format = "gce"             // disk.gce.tar.gz
	Vagrant Format = "vagrant-libvirt" // bulkhead-<version>.libvirt.box
)

// Formats are all the formats, in the order they are written.
var Formats = []Format{VMDK, OVA, VHD, GCE, Vagrant}

// ParseFormats parses a comma-separated list ("all" for every format).
func ParseFormats(s string) ([]Format, error) {
	var out []Format
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "all":
			return Formats, nil
		case slices.Contains(Formats, Format(f)):
			if !slices.Contains(out, Format(f)) {
				out = append(out, Format(f))
			}
		default:
			names := make([]string, len(Formats))
			for i, f := range Formats {
				names[i] = string(f)
			}
			return nil, fmt.Errorf("unknown format %q (want %s or all)", f, strings.Join(names, ", "))
		}
	}
	// Written in the order of Formats: the OVA carries the VMDK.
	slices.SortFunc(out, func(a, b Format) int { return slices.Index(Formats, a) - slices.Index(Formats, b) })
	return out, nil
}

// FileName is the file a format is written to, for a build of version.
func FileName(f Format, version string) string {
	switch f {
	case VMDK:
		return "disk.vmdk"
	case OVA:
		return "disk.ova"
	case VHD:
		return "disk.vhd"
	case GCE:
		return "disk.gce.tar.gz"
	case Vagrant:
		return "bulkhead-" + safeName(version) + ".libvirt.box"
	}
	return ""
}

// Options say what to convert.
type Options struct {
	OutDir   string   // a build's output directory (out/<name>)
	Formats  []Format // what to write
	Progress io.Writer
}

// Convert writes each format from OutDir's disk.raw (the Vagrant box from
// its disk.qcow2) and records them in its manifest.json. A format whose
// file is already there is written again. The OVA needs the VMDK, which is
// written first when it is not asked for.
func Convert(ctx context.Context, o Options) (*manifest.Build, error) {
	m, err := manifest.Read(o.OutDir)
	if err != nil {
		return nil, fmt.Errorf("converting %s (is it a build output directory?): %w", o.OutDir, err)
	}
	rawPath := filepath.Join(o.OutDir, manifest.DiskRaw)
	d, err := rawdisk.Open(rawPath)
	if err != nil {
		return nil, fmt.Errorf("converting %s: %w", o.OutDir, err)
	}
	defer d.Close()
	if d.Size()%sector != 0 {
		return nil, fmt.Errorf("converting %s: %s is %d bytes, not a whole number of %d-byte sectors", o.OutDir, rawPath, d.Size(), sector)
	}
	if m.DiskSize != 0 && m.DiskSize != d.Size() {
		return nil, fmt.Errorf("converting %s: %s is %d bytes, the manifest says %d", o.OutDir, rawPath, d.Size(), m.DiskSize)
	}
	when := time.Unix(m.SourceDateEpoch, 0).UTC()
	id := sha256.Sum256([]byte(m.Name + "\x00" + m.Version + "\x00" + m.DiskGUID))
	if m.Parts == nil {
		m.Parts = map[string]manifest.Part{}
	}
	formats := o.Formats
	if slices.Contains(formats, OVA) && !slices.Contains(formats, VMDK) {
		formats = append([]Format{VMDK}, formats...) // the OVA carries the VMDK
	}
	for _, f := range formats {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := FileName(f, m.Version)
		dst := filepath.Join(o.OutDir, name)
		start := time.Now()
		progress(o.Progress, "writing %s", dst)
		var werr error
		switch f {
		case VMDK:
			werr = writeFile(dst, func(w *os.File) error {
				return WriteVMDK(w, d, VMDKOptions{CID: uint32(id[0])<<24 | uint32(id[1])<<16 | uint32(id[2])<<8 | uint32(id[3]), FileName: name})
			})
		case OVA:
			vmdk := filepath.Join(o.OutDir, FileName(VMDK, m.Version))
			werr = writeFile(dst, func(w *os.File) error {
				return WriteOVA(w, OVAOptions{Name: m.Name + "-" + m.Version, Info: fmt.Sprintf("Bulkhead %s %s", m.Name, m.Version),
					DiskSize: d.Size(), VMDK: vmdk, MemoryMB: 2048, CPUs: 2, Time: when})
			})
		case VHD:
			var uid [16]byte
			copy(uid[:], id[4:])
			werr = writeFile(dst, func(w *os.File) error { return WriteVHD(w, d, VHDOptions{Time: when, UniqueID: uid}) })
		case GCE:
			werr = writeFile(dst, func(w *os.File) error { return WriteGCE(w, d, when) })
		case Vagrant:
			work, err := os.MkdirTemp(o.OutDir, ".vagrant-")
			if err != nil {
				return nil, fmt.Errorf("converting %s: %w", o.OutDir, err)
			}
			werr = writeFile(dst, func(w *os.File) error {
				return WriteVagrantBox(w, VagrantOptions{Qcow2: filepath.Join(o.OutDir, manifest.DiskQcow2), DiskSize: d.Size(), Work: work, Time: when})
			})
			os.RemoveAll(work)
		default:
			return nil, fmt.Errorf("converting %s: unknown format %q", o.OutDir, f)
		}
		if werr != nil {
			return nil, fmt.Errorf("converting %s to %s: %w", o.OutDir, f, werr)
		}
		size, sum, err := manifest.HashFile(dst)
		if err != nil {
			return nil, err
		}
		m.Parts[string(f)] = manifest.Part{File: name, Size: size, SHA256: sum}
		progress(o.Progress, "      %s done in %.1fs (%d bytes)", name, time.Since(start).Seconds(), size)
		// The manifest is rewritten after each format, so it never lists a
		// file that is not there, nor misses one that is.
		if err := manifest.Write(o.OutDir, m); err != nil {
			return nil, fmt.Errorf("recording %s in the manifest of %s: %w", name, o.OutDir, err)
		}
	}
	return m, nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// writeFile writes path through a temporary file renamed over it once fn
// has written it all.
func writeFile(path string, fn func(*os.File) error) error {
	tmp := path + ".partial"
	// A new file, never through a link left at its name.
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
