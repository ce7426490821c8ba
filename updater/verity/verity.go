package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// BlockSize is the data and hash block size Bulkhead uses (erofs blocks and
// the page size).
const BlockSize = 4096

// SuperblockSize is the size of struct verity_sb (cryptsetup lib/verity/verity.c).
const SuperblockSize = 512

// hashSize is the sha256 digest size. Each entry in a hash block takes the
// digest size rounded up to a power of two: 32 needs no padding.
const hashSize = sha256.Size

// perBlock is how many hashes one hash block holds.
const perBlock = BlockSize / hashSize

// MaxSalt is the largest salt the superblock can carry.
const MaxSalt = 256

// Errors callers decide on.
var (
	ErrBadSuperblock    = errors.New("not a supported dm-verity superblock")
	ErrRootHashMismatch = errors.New("dm-verity root hash mismatch")
	ErrTreeMismatch     = errors.New("dm-verity hash tree on the hash device does not match the data")
	ErrShortData        = errors.New("data shorter than the superblock's data blocks")
)

// Superblock is the on-disk header of a veritysetup hash device:
//
//	signature[8] "verity\0\0", version u32, hash_type u32, uuid[16],
//	algorithm[32], data_block_size u32, hash_block_size u32, data_blocks u64,
//	salt_size u16, pad[6], salt[256], pad[168]   (little endian, 512 bytes)
type Superblock struct {
	HashType   uint32 // 1: the normal format (salt before data); 0: Chrome OS
	UUID       [16]byte
	Algorithm  string
	DataBlocks uint64
	Salt       []byte
}

var signature = []byte("verity\x00\x00")

// Marshal renders the 512-byte superblock.
func (sb Superblock) Marshal() []byte {
	b := make([]byte, SuperblockSize)
	copy(b[0:8], signature)
	binary.LittleEndian.PutUint32(b[8:], 1) // superblock version
	binary.LittleEndian.PutUint32(b[12:], sb.HashType)
	copy(b[16:32], sb.UUID[:])
	copy(b[32:64], sb.Algorithm)
	binary.LittleEndian.PutUint32(b[64:], BlockSize)
	binary.LittleEndian.PutUint32(b[68:], BlockSize)
	binary.LittleEndian.PutUint64(b[72:], sb.DataBlocks)
	binary.LittleEndian.PutUint16(b[80:], uint16(len(sb.Salt)))
	copy(b[88:88+MaxSalt], sb.Salt)
	return b
}

// ParseSuperblock reads a superblock and accepts only what Bulkhead writes:
// version 1, hash type 1, sha256, 4096-byte blocks.
func ParseSuperblock(b []byte) (Superblock, error) {
	var sb Superblock
	if len(b) < SuperblockSize || !bytes.Equal(b[:8], signature) {
		return sb, fmt.Errorf("%w: no verity signature", ErrBadSuperblock)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != 1 {
		return sb, fmt.Errorf("%w: superblock version %d", ErrBadSuperblock, v)
	}
	sb.HashType = binary.LittleEndian.Uint32(b[12:])
	copy(sb.UUID[:], b[16:32])
	sb.Algorithm = string(bytes.TrimRight(b[32:64], "\x00"))
	dbs, hbs := binary.LittleEndian.Uint32(b[64:]), binary.LittleEndian.Uint32(b[68:])
	sb.DataBlocks = binary.LittleEndian.Uint64(b[72:])
	saltSize := int(binary.LittleEndian.Uint16(b[80:]))
	var problems []string
	if sb.HashType != 1 {
		problems = append(problems, fmt.Sprintf("hash type %d, want 1", sb.HashType))
	}
	if sb.Algorithm != "sha256" {
		problems = append(problems, fmt.Sprintf("algorithm %q, want sha256", sb.Algorithm))
	}
	if dbs != BlockSize || hbs != BlockSize {
		problems = append(problems, fmt.Sprintf("block sizes %d/%d, want %d", dbs, hbs, BlockSize))
	}
	if saltSize > MaxSalt {
		problems = append(problems, fmt.Sprintf("salt size %d over %d", saltSize, MaxSalt))
	} else {
		sb.Salt = append([]byte(nil), b[88:88+saltSize]...)
	}
	if len(problems) > 0 {
		return sb, fmt.Errorf("%w: %s", ErrBadSuperblock, joinProblems(problems))
	}
	return sb, nil
}

func joinProblems(p []string) string {
	var b bytes.Buffer
	for i, s := range p {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// Tree is a computed hash tree.
type Tree struct {
	// Levels[0] hashes the data blocks; the last level is one block whose
	// hash is the root. Each level is whole hash blocks, zero padded.
	Levels [][]byte
	Root   []byte
}

// RootHex is the root hash as veritysetup prints it.
func (t *Tree) RootHex() string { return hex.EncodeToString(t.Root) }

// HashArea is the tree as it lies on the hash device after the superblock
// block: the top level first, the data hashes last (cryptsetup
// lib/verity/verity_hash.c computes level positions "starting from the top").
func (t *Tree) HashArea() []byte {
	var out []byte
	for i := len(t.Levels) - 1; i >= 0; i-- {
		out = append(out, t.Levels[i]...)
	}
	return out
}

// hashBlock is H(salt || block), the version-1 rule.
func hashBlock(salt, block []byte) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	return h.Sum(nil)
}

// Compute reads dataBlocks blocks from r and builds the tree. The data is read
// once, sequentially, so r can be a partition or a download stream.
func Compute(r io.Reader, dataBlocks uint64, salt []byte) (*Tree, error) {
	if dataBlocks == 0 {
		return nil, errors.New("computing hash tree: no data blocks")
	}
	if len(salt) > MaxSalt {
		return nil, fmt.Errorf("computing hash tree: salt of %d bytes over %d", len(salt), MaxSalt)
	}
	buf := make([]byte, BlockSize)
	var level0 []byte
	for i := uint64(0); i < dataBlocks; i++ {
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("computing hash tree: block %d of %d: %w", i, dataBlocks, ErrShortData)
			}
			return nil, fmt.Errorf("computing hash tree: reading block %d: %w", i, err)
		}
		level0 = append(level0, hashBlock(salt, buf)...)
	}
	t := &Tree{}
	if dataBlocks == 1 {
		// veritysetup uses no hash levels for one block: the root is the
		// block's own hash.
		t.Root = level0
		return t, nil
	}
	hashes := level0
	for {
		lvl := padBlocks(hashes)
		t.Levels = append(t.Levels, lvl)
		if len(lvl) == BlockSize {
			t.Root = hashBlock(salt, lvl)
			return t, nil
		}
		var next []byte
		for off := 0; off < len(lvl); off += BlockSize {
			next = append(next, hashBlock(salt, lvl[off:off+BlockSize])...)
		}
		hashes = next
	}
}

