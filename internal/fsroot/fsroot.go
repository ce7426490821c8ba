package fsroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Root is a directory that stands for "/".
type Root string

// ErrSymlink is a path element that must not be a symlink but is one (a
// user-owned ~/.ssh pointing at /etc, say).
var ErrSymlink = errors.New("is a symlink")

// unresolvable ends the path Join returns when the path cannot be resolved
// inside the root (a symlink loop): a NUL byte makes every system call on
// it fail with EINVAL instead of acting on a path that may lead outside.
const unresolvable = "\x00unresolvable"

// Join returns p inside the root. p is treated as absolute; ".." cannot
// climb above the root. Symlinks in the directories leading to the last
// element are resolved inside the root (github.com/cyphar/filepath-securejoin:
// an absolute target is taken relative to the root, ".." stops at it), so a
// tree with /etc -> /tmp/outside cannot redirect root.Join("/etc/x") out of
// the tree. The last element is not resolved, so Lstat, Readlink, Remove and
// Symlink act on it and not on what it points to.
//
// Join only makes the path: a symlink created after it returns can still
// redirect a later open. Writes, chmods and chowns go through WriteFile,
// MkdirAll, Chmod and Chown, which hold directory handles and cannot race.
// On the host root ("/") the kernel's own resolution is the same, so the
// path is only cleaned.
func (r Root) Join(p ...string) string {
	out, err := r.resolve(p...)
	if err != nil {
		return filepath.Join(string(r), filepath.Clean("/"+filepath.Join(p...))) + unresolvable
	}
	return out
}

// Resolve is Join with the error from resolving the directories (a symlink
// loop, a directory that cannot be read).
func (r Root) Resolve(p ...string) (string, error) {
	return r.resolve(p...)
}

func (r Root) resolve(p ...string) (string, error) {
	clean := filepath.Clean("/" + filepath.Join(p...))
	if r == "" || r == "/" {
		return clean, nil
	}
	if clean == "/" {
		return filepath.Clean(string(r)), nil
	}
	dir, err := securejoin.SecureJoin(string(r), filepath.Dir(clean))
	if err != nil {
		return "", fmt.Errorf("resolving %s under %s: %w", clean, r, err)
	}
	return filepath.Join(dir, filepath.Base(clean)), nil
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
// file (named .path.tmp-*). The directory is opened once and the temporary
// file is created in it with O_EXCL|O_NOFOLLOW and renamed over the name, so
// a symlink at path is replaced, never followed. Callers with a Root should
// prefer Root.WriteFile, which also resolves the directories inside it.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

// WriteTransient is WriteFile without the fsyncs, for a file made again
// whenever it is needed (a container's spec and /etc files, written at
// each start): after a crash it may be empty or old, never half-replaced
// while the system runs.
func WriteTransient(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, false)
}

func writeFile(path string, data []byte, perm os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, err := openDirPath(dir)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer d.Close()
	if err := d.writeFile(filepath.Base(path), data, perm, nil, durable); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
