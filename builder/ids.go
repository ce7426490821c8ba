package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// IDs derives every identifier of a build from the image name and version,
// so the same inputs give the same bytes (SOURCE_DATE_EPOCH-style).
type IDs struct {
	Name, Version string
}

// sum hashes the name, version and purpose.
func (i IDs) sum(purpose string) [32]byte {
	return sha256.Sum256([]byte("bulkhead\x00" + i.Name + "\x00" + i.Version + "\x00" + purpose))
}

// UUID returns an RFC 9562 version-8 (custom) UUID for purpose.
func (i IDs) UUID(purpose string) string {
	s := i.sum(purpose)
	s[6] = s[6]&0x0f | 0x80 // version 8
	s[8] = s[8]&0x3f | 0x80 // RFC variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// Hex returns n bytes of hex for purpose (salts).
func (i IDs) Hex(purpose string, n int) string {
	s := i.sum(purpose)
	return hex.EncodeToString(s[:n])
}

// FATVolumeID returns the 32-bit FAT volume serial for purpose, as the 8 hex
// digits mkfs.fat -i takes, and the XXXX-XXXX form GRUB and blkid show.
func (i IDs) FATVolumeID(purpose string) (mkfsForm, uuidForm string) {
	h := i.Hex(purpose, 4)
	return h, fmt.Sprintf("%s-%s", h[:4], h[4:])
}
