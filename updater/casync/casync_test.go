package casync_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/folbricht/desync"

	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/delta/chunker"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// desyncIndex has desync (the builder's chunker) index a file, and returns
// the .caibx bytes and desync's own reading of them.
func desyncIndex(t testing.TB, data []byte, p chunker.Params) ([]byte, desync.Index) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := chunker.Chunker{Params: p}.Index(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	want, err := desync.IndexFromReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return b, want
}

var small = chunker.Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}

// TestParseIndexAsDesync: indexes desync writes read the same with ours as
// with desync's reader (the peer), for several chunk sizes, an empty file
// and one shorter than a chunk; each id is the SHA-512/256 of its bytes,
// and StorePath is where desync's store put it.
func TestParseIndexAsDesync(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		p    chunker.Params
	}{
		{"2/8/32 KiB", updatertest.RandomBytes(1, 600<<10), small},
		{"16/64/256 KiB", updatertest.RandomBytes(2, 1<<20), chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}},
		{"zeros", make([]byte, 300<<10), small},
		{"short", []byte("tiny"), small},
		{"empty", nil, small},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, want := desyncIndex(t, c.data, c.p)
			got, err := casync.ParseIndex(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Min != want.Index.ChunkSizeMin || got.Avg != want.Index.ChunkSizeAvg || got.Max != want.Index.ChunkSizeMax {
				t.Errorf("got sizes %d/%d/%d, want %d/%d/%d", got.Min, got.Avg, got.Max, want.Index.ChunkSizeMin, want.Index.ChunkSizeAvg, want.Index.ChunkSizeMax)
			}
			if len(got.Chunks) != len(want.Chunks) || got.Length() != int64(len(c.data)) {
				t.Fatalf("got %d chunks of %d bytes, want %d of %d", len(got.Chunks), got.Length(), len(want.Chunks), len(c.data))
			}
			for i, w := range want.Chunks {
				g := got.Chunks[i]
				if g.Start != w.Start || g.Size != w.Size || g.ID != casync.ChunkID(w.ID) {
					t.Errorf("chunk %d: got %d+%d %s, want %d+%d %s", i, g.Start, g.Size, g.ID, w.Start, w.Size, w.ID)
				}
				if sum := casync.Sum(c.data[g.Start : g.Start+g.Size]); sum != g.ID {
					t.Errorf("chunk %d: bytes hash to %s, the index says %s", i, sum, g.ID)
				}
			}
		})
	}
	// StorePath names the file desync's local store writes.
	data := updatertest.RandomBytes(3, 100<<10)
	b, _ := desyncIndex(t, data, small)
	file := filepath.Join(t.TempDir(), "image")
	os.WriteFile(file, data, 0o644)
	store := t.TempDir()
	if err := (chunker.Chunker{Params: small}).Store(context.Background(), file, b, store); err != nil {
		t.Fatal(err)
	}
	idx, _ := casync.ParseIndex(b)
	for _, c := range idx.Chunks {
		if _, err := os.Stat(filepath.Join(store, casync.StorePath(c.ID))); err != nil {
			t.Errorf("chunk %s: %v", c.ID, err)
		}
	}
}

// TestParseIndexRefuses every malformed index with ErrBadIndex and a
// message naming what is wrong: each truncation, another element type,
// SHA-256 ids, chunk sizes out of order or too large, a chunk longer than
// the maximum or ending before it starts, a broken tail.
func TestParseIndexRefuses(t *testing.T) {
	good, _ := desyncIndex(t, updatertest.RandomBytes(4, 200<<10), small)
	le := binary.LittleEndian
	set := func(off int, v uint64) []byte {
		b := bytes.Clone(good)
		le.PutUint64(b[off:], v)
		return b
	}
	firstEnd := le.Uint64(good[64:])
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"not an index":        {set(8, 0x1234), "not an index header"},
		"sha256 ids":          {set(16, 0), "not SHA-512/256"},
		"min above avg":       {set(24, 9<<10), "chunk sizes"},
		"max too large":       {set(40, 1<<30), "chunk sizes"},
		"no table":            {set(56, 0x42), "chunk table starts"},
		"chunk too long":      {set(64, firstEnd+40<<10), "ends at"},
		"chunk ends at start": {set(64, 0), "ends at 0"},
		"tail marker":         {set(len(good)-8, 1), "no table tail"},
		"tail size":           {set(len(good)-16, 7), "no table tail"},
		"extra byte":          {append(bytes.Clone(good), 0), "not whole entries"},
	}
	for name, c := range cases {
		if _, err := casync.ParseIndex(c.b); !errors.Is(err, casync.ErrBadIndex) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrBadIndex saying %q", name, err, c.want)
		}
	}
	for n := 0; n < len(good); n++ {
		if _, err := casync.ParseIndex(good[:n]); !errors.Is(err, casync.ErrBadIndex) {
			t.Fatalf("truncated to %d of %d bytes: got %v, want ErrBadIndex", n, len(good), err)
		}
	}
}

// FuzzParseIndex: whatever the bytes, ParseIndex returns an error or an
// index whose chunks lie back to back within the declared maximum.
func FuzzParseIndex(f *testing.F) {
	good, _ := desyncIndex(f, updatertest.RandomBytes(5, 64<<10), small)
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := casync.ParseIndex(b)
		if err != nil {
			return
		}
		var next uint64
		for i, c := range idx.Chunks {
			if c.Start != next || c.Size == 0 || c.Size > idx.Max || idx.Max > casync.MaxChunkSize {
				t.Fatalf("chunk %d: %+v after %d, max %d", i, c, next, idx.Max)
			}
			next += c.Size
		}
	})
}
