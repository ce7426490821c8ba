package seed

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func testFiles() Files {
	return Files{
		UserData:      []byte("#cloud-config\nhostname: seeded\n"),
		MetaData:      []byte("instance-id: iid-test\nlocal-hostname: seeded\n"),
		NetworkConfig: []byte("version: 2\nethernets: {}\n"),
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		format    Format
		files     Files
		wantType  string
		wantLabel string
	}{
		{"iso", FormatISO, testFiles(), "iso9660", "cidata"},
		{"vfat", FormatVFAT, testFiles(), "vfat", "CIDATA"},
		{"iso default meta-data", FormatISO, Files{UserData: []byte("#!/bin/sh\necho hi\n")}, "iso9660", "cidata"},
		{"vfat big user-data", FormatVFAT, Files{UserData: bytes.Repeat([]byte("#x\n"), 200000)}, "vfat", "CIDATA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seed.img")
			if err := Write(path, tc.files, tc.format); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			typ, label, err := Probe(f)
			if err != nil {
				t.Fatal(err)
			}
			if typ != tc.wantType || label != tc.wantLabel {
				t.Errorf("got %q %q, want %q %q", typ, label, tc.wantType, tc.wantLabel)
			}
			got, err := Read(path)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.files
			if want.MetaData == nil {
				want.MetaData = []byte(DefaultMetaData)
			}
			assertFiles(t, got, want)
		})
	}
}

func assertFiles(t *testing.T, got, want Files) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"user-data", got.UserData, want.UserData},
		{"meta-data", got.MetaData, want.MetaData},
		{"network-config", got.NetworkConfig, want.NetworkConfig},
		{"vendor-data", got.VendorData, want.VendorData},
	} {
		if !bytes.Equal(c.got, c.want) || (c.got == nil) != (c.want == nil) {
			t.Errorf("%s: got %q, want %q", c.name, trunc(c.got), trunc(c.want))
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// TestWriteReproducible builds the same seed twice, a second apart (the
// clock must not reach the bytes: Rock Ridge's change times came from the
// workspace files' ctime), and compares the bytes.
func TestWriteReproducible(t *testing.T) {
	for _, format := range []Format{FormatISO, FormatVFAT} {
		t.Run(string(format), func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			if err := Write(a, testFiles(), format); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond)
			if err := Write(b, testFiles(), format); err != nil {
				t.Fatal(err)
			}
			da, _ := os.ReadFile(a)
			db, _ := os.ReadFile(b)
			if !bytes.Equal(da, db) {
				for i := range da {
					if i < len(db) && da[i] != db[i] {
						t.Fatalf("images differ first at byte %d (sector %d), sizes %d %d", i, i/2048, len(da), len(db))
					}
				}
				t.Fatalf("images differ in size: %d %d", len(da), len(db))
			}
		})
	}
}

// TestReadCloudLocalds reads seeds made by the reference tool the same way
// as ours.
func TestReadCloudLocalds(t *testing.T) {
	if _, err := exec.LookPath("cloud-localds"); err != nil {
		t.Fatal("cloud-localds not installed (apt package cloud-image-utils)")
	}
	for _, format := range []Format{FormatISO, FormatVFAT} {
		t.Run(string(format), func(t *testing.T) {
			if format == FormatVFAT {
				if _, err := exec.LookPath("mcopy"); err != nil {
					t.Fatal("mcopy not installed (apt package mtools)")
				}
			}
			if format == FormatISO {
				if _, err := exec.LookPath("genisoimage"); err != nil {
					t.Fatal("genisoimage not installed (apt package genisoimage)")
				}
			}
			dir := t.TempDir()
			files := testFiles()
			ud, md, nc := filepath.Join(dir, "ud"), filepath.Join(dir, "md"), filepath.Join(dir, "nc")
			os.WriteFile(ud, files.UserData, 0o644)
			os.WriteFile(md, files.MetaData, 0o644)
			os.WriteFile(nc, files.NetworkConfig, 0o644)
			theirs := filepath.Join(dir, "theirs.img")
			out, err := exec.Command("cloud-localds", "-f", string(format), "-N", nc, theirs, ud, md).CombinedOutput()
			if err != nil {
				t.Fatalf("cloud-localds: %v: %s", err, out)
			}
			ours := filepath.Join(dir, "ours.img")
			if err := Write(ours, files, format); err != nil {
				t.Fatal(err)
			}
			gotTheirs, err := Read(theirs)
			if err != nil {
				t.Fatal(err)
			}
			gotOurs, err := Read(ours)
			if err != nil {
				t.Fatal(err)
			}
			assertFiles(t, gotTheirs, files)
			assertFiles(t, gotOurs, gotTheirs)
			ft, _ := os.Open(theirs)
			defer ft.Close()
			_, label, err := Probe(ft)
			if err != nil || !IsSeedLabel(label) {
				t.Errorf("cloud-localds label: got %q (%v), want cidata", label, err)
			}
		})
	}
}

func TestProbeRejectsOther(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zero")
	if err := os.WriteFile(path, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil {
		t.Errorf("got no error reading zeros, want ErrNotSeed")
	}
}

// FuzzRead feeds mutated seed images to the reader: it must return an
// error or files, never panic or hang. It calls readFrom without the panic
// recovery ReadFrom puts around go-diskfs, so a panic fails the target, and
// checks that what is returned keeps to the size limits.
func FuzzRead(f *testing.F) {
	dir := f.TempDir()
	for _, format := range []Format{FormatISO, FormatVFAT} {
		path := filepath.Join(dir, string(format))
		if err := Write(path, testFiles(), format); err != nil {
			f.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "img")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		type result struct {
			files Files
			err   error
		}
		done := make(chan result, 1)
		go func() {
			files, err := readFrom(fh, false)
			done <- result{files, err}
		}()
		var got Files
		select {
		case r := <-done:
			if r.err != nil {
				return
			}
			got = r.files
		case <-time.After(10 * time.Second):
			t.Fatalf("reading a %d-byte image: no answer in 10s (a loop?)", len(data))
		}
		for name, b := range map[string][]byte{"user-data": got.UserData, "meta-data": got.MetaData, "network-config": got.NetworkConfig, "vendor-data": got.VendorData} {
			if int64(len(b)) > MaxSize(name) {
				t.Errorf("%s: got %d bytes, over the %d limit", name, len(b), MaxSize(name))
			}
			if int64(len(b)) > int64(len(data)) {
				t.Errorf("%s: got %d bytes from a %d-byte image", name, len(b), len(data))
			}
		}
	})
}

// TestISOWholeSectors: a CD-ROM reads 2048-byte sectors; the image must
// end on one.
func TestISOWholeSectors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := Write(path, Files{UserData: []byte("#cloud-config\nhostname: odd-length\n")}, FormatISO); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%2048 != 0 {
		t.Errorf("got size %d, want a multiple of 2048", st.Size())
	}
}
