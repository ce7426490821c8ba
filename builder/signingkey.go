package builder

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-os/bulkhead/updater/payload"
)

// GenerateSigningKey makes an ed25519 key pair for signing updates: NAME.key
// (0600, for whoever publishes) and NAME.pub (built into images) in dir. It
// never overwrites a key: an existing file of either name is an error.
func GenerateSigningKey(dir, name, comment string) (keyPath, pubPath string, err error) {
	if name == "" || filepath.Base(name) != name || name[0] == '.' {
		return "", "", fmt.Errorf("key name %q must be a plain file name", name)
	}
	keyPath = filepath.Join(dir, name+payload.PrivateExt)
	pubPath = filepath.Join(dir, name+payload.PublicExt)
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("making key %s: %s exists; not overwriting a signing key", name, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("making key %s: %w", name, err)
		}
	}
	if comment == "" {
		comment = name
	}
	pub, priv, err := payload.GenerateKey(rand.Reader, comment)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("making key %s: %w", name, err)
	}
	// O_EXCL: two keygens racing must not both think they won.
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("writing %s: %w", keyPath, err)
	}
	if _, err := f.Write(priv); err != nil {
		f.Close()
		return "", "", fmt.Errorf("writing %s: %w", keyPath, err)
	}
	if err := f.Close(); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", keyPath, err)
	}
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", pubPath, err)
	}
	return keyPath, pubPath, nil
}

// keyName is the NAME of a NAME.pub path.
func keyName(pubPath string) string {
	return strings.TrimSuffix(filepath.Base(pubPath), payload.PublicExt)
}
