package chunker

import (
	"bytes"
	"context"
	"fmt"
	"os"
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

// Chunker chunks files with Params (zero: DefaultParams). It is what
// repo.PublishOptions.Chunker takes.
type Chunker struct {
	Params Params
}

func (c Chunker) params() Params {
	if c.Params == (Params{}) {
		return DefaultParams
	}
	return c.Params
}

// Index chunks file and returns its casync index, storing nothing.
func (c Chunker) Index(ctx context.Context, file string) ([]byte, error) {
	p := c.params()
	// One chunker: desync's parallel chunkers race on their statistics
	// (go test -race sees it), and one reads faster than a disk anyway.
	idx, _, err := desync.IndexFromFile(ctx, file, 1, p.Min, p.Avg, p.Max, desync.NullProgressBar{})
	if err != nil {
		return nil, fmt.Errorf("chunking %s: %w", file, err)
	}
	var b bytes.Buffer
	if _, err := idx.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("encoding the chunk index of %s: %w", file, err)
	}
	return b.Bytes(), nil
}

// Store adds the chunks of file that index (from Index) lists, compressed,
// to the store in dir, leaving those already there alone.
func (c Chunker) Store(ctx context.Context, file string, index []byte, dir string) error {
	idx, err := desync.IndexFromReader(bytes.NewReader(index))
	if err != nil {
		return fmt.Errorf("reading the chunk index of %s: %w", file, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making chunk store %s: %w", dir, err)
	}
	s, err := desync.NewLocalStore(dir, desync.NewStoreOptionsWithDefaults())
	if err != nil {
		return fmt.Errorf("opening chunk store %s: %w", dir, err)
	}
	workers := max(1, min(4, runtime.NumCPU()))
	if err := desync.ChopFile(ctx, file, idx.Chunks, s, workers, desync.NullProgressBar{}); err != nil {
		return fmt.Errorf("storing the chunks of %s in %s: %w", file, dir, err)
	}
	return nil
}
