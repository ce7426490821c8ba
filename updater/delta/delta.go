package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"

	"github.com/folbricht/desync"
)

// Params are the content-defined chunking sizes, in bytes. The chunker cuts
// where a rolling hash of the last 48 bytes hits a pattern, so a boundary
// depends only on the bytes around it: data shifted by a changed file earlier
// in the image still cuts into the same chunks.
type Params struct {
	Min, Avg, Max uint64
}

// DefaultParams: 2/8/32 KiB minimum, average and maximum, decided by
// BenchmarkDelta on the default image (209 MB payload, lz4hc erofs): a
// release with only hostd rebuilt downloads 9.8% of the full payload with
// them, 10.8% with 4/16/64, 12.4% with 8/32/128 and 14.9% with casync's
// 16/64/256; one Debian package upgraded 4.3%, 4.6%, 5.6% and 6.9%. The
// small chunks pay off because erofs-utils 1.5 spreads inodes and
// directories among the data: a file that grows by a block moves every
// later file's block address, changing about a thousand scattered 4 KiB
// metadata blocks, and each costs a chunk. Their price: a 1 MB index per
// version and a request per missing chunk (about 2500 for hostd).
var DefaultParams = Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}

// Errors callers decide on.
var (
	ErrBadIndex   = errors.New("chunk index does not describe the image")
	ErrBadChunk   = errors.New("chunk does not match its id")
	ErrChunkStore = errors.New("chunk store cannot serve a chunk")
)

// StorePath is where a chunk lives in a store, relative to the store's root
// (desync's and casync's layout).
func StorePath(id desync.ChunkID) string {
	s := id.String()
	return path.Join(s[:4], s+desync.CompressedChunkExt)
}

// Make chunks file and adds every chunk not yet there to the store in
// storeDir, compressed; it returns the index.
func Make(ctx context.Context, file, storeDir string, p Params) (desync.Index, error) {
	idx, err := IndexFile(ctx, file, p)
	if err != nil {
		return idx, err
	}
	return idx, Store(ctx, file, idx, storeDir)
}

// Store adds the chunks of file that idx lists, compressed, to the store in
// storeDir, leaving those already there alone.
func Store(ctx context.Context, file string, idx desync.Index, storeDir string) error {
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return fmt.Errorf("making chunk store %s: %w", storeDir, err)
	}
	s, err := desync.NewLocalStore(storeDir, desync.NewStoreOptionsWithDefaults())
	if err != nil {
		return fmt.Errorf("opening chunk store %s: %w", storeDir, err)
	}
	if err := desync.ChopFile(ctx, file, idx.Chunks, s, workers(), desync.NullProgressBar{}); err != nil {
		return fmt.Errorf("storing the chunks of %s in %s: %w", file, storeDir, err)
	}
	return nil
}

// IndexFile chunks a file or block device without storing anything.
func IndexFile(ctx context.Context, file string, p Params) (desync.Index, error) {
	return indexFile(ctx, file, p, desync.NullProgressBar{})
}

func indexFile(ctx context.Context, file string, p Params, pb desync.ProgressBar) (desync.Index, error) {
	// One chunker: desync's parallel chunkers race on their statistics
	// (go test -race sees it), and one reads faster than a disk anyway.
	idx, _, err := desync.IndexFromFile(ctx, file, 1, p.Min, p.Avg, p.Max, pb)
	if err != nil {
		return idx, fmt.Errorf("chunking %s: %w", file, err)
	}
	return idx, nil
}

func workers() int { return max(1, min(4, runtime.NumCPU())) }

// Marshal renders an index in casync's .caibx format.
func Marshal(idx desync.Index) ([]byte, error) {
	var b bytes.Buffer
	if _, err := idx.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("encoding chunk index: %w", err)
	}
	return b.Bytes(), nil
}

// WriteIndex writes an index file.
func WriteIndex(file string, idx desync.Index) error {
	b, err := Marshal(idx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return fmt.Errorf("writing chunk index: %w", err)
	}
	return nil
}

// ParseIndex decodes a .caibx index and checks that it describes an image
// of size bytes: chunks back to back from 0, each within the index's
// bounds. The index is signed, but a signed index that breaks these would
// still make assembly write outside the image.
func ParseIndex(b []byte, size int64) (desync.Index, error) {
	idx, err := desync.IndexFromReader(bytes.NewReader(b))
	if err != nil {
		return idx, fmt.Errorf("%w: %w", ErrBadIndex, err)
	}
	f := idx.Index
	if f.ChunkSizeMin == 0 || f.ChunkSizeMin > f.ChunkSizeAvg || f.ChunkSizeAvg > f.ChunkSizeMax || f.ChunkSizeMax > 16<<20 {
		return idx, fmt.Errorf("%w: chunk sizes %d/%d/%d", ErrBadIndex, f.ChunkSizeMin, f.ChunkSizeAvg, f.ChunkSizeMax)
	}
	var next uint64
	for i, c := range idx.Chunks {
		if c.Start != next || c.Size == 0 || c.Size > f.ChunkSizeMax {
			return idx, fmt.Errorf("%w: chunk %d at %d, %d bytes (expected at %d, at most %d)", ErrBadIndex, i, c.Start, c.Size, next, f.ChunkSizeMax)
		}
		next += c.Size
	}
	if int64(next) != size {
		return idx, fmt.Errorf("%w: its chunks make %d bytes, the image is %d", ErrBadIndex, next, size)
	}
	return idx, nil
}

// ParamsOf are the chunk sizes an index was made with: seeds must be
// chunked with the same ones to find its chunks.
func ParamsOf(idx desync.Index) Params {
	return Params{Min: idx.Index.ChunkSizeMin, Avg: idx.Index.ChunkSizeAvg, Max: idx.Index.ChunkSizeMax}
}

// progressBar reports desync's chunking progress as (what, done, total).
type progressBar struct {
	desync.NullProgressBar
	what  string
	total int64
	fn    func(what string, done, total int64)
}

func (p *progressBar) SetTotal(total int) { p.total = int64(total) }
func (p *progressBar) Set(current int)    { p.fn(p.what, int64(current), p.total) }
