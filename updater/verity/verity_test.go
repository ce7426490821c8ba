package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testData returns n blocks of deterministic pseudo-random bytes.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n*BlockSize)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var testUUID = [16]byte{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}

// TestFormatMatchesVeritysetup formats the same files with the real
// veritysetup and with Format, and wants identical hash devices and roots.
// The sizes cross every level boundary (128 hashes per 4 KiB block).
func TestFormatMatchesVeritysetup(t *testing.T) {
	vs, err := exec.LookPath("veritysetup")
	if err != nil {
		t.Fatal("veritysetup not installed (apt-get install cryptsetup-bin)")
	}
	for _, blocks := range []int{1, 2, 127, 128, 129, 300, 16384, 16385} {
		t.Run(fmt.Sprint(blocks), func(t *testing.T) {
			dir := t.TempDir()
			data := testData(blocks, uint64(blocks))
			dataPath, hashPath := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
			if err := os.WriteFile(dataPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			salt := []byte{0xde, 0xad, 0xbe, 0xef, byte(blocks)}
			out, err := exec.Command(vs, "format", "--data-block-size=4096", "--hash-block-size=4096",
				"--salt="+hex.EncodeToString(salt), "--uuid=12345678-1234-1234-1234-123456789abc",
				dataPath, hashPath).CombinedOutput()
			if err != nil {
				t.Fatalf("veritysetup format: %v: %s", err, out)
			}
			wantRoot := ""
			for _, line := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Root hash" {
					wantRoot = strings.TrimSpace(v)
				}
			}
			want, err := os.ReadFile(hashPath)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			tree, err := Format(&got, bytes.NewReader(data), Params{DataBlocks: uint64(blocks), Salt: salt, UUID: testUUID})
			if err != nil {
				t.Fatal(err)
			}
			if tree.RootHex() != wantRoot {
				t.Errorf("got root %q, want %q", tree.RootHex(), wantRoot)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("hash device differs from veritysetup's: got %d bytes, want %d", got.Len(), len(want))
			}
			// And veritysetup accepts a tree it did not write.
			if err := os.WriteFile(hashPath, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(vs, "verify", dataPath, hashPath, tree.RootHex()).CombinedOutput(); err != nil {
				t.Errorf("veritysetup verify of our tree: %v: %s", err, out)
			}
		})
	}
}

// TestVerify covers a good slot, a flipped data byte, a flipped tree byte,
// a wrong root, short data and a data device larger than the image.
func TestVerify(t *testing.T) {
	data := testData(300, 7)
	var hashDev bytes.Buffer
	tree, err := Format(&hashDev, bytes.NewReader(data), Params{DataBlocks: 300, Salt: []byte("salt")})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	cases := []struct {
		name string
		data []byte
		hash []byte
		root []byte
		want error
	}{
		{"good", data, hashDev.Bytes(), tree.Root, nil},
		{"partition larger than image", append(bytes.Clone(data), make([]byte, 10*BlockSize)...), hashDev.Bytes(), tree.Root, nil},
		{"data byte flipped", flip(data, 200*BlockSize+5), hashDev.Bytes(), tree.Root, ErrRootHashMismatch},
		{"tree byte flipped", data, flip(hashDev.Bytes(), 2*BlockSize+1), tree.Root, ErrTreeMismatch},
		{"wrong root", data, hashDev.Bytes(), flip(tree.Root, 0), ErrRootHashMismatch},
		{"short data", data[:100*BlockSize], hashDev.Bytes(), tree.Root, ErrShortData},
		{"no superblock", data, make([]byte, 3*BlockSize), tree.Root, ErrBadSuperblock},
		{"truncated tree", data, hashDev.Bytes()[:2*BlockSize], tree.Root, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(bytes.NewReader(c.data), bytes.NewReader(c.hash), c.root)
			if c.name == "truncated tree" {
				if err == nil {
					t.Error("got nil, want an error for a truncated hash device")
				}
				return
			}
			if !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestSuperblockRoundTrip(t *testing.T) {
	sb := Superblock{HashType: 1, UUID: testUUID, Algorithm: "sha256", DataBlocks: 42, Salt: []byte{1, 2, 3}}
	got, err := ParseSuperblock(sb.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.DataBlocks != 42 || !bytes.Equal(got.Salt, sb.Salt) || got.UUID != testUUID {
		t.Errorf("got %+v, want %+v", got, sb)
	}
	bad := sb
	bad.Algorithm = "sha1"
	bad.HashType = 0
	if _, err := ParseSuperblock(bad.Marshal()); !errors.Is(err, ErrBadSuperblock) || !strings.Contains(err.Error(), "sha1") || !strings.Contains(err.Error(), "hash type 0") {
		t.Errorf("got %v, want every problem reported", err)
	}
}

func FuzzParseSuperblock(f *testing.F) {
	f.Add(Superblock{HashType: 1, Algorithm: "sha256", DataBlocks: 1, Salt: []byte{1}}.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err == nil && len(sb.Salt) > MaxSalt {
			t.Errorf("accepted salt of %d bytes", len(sb.Salt))
		}
	})
}

// BenchmarkCompute measures hash tree throughput (the read-back check of a
// written slot is bounded by it or by the disk).
func BenchmarkCompute(b *testing.B) {
	data := testData(8192, 1) // 32 MiB
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Compute(bytes.NewReader(data), 8192, []byte("salt")); err != nil {
			b.Fatal(err)
		}
	}
}
