package seed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// isoImage writes a valid seed ISO with our writer and returns its bytes.
func isoImage(t testing.TB, files Files) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := Write(path, files, FormatISO); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// putBoth writes v as ECMA-119's both-byte-order 32-bit field at off.
func putBoth(b []byte, off int, v uint32) {
	binary.LittleEndian.PutUint32(b[off:], v)
	binary.BigEndian.PutUint32(b[off+4:], v)
}

// pvdRoot is the offset of the primary volume descriptor's root record.
const pvdRoot = 16*isoSector + 156

// recordOffset finds the byte offset of name's directory record in the
// root directory of the primary volume.
func recordOffset(t *testing.T, img []byte, name string) int {
	t.Helper()
	start := int(binary.LittleEndian.Uint32(img[pvdRoot+2:])) * isoSector
	n := int(binary.LittleEndian.Uint32(img[pvdRoot+10:]))
	for off := start; off < start+n; {
		l := int(img[off])
		if l == 0 {
			off = (off/isoSector + 1) * isoSector
			continue
		}
		nl := int(img[off+32])
		su := img[off+33+nl : off+l]
		if nl%2 == 0 {
			su = su[1:]
		}
		if got, ok, _ := rockRidgeName(bytes.NewReader(img), int64(len(img)), isoSector, su); ok && got == name {
			return off
		}
		off += l
	}
	t.Fatalf("no record for %s", name)
	return 0
}

