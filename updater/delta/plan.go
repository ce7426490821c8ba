package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
	"golang.org/x/sync/errgroup"
)

// Fetcher returns a chunk's stored (compressed) bytes from the repository's
// chunk store, path being StorePath of its id. It bounds the size it reads.
type Fetcher func(ctx context.Context, path string) ([]byte, error)

// Image says what to assemble and from what.
type Image struct {
	Name  string       // part name, for progress and errors
	Index casync.Index // verified and checked (ParseIndex)
	// Seeds are files or devices that may hold chunks of the image: the
	// booted slot's verity device, its kernel.
	Seeds []Seed
	// CacheDir keeps the chunks fetched so far, compressed as the store
	// serves them: an interrupted update fetches none of them again.
	CacheDir string
	Fetch    Fetcher
	Log      *slog.Logger
	Progress func(what string, done, total int64)
}

// Seed is a file or device and the index of what it holds: where each of
// its chunks lies. The index only says where to look: every chunk read from
// a seed is hashed and used only if it matches the id the image's index
// wants, so a wrong or hostile seed index causes misses, never bad data.
type Seed struct {
	Path  string
	Index casync.Index
}

type location struct {
	seed int
	off  int64
}

// Plan is where each chunk of an image comes from.
type Plan struct {
	img     Image
	from    map[casync.ChunkID]location
	statsMu sync.Mutex // Fetch's workers count into Stats
	Stats   Stats
}

// Stats count how an image was (or will be) put together.
type Stats struct {
	Chunks        int   // chunks in the index
	SeedBytes     int64 // image bytes found in seeds
	MissingChunks int   // distinct chunks neither a seed nor the cache holds
	MissingBytes  int64 // their size, uncompressed
	FetchedChunks int   // chunks fetched from the store
	FetchedBytes  int64 // bytes fetched (compressed, as served)
	SeedMisses    int   // seed chunks that failed their check when read
}

// NewPlan finds each chunk of the image in a seed (by the seed's index),
// in the cache, or else counts it as missing. It reads no seed: that
// happens, with every chunk checked, in Assemble.
func NewPlan(img Image) *Plan {
	p := &Plan{img: img, from: map[casync.ChunkID]location{}}
	want := map[casync.ChunkID]bool{}
	for _, c := range img.Index.Chunks {
		want[c.ID] = true
	}
	for i, s := range img.Seeds {
		for _, c := range s.Index.Chunks {
			if _, ok := p.from[c.ID]; !ok && want[c.ID] {
				p.from[c.ID] = location{seed: i, off: int64(c.Start)}
			}
		}
	}
	p.Stats.Chunks = len(img.Index.Chunks)
	seen := map[casync.ChunkID]bool{}
	for _, c := range img.Index.Chunks {
		if _, ok := p.from[c.ID]; ok {
			p.Stats.SeedBytes += int64(c.Size)
			continue
		}
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		if _, err := os.Stat(p.cachePath(c.ID)); err == nil {
			continue
		}
		p.Stats.MissingChunks++
		p.Stats.MissingBytes += int64(c.Size)
	}
	return p
}

func (p *Plan) log() *slog.Logger {
	if p.img.Log == nil {
		return slog.Default()
	}
	return p.img.Log
}

func (p *Plan) progress(what string, done, total int64) {
	if p.img.Progress != nil {
		p.img.Progress(what, done, total)
	}
}

func (p *Plan) cachePath(id casync.ChunkID) string {
	return filepath.Join(p.img.CacheDir, filepath.FromSlash(casync.StorePath(id)))
}

// Fetchers is how many chunks Fetch downloads at once: chunks are small,
// so one at a time would leave a link idle for a round trip per chunk.
const Fetchers = 8

// Fetch downloads every missing chunk into the cache, checking each; its
// progress is "download <name>", the step a full download reports. The
// first failure stops it; the chunks fetched so far stay in the cache.
func (p *Plan) Fetch(ctx context.Context) error {
	var todo []casync.Chunk
	seen := map[casync.ChunkID]bool{}
	for _, c := range p.img.Index.Chunks {
		if _, ok := p.from[c.ID]; ok || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		if _, err := os.Stat(p.cachePath(c.ID)); err == nil {
			continue
		}
		todo = append(todo, c)
	}
	what := "download " + p.img.Name
	p.progress(what, 0, p.Stats.MissingBytes)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Fetchers)
	var mu sync.Mutex
	var done int64
	for _, c := range todo {
		g.Go(func() error {
			if _, err := p.fetch(gctx, c); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			done += int64(c.Size)
			p.progress(what, done, p.Stats.MissingBytes)
			return nil
		})
	}
	return g.Wait()
}

