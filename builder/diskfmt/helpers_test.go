package diskfmt

import (
	"crypto/sha256"
	"encoding/hex"
	"io"

	"github.com/klauspost/compress/gzip"
)

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gzipReader(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
