package casync

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path"
)

// The format's constants (casync's caformat.h): every element starts with
// a header of its size and type, little endian.
const (
	typeIndex      = 0x96824d9c7b129ff9 // CA_FORMAT_INDEX
	typeTable      = 0xe75b9e112f17417d // CA_FORMAT_TABLE
	tableTailMark  = 0x4b4f050e5549ecd1 // CA_FORMAT_TABLE_TAIL_MARKER
	flagSHA512_256 = 0x2000000000000000 // CA_FORMAT_SHA512_256: chunk ids are SHA-512/256
	indexSize      = 48                 // header (16) + flags, min, avg, max
	tableHdrSize   = 16                 // header; its size field is all ones
	itemSize       = 40                 // end offset + 32-byte id
	tailSize       = 40                 // zero, zero, index offset, table size, marker
)

// MaxChunkSize bounds the maximum chunk size an index may declare: casync
// and desync allow 256 KiB by default, and a host allocates a chunk's bytes
// from it, so a hostile index cannot make it allocate more.
const MaxChunkSize = 16 << 20

// ErrBadIndex wraps every problem found in an index.
var ErrBadIndex = errors.New("malformed casync chunk index")

// ChunkID is a chunk's SHA-512/256 digest.
type ChunkID [32]byte

func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// Sum is the id of a chunk with these bytes.
func Sum(b []byte) ChunkID { return sha512.Sum512_256(b) }

// ChunkExt is the file extension of a zstd-compressed chunk in a store.
const ChunkExt = ".cacnk"

// StorePath is where a chunk lives in a store, relative to its root:
// the id's first four hex digits name a directory.
func StorePath(id ChunkID) string {
	s := id.String()
	return path.Join(s[:4], s+ChunkExt)
}

// Chunk is one entry of an index: Size bytes at Start of the indexed file.
type Chunk struct {
	ID    ChunkID
	Start uint64
	Size  uint64
}

// Index lists a file's chunks in order, back to back from offset 0, and the
// chunk sizes the chunker was given.
type Index struct {
	Min, Avg, Max uint64
	Chunks        []Chunk
}

// Length is the size of the indexed file.
func (x Index) Length() int64 {
	if len(x.Chunks) == 0 {
		return 0
	}
	c := x.Chunks[len(x.Chunks)-1]
	return int64(c.Start + c.Size)
}

// ParseIndex decodes a .caibx file. It checks the structure, not that the
// index describes any particular file: the chunk sizes are ordered and
// bounded by MaxChunkSize, ids are SHA-512/256, every chunk is non-empty
// and at most the maximum size, and the table ends with casync's tail.
func ParseIndex(b []byte) (Index, error) {
	var x Index
	le := binary.LittleEndian
	if len(b) < indexSize+tableHdrSize+tailSize {
		return x, fmt.Errorf("%w: %d bytes, shorter than an empty index", ErrBadIndex, len(b))
	}
	if size, typ := le.Uint64(b), le.Uint64(b[8:]); size != indexSize || typ != typeIndex {
		return x, fmt.Errorf("%w: starts with element type %#x size %d, not an index header", ErrBadIndex, typ, size)
	}
	if flags := le.Uint64(b[16:]); flags&flagSHA512_256 == 0 {
		return x, fmt.Errorf("%w: chunk ids are not SHA-512/256 (feature flags %#x)", ErrBadIndex, flags)
	}
	x.Min, x.Avg, x.Max = le.Uint64(b[24:]), le.Uint64(b[32:]), le.Uint64(b[40:])
	if x.Min == 0 || x.Min > x.Avg || x.Avg > x.Max || x.Max > MaxChunkSize {
		return x, fmt.Errorf("%w: chunk sizes %d/%d/%d", ErrBadIndex, x.Min, x.Avg, x.Max)
	}
	t := b[indexSize:]
	if size, typ := le.Uint64(t), le.Uint64(t[8:]); size != math.MaxUint64 || typ != typeTable {
		return x, fmt.Errorf("%w: element type %#x size %d where the chunk table starts", ErrBadIndex, typ, size)
	}
	items := t[tableHdrSize:]
	if (len(items)-tailSize)%itemSize != 0 {
		return x, fmt.Errorf("%w: chunk table of %d bytes is not whole entries and a tail", ErrBadIndex, len(items))
	}
	n := (len(items) - tailSize) / itemSize
	tail := items[n*itemSize:]
	if le.Uint64(tail) != 0 || le.Uint64(tail[8:]) != 0 || le.Uint64(tail[16:]) != indexSize ||
		le.Uint64(tail[24:]) != uint64(tableHdrSize+n*itemSize+tailSize) || le.Uint64(tail[32:]) != tableTailMark {
		return x, fmt.Errorf("%w: no table tail after %d chunks (truncated?)", ErrBadIndex, n)
	}
	x.Chunks = make([]Chunk, n)
	var start uint64
	for i := range x.Chunks {
		it := items[i*itemSize:]
		end := le.Uint64(it)
		if end <= start || end-start > x.Max {
			return Index{}, fmt.Errorf("%w: chunk %d ends at %d after starting at %d (at most %d bytes)", ErrBadIndex, i, end, start, x.Max)
		}
		c := &x.Chunks[i]
		c.Start, c.Size = start, end-start
		copy(c.ID[:], it[8:itemSize])
		start = end
	}
	return x, nil
}
