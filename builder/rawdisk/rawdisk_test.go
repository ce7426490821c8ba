package rawdisk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestBlocksSkipsHolesAndZeros(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	const bs = 64 << 10
	if err := f.Truncate(40*bs + 100); err != nil { // a short last block
		t.Fatal(err)
	}
	want := map[int64][]byte{}
	for _, i := range []int64{0, 3, 17, 40} {
		b := bytes.Repeat([]byte{byte(i + 1)}, 7)
		if _, err := f.WriteAt(b, i*bs+5); err != nil {
			t.Fatal(err)
		}
		want[i] = b
	}
	// Written zeros (data, not a hole) are skipped too.
	if _, err := f.WriteAt(make([]byte, bs), 9*bs); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := map[int64][]byte{}
	err = d.Blocks(bs, func(i int64, data []byte) error {
		if i == 40 && len(data) != 100 {
			t.Errorf("last block: got %d bytes, want 100", len(data))
		}
		got[i] = bytes.Clone(data[5:12])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got blocks %v, want %v", keys(got), keys(want))
	}
	for i, b := range want {
		if !bytes.Equal(got[i], b) {
			t.Errorf("block %d: got %x, want %x", i, got[i], b)
		}
	}
}

func TestOpenRejectsDirectory(t *testing.T) {
	if _, err := Open(t.TempDir()); err == nil {
		t.Fatal("opened a directory as a raw image")
	}
}

func keys(m map[int64][]byte) []int64 {
	var k []int64
	for i := range m {
		k = append(k, i)
	}
	return k
}
