package fsroot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Root is a directory that stands for "/".
type Root string

// Join returns p inside the root. p is treated as absolute; ".." cannot climb
// above the root.
func (r Root) Join(p ...string) string {
	clean := filepath.Clean("/" + filepath.Join(p...))
	if r == "" || r == "/" {
		return clean
	}
	return filepath.Join(string(r), clean)
}

// Rel turns a host path inside the root back into the path the system sees.
func (r Root) Rel(hostPath string) string {
	if r == "" || r == "/" {
		return hostPath
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(hostPath, string(r)), "/")
}

// WriteFile writes data to path atomically: a temporary file in the same
// directory, fsync, chmod, rename, fsync of the directory. A reader sees the
// old content or the new, never a mix; a crash leaves at most a stray temp
// file (named .path.tmp-*).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