// padBlocks zero-pads hashes to whole blocks.
func padBlocks(hashes []byte) []byte {
	n := (len(hashes) + BlockSize - 1) / BlockSize * BlockSize
	return append(hashes, make([]byte, n-len(hashes))...)
}

// Params are what Format needs besides the data.
type Params struct {
	DataBlocks uint64
	Salt       []byte
	UUID       [16]byte
}

// Format builds the tree over p.DataBlocks blocks of data and writes the hash
// device to w: the superblock, zeros to the end of the first block, the tree.
// It returns the tree (whose root is what usrhash= must say).
func Format(w io.Writer, data io.Reader, p Params) (*Tree, error) {
	t, err := Compute(data, p.DataBlocks, p.Salt)
	if err != nil {
		return nil, err
	}
	sb := Superblock{HashType: 1, UUID: p.UUID, Algorithm: "sha256", DataBlocks: p.DataBlocks, Salt: p.Salt}
	first := append(sb.Marshal(), make([]byte, BlockSize-SuperblockSize)...)
	if _, err := w.Write(first); err != nil {
		return nil, fmt.Errorf("writing verity superblock: %w", err)
	}
	if _, err := w.Write(t.HashArea()); err != nil {
		return nil, fmt.Errorf("writing verity hash tree: %w", err)
	}
	return t, nil
}

// Verify checks data against the hash device and rootHash the way
// `veritysetup verify` does: it reads the superblock, recomputes the tree over
// the data blocks the superblock names, and compares both the root with
// rootHash and every hash block with what the hash device holds. A data
// device larger than the image (a 2 GiB partition holding a smaller image) is
// fine: only the superblock's blocks count.
func Verify(data io.Reader, hash io.ReaderAt, rootHash []byte) error {
	sbBuf := make([]byte, SuperblockSize)
	if _, err := hash.ReadAt(sbBuf, 0); err != nil {
		return fmt.Errorf("reading verity superblock: %w", err)
	}
	sb, err := ParseSuperblock(sbBuf)
	if err != nil {
		return err
	}
	t, err := Compute(data, sb.DataBlocks, sb.Salt)
	if err != nil {
		return err
	}
	if !bytes.Equal(t.Root, rootHash) {
		return fmt.Errorf("%w: data gives %s, want %s", ErrRootHashMismatch, t.RootHex(), hex.EncodeToString(rootHash))
	}
	want := t.HashArea()
	got := make([]byte, len(want))
	if n, err := hash.ReadAt(got, BlockSize); n < len(got) {
		return fmt.Errorf("reading verity hash tree: %w", err)
	}
	if !bytes.Equal(got, want) {
		return ErrTreeMismatch
	}
	return nil
}
