package delta

import (
	"errors"
	"fmt"

	"github.com/bulkhead-os/bulkhead/updater/casync"
)

// Errors callers decide on.
var (
	ErrBadIndex   = errors.New("chunk index does not describe the image")
	ErrBadChunk   = errors.New("chunk does not match its id")
	ErrChunkStore = errors.New("chunk store cannot serve a chunk")
)

// ParseIndex decodes a .caibx index (casync.ParseIndex's checks) and checks
// that it describes an image of size bytes. The index is signed, but a
// signed index that breaks these would still make assembly write outside
// the image.
func ParseIndex(b []byte, size int64) (casync.Index, error) {
	idx, err := casync.ParseIndex(b)
	if err != nil {
		return idx, fmt.Errorf("%w: %w", ErrBadIndex, err)
	}
	if n := idx.Length(); n != size {
		return idx, fmt.Errorf("%w: its chunks make %d bytes, the image is %d", ErrBadIndex, n, size)
	}
	return idx, nil
}