// TestHostileISO feeds crafted images (a valid seed, then one field
// patched) to Read: each gives an error naming the seed and the problem,
// quickly and without allocating what the image claims.
func TestHostileISO(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   Files
		patch   func(t *testing.T, img []byte) []byte
		wantErr string
		is      error
	}{
		{
			name: "root directory extent of 4 GiB",
			patch: func(t *testing.T, img []byte) []byte {
				putBoth(img, pvdRoot+10, 0xffffffff)
				return img
			},
			wantErr: "root directory: extent of 4294967295 bytes: over the 1048576-byte limit",
		},
		{
			name: "root directory past the end",
			patch: func(t *testing.T, img []byte) []byte {
				putBoth(img, pvdRoot+2, 0x00ffffff)
				return img
			},
			wantErr: "runs past the end",
		},
		{
			name: "user-data claims 4 GiB",
			patch: func(t *testing.T, img []byte) []byte {
				putBoth(img, recordOffset(t, img, "user-data")+10, 0xffffffff)
				return img
			},
			wantErr: "user-data: 4294967295 bytes: more than 16777216 bytes",
			is:      ErrTooLarge,
		},
		{
			name: "meta-data extent past the end",
			patch: func(t *testing.T, img []byte) []byte {
				putBoth(img, recordOffset(t, img, "meta-data")+2, 0x00fffff0)
				return img
			},
			wantErr: "meta-data: extent of",
		},
		{
			name: "truncated image",
			patch: func(t *testing.T, img []byte) []byte {
				return img[:17*isoSector]
			},
			wantErr: "volume descriptor set runs past the end",
		},
		{
			name:    "user-data over the limit",
			files:   Files{UserData: bytes.Repeat([]byte("#"), MaxUserData+1), MetaData: []byte("instance-id: big\n")},
			patch:   func(t *testing.T, img []byte) []byte { return img },
			wantErr: "user-data: 16777217 bytes: more than 16777216 bytes",
			is:      ErrTooLarge,
		},
		{
			name: "rock ridge continuation loop",
			patch: func(t *testing.T, img []byte) []byte {
				// Replace user-data's first SUSP entry with a CE that
				// points back at a copy of itself: an endless chain.
				off := recordOffset(t, img, "user-data")
				nl := int(img[off+32])
				su := off + 33 + nl
				if nl%2 == 0 {
					su++
				}
				ce := make([]byte, 28)
				copy(ce, "CE")
				ce[2], ce[3] = 28, 1
				area := len(img) - isoSector // last sector holds the CE again
				putBoth(ce, 4, uint32(area/isoSector))
				putBoth(ce, 12, 0)
				putBoth(ce, 20, 28)
				copy(img[su:], ce)
				copy(img[area:], ce)
				return img
			},
			wantErr: "more than 16 rock ridge continuation areas",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := tc.files
			if files.UserData == nil {
				files = testFiles()
			}
			img := tc.patch(t, isoImage(t, files))
			path := filepath.Join(t.TempDir(), "hostile.iso")
			err := os.WriteFile(path, img, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			alloc := allocated(func() { _, err = Read(path) })
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got error %v, want one naming %s and %q", err, path, tc.wantErr)
			}
			if alloc > maxAlloc {
				t.Errorf("allocated %d MiB reading a %d KiB image, want under %d MiB", alloc>>20, len(img)>>10, maxAlloc>>20)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got error %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

// maxAlloc bounds what reading a hostile seed may allocate: the largest
// file limit and the root directory limit, with room to spare.
const maxAlloc = 2*MaxUserData + maxISODir

// allocated returns the bytes f allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileISOPathTable: ISO9660's path tables duplicate the directory
// tree and a seed reader needs none; a path table that claims 4 GiB is not
// a 4 GiB allocation (go-diskfs made one), and the seed still reads.
func TestHostileISOPathTable(t *testing.T) {
	img := isoImage(t, testFiles())
	putBoth(img, 16*isoSector+132, 0xfffffff0) // path table size (8.4.14)
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	var got Files
	var err error
	if alloc := allocated(func() { got, err = Read(path) }); alloc > maxAlloc {
		t.Errorf("allocated %d MiB, want under %d MiB", alloc>>20, maxAlloc>>20)
	}
	if err != nil {
		t.Fatal(err)
	}
	assertFiles(t, got, testFiles())
}

// TestReadXorrisofs reads seeds as xorrisofs writes them with Rock Ridge
// and Joliet (virt-install), Joliet only, and Rock Ridge only.
func TestReadXorrisofs(t *testing.T) {
	if _, err := exec.LookPath("xorrisofs"); err != nil {
		t.Fatal("xorrisofs not installed (apt package xorriso)")
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"rock ridge and joliet", []string{"-J", "-rational-rock"}},
		{"joliet only", []string{"-J"}},
		{"rock ridge only", []string{"-rational-rock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			os.Mkdir(src, 0o755)
			files := testFiles()
			os.WriteFile(filepath.Join(src, "user-data"), files.UserData, 0o644)
			os.WriteFile(filepath.Join(src, "meta-data"), files.MetaData, 0o644)
			os.WriteFile(filepath.Join(src, "network-config"), files.NetworkConfig, 0o644)
			img := filepath.Join(dir, "seed.iso")
			args := append([]string{"-o", img, "-input-charset", "utf8", "-V", "cidata"}, tc.flags...)
			if out, err := exec.Command("xorrisofs", append(args, src)...).CombinedOutput(); err != nil {
				t.Fatalf("xorrisofs: %v: %s", err, out)
			}
			got, err := Read(img)
			if err != nil {
				t.Fatal(err)
			}
			assertFiles(t, got, files)
		})
	}
}

// FuzzReadISO feeds mutated ISO images straight to the ISO9660 reader
// (no recover anywhere on this path): a panic fails the target, and what it
// returns must keep to the size limits and come from the image.
func FuzzReadISO(f *testing.F) {
	f.Add(isoImage(f, testFiles()))
	for _, name := range []string{"virt-install-bare", "virt-install-root-ssh-key"} {
		if img, err := os.ReadFile(filepath.Join("..", "testdata", "conformance", name, "seed.iso")); err == nil {
			f.Add(img)
		}
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		got, err := readISO(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			return
		}
		for name, b := range map[string][]byte{"user-data": got.UserData, "meta-data": got.MetaData, "network-config": got.NetworkConfig, "vendor-data": got.VendorData} {
			if int64(len(b)) > MaxSize(name) || len(b) > len(img) {
				t.Errorf("%s: got %d bytes from a %d-byte image, limit %d", name, len(b), len(img), MaxSize(name))
			}
			if len(b) > 0 && !bytes.Contains(img, b) {
				t.Errorf("%s: got bytes that are not in the image", name)
			}
		}
	})
}

// TestHostileFAT: a vfat seed whose first file's cluster chain points back
// at itself (go-diskfs would loop forever growing a slice), and one whose
// boot sector claims more sectors than the device has.
func TestHostileFAT(t *testing.T) {
	for _, tc := range []struct {
		name    string
		patch   func(img []byte)
		wantErr string
	}{
		{"cluster chain loop", func(img []byte) {
			// FAT12 after one reserved sector: entry 2 (the first data
			// cluster) at byte 3 of the FAT, low 12 bits, set to 2.
			fat := img[512:]
			v := binary.LittleEndian.Uint16(fat[3:])
			binary.LittleEndian.PutUint16(fat[3:], v&0xf000|2)
		}, "cluster chain loops at cluster 2"},
		{"more sectors than the device", func(img []byte) {
			binary.LittleEndian.PutUint16(img[19:], 0)
			binary.LittleEndian.PutUint32(img[32:], 0xffffffff)
		}, "larger than the"},
		{"FAT over the limit", func(img []byte) {
			binary.LittleEndian.PutUint16(img[22:], 0xffff)
			binary.LittleEndian.PutUint16(img[11:], 4096)
		}, "fat:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seed.img")
			if err := Write(path, testFiles(), FormatVFAT); err != nil {
				t.Fatal(err)
			}
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img[513:515], []byte{0xff, 0xff}) {
				t.Fatalf("unexpected FAT12 layout: % x", img[512:518])
			}
			tc.patch(img)
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Read(path); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("got error %v, want one naming %s and %q", err, path, tc.wantErr)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no answer in 20s: the reader loops")
			}
		})
	}
}
