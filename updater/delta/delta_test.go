package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/delta/chunker"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

var quiet = slog.New(slog.DiscardHandler)

// These tests are the conformance of the host side with desync: every
// index and store is written by desync (package chunker, as `builder
// publish` does) and read, planned and assembled by casync and delta.

// small chunk sizes keep the test images small.
var small = chunker.Chunker{Params: chunker.Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}}

// indexFile has desync chunk a file and parses its index with ours.
func indexFile(t *testing.T, file string) casync.Index {
	t.Helper()
	b, err := small.Index(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := ParseIndex(b, st.Size())
	if err != nil {
		t.Fatalf("desync's index of %s: %v", file, err)
	}
	return idx
}

// edit is v1 with 3000 new bytes inserted at 400 KiB (shifting what
// follows) and 100 bytes changed at 1 MiB.
func edit(v1 []byte) []byte {
	v2 := append(append(append([]byte{}, v1[:400<<10]...), updatertest.RandomBytes(99, 3000)...), v1[400<<10:]...)
	copy(v2[1<<20:], updatertest.RandomBytes(98, 100))
	return v2
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// store is a chunk store served over HTTP, counting what it serves.
type store struct {
	dir string
	srv *updatertest.Server
}

// newStore chunks v into a new store and returns the store, its index and
// a directory for the test's files.
func newStore(t *testing.T, v []byte) (*store, casync.Index, string) {
	t.Helper()
	s := &store{dir: t.TempDir()}
	s.srv = updatertest.Serve(t, s.dir)
	dir := t.TempDir()
	file := writeFile(t, dir, "image", v)
	b, err := small.Index(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Store(context.Background(), file, b, s.dir); err != nil {
		t.Fatal(err)
	}
	idx, err := ParseIndex(b, int64(len(v)))
	if err != nil {
		t.Fatal(err)
	}
	return s, idx, dir
}

// seed is a file and desync's index of it.
func seed(t *testing.T, file string) []Seed {
	return []Seed{{Path: file, Index: indexFile(t, file)}}
}

func (s *store) fetch(ctx context.Context, p string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+"/"+p, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// missing is the stored size of the chunks of want that have has lacks.
func missing(t *testing.T, s *store, want, has casync.Index) int64 {
	in := map[casync.ChunkID]bool{}
	for _, c := range has.Chunks {
		in[c.ID] = true
	}
	var n int64
	for _, c := range want.Chunks {
		if in[c.ID] {
			continue
		}
		in[c.ID] = true
		st, err := os.Stat(filepath.Join(s.dir, casync.StorePath(c.ID)))
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// assemble plans, fetches and assembles into a file and returns its bytes.
func assemble(t *testing.T, img Image) ([]byte, *Plan, error) {
	t.Helper()
	ctx := context.Background()
	p := NewPlan(img)
	if err := p.Fetch(ctx); err != nil {
		return nil, p, err
	}
	var out writerAt
	if err := p.Assemble(ctx, &out, "assemble"); err != nil {
		return nil, p, err
	}
	return out.b, p, nil
}

// writerAt is an in-memory io.WriterAt.
type writerAt struct{ b []byte }

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(w.b) {
		w.b = append(w.b, make([]byte, end-len(w.b))...)
	}
	return copy(w.b[off:], p), nil
}

// TestAssembleFetchesOnlyMissing: v2 shifts v1's data by an insertion; the
// chunks after it still match, and only the chunks v1 lacks are served.
func TestAssembleFetchesOnlyMissing(t *testing.T) {
	v1 := updatertest.RandomBytes(1, 2<<20)
	v2 := edit(v1)
	s, idx, dir := newStore(t, v2)
	seeds := seed(t, writeFile(t, dir, "v1", v1))
	want := missing(t, s, idx, seeds[0].Index)
	got, p, err := assemble(t, Image{Name: "usr", Index: idx, Seeds: seeds, CacheDir: t.TempDir(), Fetch: s.fetch, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v2) {
		t.Fatal("assembled image differs from v2")
	}
	if served, _ := s.srv.Served("/"); served != want || p.Stats.FetchedBytes != want {
		t.Errorf("served %d bytes, counted %d, want the %d bytes of chunks v1 lacks", served, p.Stats.FetchedBytes, want)
	}
	// 3 KiB inserted and 100 bytes changed: a few chunks, far from all.
	if want == 0 || want > int64(len(v2))/10 {
		t.Errorf("%d of %d bytes missing: the shift broke chunk matching", want, len(v2))
	}
	if p.Stats.SeedBytes+p.Stats.MissingBytes < int64(len(v2)) || p.Stats.MissingChunks != p.Stats.FetchedChunks {
		t.Errorf("stats %+v do not add up to %d bytes", p.Stats, len(v2))
	}
}

// TestSeedChangedAfterPlanning: seed bytes that no longer hash to their
// chunk (dm-verity EIO, a file changed) are not written; the chunk comes
// from the store.
func TestSeedChangedAfterPlanning(t *testing.T) {
	ctx := context.Background()
	v1 := updatertest.RandomBytes(1, 1<<20)
	s, idx, dir := newStore(t, v1)
	p := NewPlan(Image{Name: "usr", Index: idx, Seeds: seed(t, writeFile(t, dir, "seed", v1)), CacheDir: t.TempDir(), Fetch: s.fetch, Log: quiet})
	if p.Stats.MissingChunks != 0 {
		t.Fatalf("identical seed: %d chunks missing", p.Stats.MissingChunks)
	}
	bad := append([]byte{}, v1...)
	copy(bad[300<<10:], bytes.Repeat([]byte{0xff}, 64<<10))
	writeFile(t, dir, "seed", bad)
	var out writerAt
	if err := p.Assemble(ctx, &out, "assemble"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.b, v1) {
		t.Fatal("assembled image took the changed seed bytes")
	}
	if p.Stats.SeedMisses == 0 || p.Stats.FetchedChunks == 0 {
		t.Errorf("stats %+v: the changed chunks were not refetched", p.Stats)
	}
}

// TestCorruptSeedChunksNotUsed: a seed with a damaged region gives the
// chunks around it only from the store.
func TestCorruptSeedChunksNotUsed(t *testing.T) {
	v1 := updatertest.RandomBytes(1, 1<<20)
	s, idx, dir := newStore(t, v1)
	bad := append([]byte{}, v1...)
	copy(bad[500<<10:], bytes.Repeat([]byte{0}, 40<<10))
	// The seed's index is of the good bytes (as the booted version's
	// published index is), the seed itself damaged (a bad disk block).
	seeds := seed(t, writeFile(t, dir, "seed", v1))
	writeFile(t, dir, "seed", bad)
	got, p, err := assemble(t, Image{Name: "usr", Index: idx, Seeds: seeds, CacheDir: t.TempDir(), Fetch: s.fetch, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v1) {
		t.Fatal("assembled image differs")
	}
	if p.Stats.FetchedChunks == 0 || p.Stats.FetchedBytes >= int64(len(v1))/4 {
		t.Errorf("stats %+v: want the damaged region's few chunks fetched", p.Stats)
	}
}

// TestTamperedChunkRefused: a store chunk whose content does not hash to
// its id (another valid chunk under its name) is refused and not cached.
func TestTamperedChunkRefused(t *testing.T) {
	s, idx, _ := newStore(t, updatertest.RandomBytes(1, 256<<10))
	a, b := idx.Chunks[0].ID, idx.Chunks[1].ID
	other, _ := os.ReadFile(filepath.Join(s.dir, casync.StorePath(b)))
	writeFile(t, s.dir, casync.StorePath(a), other)
	cache := t.TempDir()
	_, _, err := assemble(t, Image{Name: "usr", Index: idx, CacheDir: cache, Fetch: s.fetch, Log: quiet})
	if !errors.Is(err, ErrBadChunk) || !strings.Contains(err.Error(), a.String()) {
		t.Fatalf("got %v, want ErrBadChunk naming chunk %s", err, a)
	}
	if _, err := os.Stat(filepath.Join(cache, casync.StorePath(a))); !os.IsNotExist(err) {
		t.Errorf("tampered chunk cached: %v", err)
	}
	// Not zstd at all.
	writeFile(t, s.dir, casync.StorePath(a), []byte("<html>mirror error</html>"))
	if _, _, err := assemble(t, Image{Name: "usr", Index: idx, CacheDir: t.TempDir(), Fetch: s.fetch, Log: quiet}); !errors.Is(err, ErrBadChunk) {
		t.Errorf("garbage chunk: got %v, want ErrBadChunk", err)
	}
}

// TestFetchResumes: a store that fails half-way leaves the chunks fetched
// so far in the cache; the next try asks for none of them again.
func TestFetchResumes(t *testing.T) {
	v1 := updatertest.RandomBytes(1, 1<<20)
	s, idx, _ := newStore(t, v1)
	cache := t.TempDir()
	img := Image{Name: "usr", Index: idx, CacheDir: cache, Fetch: s.fetch, Log: quiet}
	var mu sync.Mutex
	n := 0
	s.srv.SetHook(func(string) bool {
		mu.Lock()
		defer mu.Unlock()
		n++
		return n <= 10
	})
	if _, _, err := assemble(t, img); !errors.Is(err, ErrChunkStore) {
		t.Fatalf("got %v, want ErrChunkStore", err)
	}
	var kept []string
	filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, casync.ChunkExt) {
			rel, _ := filepath.Rel(cache, p)
			kept = append(kept, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if len(kept) == 0 || len(kept) > 10 {
		t.Fatalf("the failed try kept %d chunks, want 1 to 10", len(kept))
	}
	before := s.srv.Requests()
	s.srv.SetHook(nil)
	got, p, err := assemble(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v1) {
		t.Fatal("assembled image differs")
	}
	after := s.srv.Requests()
	for _, k := range kept {
		if after[k] != before[k] {
			t.Errorf("%s was kept and fetched again", k)
		}
	}
	if p.Stats.FetchedChunks != len(idx.Chunks)-len(kept) {
		t.Errorf("second try fetched %d chunks, want the %d not kept", p.Stats.FetchedChunks, len(idx.Chunks)-len(kept))
	}
}

// TestParseIndexRefuses an index for another size, and bytes that are not
// an index, naming the problem.
func TestParseIndexRefuses(t *testing.T) {
	ctx := context.Background()
	file := writeFile(t, t.TempDir(), "v1", updatertest.RandomBytes(1, 100<<10))
	b, err := small.Index(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseIndex(b, 100<<10); err != nil {
		t.Errorf("good index: %v", err)
	}
	if _, err := ParseIndex(b, 100<<10+1); !errors.Is(err, ErrBadIndex) || !strings.Contains(err.Error(), "the image is 102401") {
		t.Errorf("wrong size: got %v, want ErrBadIndex naming the size", err)
	}
	for name, bad := range map[string][]byte{"garbage": []byte("not an index"), "truncated": b[:len(b)-1]} {
		if _, err := ParseIndex(bad, 100<<10); !errors.Is(err, ErrBadIndex) || !errors.Is(err, casync.ErrBadIndex) {
			t.Errorf("%s: got %v, want ErrBadIndex", name, err)
		}
	}
}

// TestWrongSeedIndexOnlyMisses: a seed index that lies (every chunk placed
// at another chunk's offset, as a hostile or stale index would) makes every
// seed read miss its id: the chunks come from the store and the image is
// right.
func TestWrongSeedIndexOnlyMisses(t *testing.T) {
	v1 := updatertest.RandomBytes(1, 1<<20)
	s, idx, dir := newStore(t, v1)
	seeds := seed(t, writeFile(t, dir, "seed", v1))
	lie := &seeds[0].Index
	lie.Chunks = append([]casync.Chunk(nil), lie.Chunks...)
	for i := 0; i+1 < len(lie.Chunks); i += 2 {
		lie.Chunks[i].Start, lie.Chunks[i+1].Start = lie.Chunks[i+1].Start, lie.Chunks[i].Start
	}
	got, p, err := assemble(t, Image{Name: "usr", Index: idx, Seeds: seeds, CacheDir: t.TempDir(), Fetch: s.fetch, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v1) {
		t.Fatal("assembled image took bytes from a lying seed index")
	}
	if p.Stats.SeedMisses < len(idx.Chunks)-1 || p.Stats.FetchedChunks < len(idx.Chunks)-1 {
		t.Errorf("stats %+v: want (nearly) every chunk missed in the seed and fetched", p.Stats)
	}
}

// TestSeedWithoutIndexUnused: a seed whose index is unknown (empty) gives
// nothing; every chunk is missing and fetched.
func TestSeedWithoutIndexUnused(t *testing.T) {
	v1 := updatertest.RandomBytes(1, 512<<10)
	s, idx, dir := newStore(t, v1)
	p := NewPlan(Image{Name: "usr", Index: idx, Seeds: []Seed{{Path: writeFile(t, dir, "seed", v1)}}, CacheDir: t.TempDir(), Fetch: s.fetch, Log: quiet})
	if p.Stats.SeedBytes != 0 || p.Stats.MissingBytes != int64(len(v1)) {
		t.Errorf("stats %+v: want every byte missing", p.Stats)
	}
}