// fetch gets a chunk from the store, checks it and keeps it in the cache.
func (p *Plan) fetch(ctx context.Context, c casync.Chunk) ([]byte, error) {
	if p.img.Fetch == nil {
		return nil, fmt.Errorf("%s chunk %s: %w: no store", p.img.Name, c.ID, ErrChunkStore)
	}
	raw, err := p.img.Fetch(ctx, casync.StorePath(c.ID))
	if err != nil {
		return nil, fmt.Errorf("fetching %s chunk %s: %w: %w", p.img.Name, c.ID, ErrChunkStore, err)
	}
	p.statsMu.Lock()
	p.Stats.FetchedChunks++
	p.Stats.FetchedBytes += int64(len(raw))
	p.statsMu.Unlock()
	data, err := decode(raw, c)
	if err != nil {
		return nil, fmt.Errorf("fetching %s chunk %s from the store: %w", p.img.Name, c.ID, err)
	}
	// Complete or absent, so that a cut try leaves no half chunk.
	if _, _, err := slotwriter.Install(ctx, bytes.NewReader(raw), p.cachePath(c.ID), 0o644); err != nil {
		return nil, fmt.Errorf("keeping %s chunk %s: %w", p.img.Name, c.ID, err)
	}
	return data, nil
}

// decoder bounds what one chunk may decompress to: a hostile store's
// zstd bomb fails instead of filling memory.
var decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(32<<20))

// decode decompresses a stored chunk and checks its size and id.
func decode(raw []byte, c casync.Chunk) ([]byte, error) {
	data, err := decoder.DecodeAll(raw, make([]byte, 0, c.Size))
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing: %w", ErrBadChunk, err)
	}
	if uint64(len(data)) != c.Size {
		return nil, fmt.Errorf("%w: %d bytes, the index says %d", ErrBadChunk, len(data), c.Size)
	}
	if sum := casync.Sum(data); sum != c.ID {
		return nil, fmt.Errorf("%w: content hashes to %x", ErrBadChunk, sum)
	}
	return data, nil
}

// Assemble writes the image into dst at offset 0, chunk by chunk: from a
// seed when its bytes still hash to the chunk's id, else from the cache,
// else from the store. Every chunk written has been checked against its id.
func (p *Plan) Assemble(ctx context.Context, dst io.WriterAt, what string) error {
	seeds := make([]*os.File, len(p.img.Seeds))
	defer func() {
		for _, f := range seeds {
			if f != nil {
				f.Close()
			}
		}
	}()
	total := p.img.Index.Length()
	for _, c := range p.img.Index.Chunks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("assembling %s at byte %d: %w", p.img.Name, c.Start, err)
		}
		data, err := p.chunk(ctx, c, seeds)
		if err != nil {
			return err
		}
		if _, err := dst.WriteAt(data, int64(c.Start)); err != nil {
			return fmt.Errorf("assembling %s: writing at byte %d: %w", p.img.Name, c.Start, err)
		}
		p.progress(what, int64(c.Start+c.Size), total)
	}
	return nil
}

// chunk returns a chunk's checked bytes from the first source that has them.
func (p *Plan) chunk(ctx context.Context, c casync.Chunk, seeds []*os.File) ([]byte, error) {
	if loc, ok := p.from[c.ID]; ok {
		var err error
		if seeds[loc.seed] == nil {
			seeds[loc.seed], err = os.Open(p.img.Seeds[loc.seed].Path)
		}
		if err == nil {
			b := make([]byte, c.Size)
			if _, err = seeds[loc.seed].ReadAt(b, loc.off); err == nil && casync.Sum(b) == c.ID {
				return b, nil
			}
		}
		// The seed's index was wrong, or the seed changed or cannot be
		// read (dm-verity answers EIO for a corrupt block): take the
		// chunk from elsewhere.
		p.Stats.SeedMisses++
		p.log().Warn("delta seed chunk does not match, not used", "part", p.img.Name, "seed", p.img.Seeds[loc.seed].Path, "offset", loc.off, "err", err)
	}
	if raw, err := os.ReadFile(p.cachePath(c.ID)); err == nil {
		data, err := decode(raw, c)
		if err == nil {
			return data, nil
		}
		p.log().Warn("cached chunk is damaged, fetching it again", "part", p.img.Name, "chunk", c.ID.String(), "err", err)
		os.Remove(p.cachePath(c.ID))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("assembling %s: reading cached chunk %s: %w", p.img.Name, c.ID, err)
	}
	return p.fetch(ctx, c)
}
