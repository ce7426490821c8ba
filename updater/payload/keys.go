package payload

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Key file formats. One line each, so they paste into YAML and e-mails:
//
//	public  (<name>.pub): "bulkhead-ed25519 <base64 32-byte public key> [comment]"
//	private (<name>.key): "bulkhead-ed25519-private <base64 32-byte seed> [comment]"
//	signature (manifest.json.sig), one line per signing key:
//	        "bulkhead-ed25519-sig <key id> <base64 64-byte signature>"
//
// The key id is the first 8 bytes of sha256(public key), hex: it names the
// key in signatures and logs, but a signature is checked against every
// trusted key, so the id is a hint, not a trust decision.
const (
	PublicPrefix  = "bulkhead-ed25519"
	PrivatePrefix = "bulkhead-ed25519-private"
	SigPrefix     = "bulkhead-ed25519-sig"
	PublicExt     = ".pub"
	PrivateExt    = ".key"
	// KeysDir is where an image carries its trusted public keys.
	KeysDir = "/usr/lib/bulkhead/keys"
)

// Errors callers decide on.
var (
	ErrBadKey           = errors.New("not a bulkhead ed25519 key")
	ErrNoTrustedKeys    = errors.New("no trusted update keys")
	ErrMissingSignature = errors.New("update manifest is not signed")
	ErrBadSignature     = errors.New("update manifest signature does not verify with any trusted key")
)

// PublicKey is a trusted key with the comment from its file.
type PublicKey struct {
	Key     ed25519.PublicKey
	Comment string
}

// ID is the key id.
func (k PublicKey) ID() string { return KeyID(k.Key) }

// KeyID is the first 8 bytes of sha256 of the public key, hex.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// GenerateKey makes a key pair and returns both files' contents.
func GenerateKey(rand io.Reader, comment string) (pub, priv []byte, err error) {
	pk, sk, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	pub = []byte(keyLine(PublicPrefix, pk, comment))
	priv = []byte(keyLine(PrivatePrefix, sk.Seed(), comment))
	return pub, priv, nil
}

func keyLine(prefix string, b []byte, comment string) string {
	line := prefix + " " + base64.StdEncoding.EncodeToString(b)
	if comment = strings.Join(strings.Fields(comment), " "); comment != "" {
		line += " " + comment
	}
	return line + "\n"
}

// parseKeyLine splits "<prefix> <base64> [comment]" and checks the length.
func parseKeyLine(b []byte, prefix string, size int) ([]byte, string, error) {
	f := strings.Fields(strings.TrimSpace(string(b)))
	if len(f) < 2 || f[0] != prefix {
		return nil, "", fmt.Errorf("%w: want a line %q <base64> [comment]", ErrBadKey, prefix)
	}
	raw, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(raw) != size {
		return nil, "", fmt.Errorf("%w: key is not base64 of %d bytes", ErrBadKey, size)
	}
	return raw, strings.Join(f[2:], " "), nil
}

// ParsePublicKey reads a .pub file's contents.
func ParsePublicKey(b []byte) (PublicKey, error) {
	raw, comment, err := parseKeyLine(b, PublicPrefix, ed25519.PublicKeySize)
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{Key: ed25519.PublicKey(raw), Comment: comment}, nil
}

// ParsePrivateKey reads a .key file's contents.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	seed, _, err := parseKeyLine(b, PrivatePrefix, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ReadPrivateKey loads a .key file.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("reading signing key %s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKeys reads every *.pub in dir (sorted by name). A key file that
// does not parse is an error: a typo must not silently drop a trusted key.
func LoadPublicKeys(dir string) ([]PublicKey, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+PublicExt))
	if err != nil {
		return nil, fmt.Errorf("listing update keys in %s: %w", dir, err)
	}
	sort.Strings(paths)
	var keys []PublicKey
	var problems []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		k, err := ParsePublicKey(b)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("loading update keys: %s", strings.Join(problems, "; "))
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoTrustedKeys, dir)
	}
	return keys, nil
}

// Sign returns a signature line for msg.
func Sign(msg []byte, key ed25519.PrivateKey) []byte {
	sig := ed25519.Sign(key, msg)
	pub := key.Public().(ed25519.PublicKey)
	return []byte(SigPrefix + " " + KeyID(pub) + " " + base64.StdEncoding.EncodeToString(sig) + "\n")
}

// Verify checks that at least one signature line in sigFile is a valid
// signature of msg by one of keys, and returns that key. Lines that do not
// parse are skipped (a newer signer may add other kinds), but a file with no
// signature line at all is ErrMissingSignature.
func Verify(msg, sigFile []byte, keys []PublicKey) (PublicKey, error) {
	if len(keys) == 0 {
		return PublicKey{}, ErrNoTrustedKeys
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(sigFile))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != SigPrefix {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil || len(sig) != ed25519.SignatureSize {
			ids = append(ids, f[1]+" (malformed)")
			continue
		}
		ids = append(ids, f[1])
		for _, k := range keys {
			if ed25519.Verify(k.Key, msg, sig) {
				return k, nil
			}
		}
	}
	if len(ids) == 0 {
		return PublicKey{}, ErrMissingSignature
	}
	trusted := make([]string, len(keys))
	for i, k := range keys {
		trusted[i] = k.ID()
	}
	return PublicKey{}, fmt.Errorf("%w: signed by %s, trusted keys %s", ErrBadSignature,
		strings.Join(ids, ", "), strings.Join(trusted, ", "))
}
