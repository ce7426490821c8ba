package seed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// udfImage writes files (name -> content) with genisoimage -udf, a UDF
// 1.02 / ISO9660 bridge as Windows' mastering tools write, and returns the
// image path with the ISO9660 signature wiped, so only UDF can read it.
func udfImage(t *testing.T, label string, files map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("genisoimage"); err != nil {
		t.Fatal("genisoimage not installed (apt package genisoimage)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "media.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-udf", "-V", label, "-o", img, src).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v: %s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[16*isoSector+1:], "XXXXX") // no CD001: not ISO9660 any more
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

func readRoot(t *testing.T, path, name string, limit int64) ([]byte, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ReadRootFile(f, name, limit)
}

// TestReadRootFileUDF reads a file from a UDF disc by name, in any case,
// and says when it is absent or too large.
func TestReadRootFileUDF(t *testing.T) {
	ovf := "<Environment>" + strings.Repeat("x", 5000) + "</Environment>"
	img := udfImage(t, "rd_rdfe_stable.230101-0000", map[string]string{"ovf-env.xml": ovf, "other.txt": "o"})
	got, err := readRoot(t, img, "OVF-ENV.XML", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != ovf {
		t.Errorf("got %d bytes %.40q, want %d bytes %.40q", len(got), got, len(ovf), ovf)
	}
	if _, err := readRoot(t, img, "missing.xml", 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got error %v, want os.ErrNotExist", err)
	}
	if _, err := readRoot(t, img, "ovf-env.xml", 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit 100: got error %v, want ErrTooLarge", err)
	}
}

// TestReadRootFileISO reads ovf-env.xml from a plain ISO9660 disc.
func TestReadRootFileISO(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ovf-env.xml"), []byte("<x/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "m.iso")
	if out, err := exec.Command("genisoimage", "-quiet", "-r", "-o", img, dir).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v: %s", err, out)
	}
	got, err := readRoot(t, img, "ovf-env.xml", 1<<20)
	if err != nil || string(got) != "<x/>" {
		t.Fatalf("got %q, %v, want <x/>", got, err)
	}
}

// TestHostileUDF: damaged UDF structures are errors naming the problem,
// never a panic or a huge allocation.
func TestHostileUDF(t *testing.T) {
	img := udfImage(t, "rd_rdfe_stable", map[string]string{"ovf-env.xml": "<Environment/>"})
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// find locates the first descriptor with tag id in the image (inside
	// the partition, tags record partition-relative blocks).
	find := func(id uint16) int {
		for off := 0; off+udfSector <= len(good); off += udfSector {
			if binary.LittleEndian.Uint16(good[off:]) == id && udfTag(good[off:], id, binary.LittleEndian.Uint32(good[off+12:])) == nil {
				return off
			}
		}
		t.Fatalf("no descriptor %d in the image", id)
		return 0
	}
	// retag recomputes a tag's checksum after an edit.
	retag := func(b []byte) {
		var sum byte
		for i := 0; i < 16; i++ {
			if i != 4 {
				sum += b[i]
			}
		}
		b[4] = sum
	}
	for _, tc := range []struct {
		name  string
		edit  func(b []byte)
		want  string
		isErr error
	}{
		{"bad anchor checksum", func(b []byte) { b[256*udfSector+4]++ }, "no CD001", nil},
		{"volume descriptors past the end", func(b []byte) {
			binary.LittleEndian.PutUint32(b[256*udfSector+20:], 1<<30)
			retag(b[256*udfSector:])
		}, "past the end", nil},
		{"file larger than the image", func(b []byte) {
			for off := find(tagFE); off+udfSector <= len(b); off += udfSector {
				if binary.LittleEndian.Uint16(b[off:]) == tagFE && b[off+27] == 5 {
					binary.LittleEndian.PutUint64(b[off+56:], 1<<40)
					return
				}
			}
		}, "over the size limit", nil},
		{"directory entry tag broken", func(b []byte) {
			fid := find(tagFID)
			binary.LittleEndian.PutUint16(b[fid:], 999)
		}, "want a file identifier", nil},
		{"extent past the end", func(b []byte) {
			for off := 0; off+udfSector <= len(b); off += udfSector {
				if binary.LittleEndian.Uint16(b[off:]) == tagFE && b[off+27] == 5 {
					lEA := int(binary.LittleEndian.Uint32(b[off+168:]))
					binary.LittleEndian.PutUint32(b[off+176+lEA+4:], 1<<30)
					return
				}
			}
		}, "past the end", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tc.edit(b)
			path := filepath.Join(t.TempDir(), "bad.iso")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readRoot(t, path, "ovf-env.xml", 1<<20)
			switch {
			case err == nil:
				t.Fatal("got no error, want one")
			case tc.isErr != nil && !errors.Is(err, tc.isErr):
				t.Fatalf("got error %v, want %v", err, tc.isErr)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("got error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// FuzzReadRootFileUDF: no UDF image makes the reader panic.
func FuzzReadRootFileUDF(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.img")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = readRoot(t, path, "ovf-env.xml", 1<<20)
	})
}
