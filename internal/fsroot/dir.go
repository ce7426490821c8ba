package fsroot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Dir is an open directory (an O_PATH handle): the names given to its
// methods are single elements looked up in it, so nothing that happens to
// the path that led here (a parent swapped for a symlink) changes which
// directory is written.
type Dir struct {
	f    *os.File
	path string // for messages
}

// Owner is the uid and gid given to what is written.
type Owner struct {
	UID, GID int
}

// Close releases the handle.
func (d *Dir) Close() error { return d.f.Close() }

// Path is the path the directory was opened by, for messages.
func (d *Dir) Path() string { return d.path }

func (d *Dir) fd() int { return int(d.f.Fd()) }

// openRoot opens the root itself as an O_PATH handle.
func (r Root) openRoot() (*os.File, error) {
	root := string(r)
	if root == "" {
		root = "/"
	}
	return os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// openDirPath opens an existing directory by host path (symlinks followed
// as the kernel does).
func openDirPath(path string) (*Dir, error) {
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &Dir{f: f, path: path}, nil
}

// MkdirAll creates the directory p and its parents inside the root with
// mode (before umask), resolving symlinks inside the root
// (pathrs.MkdirAllHandle), and returns it open.
func (r Root) MkdirAll(p string, mode os.FileMode) (*Dir, error) {
	clean := filepath.Clean("/" + p)
	root, err := r.openRoot()
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", r.Join(clean), err)
	}
	defer root.Close()
	f, err := pathrs.MkdirAllHandle(root, clean, mode)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", r.Join(clean), err)
	}
	return &Dir{f: f, path: r.Join(clean)}, nil
}

// OpenDir opens the existing directory p inside the root, resolving
// symlinks inside it (pathrs.OpenInRoot).
func (r Root) OpenDir(p string) (*Dir, error) {
	clean := filepath.Clean("/" + p)
	root, err := r.openRoot()
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", r.Join(clean), err)
	}
	defer root.Close()
	f, err := pathrs.OpenatInRoot(root, clean)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", r.Join(clean), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		f.Close()
		return nil, fmt.Errorf("opening %s: %w", r.Join(clean), unix.ENOTDIR)
	}
	return &Dir{f: f, path: r.Join(clean)}, nil
}

// WriteFile writes data to p inside the root atomically (see
// Dir.WriteFile), creating the directories leading to it (0755). No symlink
// in the tree can make it write outside the root.
func (r Root) WriteFile(p string, data []byte, perm os.FileMode) error {
	clean := filepath.Clean("/" + p)
	d, err := r.MkdirAll(filepath.Dir(clean), 0o755)
	if err != nil {
		return fmt.Errorf("writing %s: %w", r.Join(clean), err)
	}
	defer d.Close()
	if err := d.WriteFile(filepath.Base(clean), data, perm, nil); err != nil {
		return fmt.Errorf("writing %s: %w", r.Join(clean), err)
	}
	return nil
}

// Chmod sets the mode of p inside the root. A symlink as the last element
// is refused (ErrSymlink), not followed: in a user-owned directory it could
// point anywhere.
func (r Root) Chmod(p string, mode os.FileMode) error {
	return r.onLast(p, "chmod", func(d *Dir, name string) error { return d.Chmod(name, mode) })
}

// Chown sets the owner of p inside the root, of a symlink itself when p is
// one (lchown).
func (r Root) Chown(p string, o Owner) error {
	return r.onLast(p, "chown", func(d *Dir, name string) error { return d.Chown(name, o) })
}

func (r Root) onLast(p, op string, f func(*Dir, string) error) error {
	clean := filepath.Clean("/" + p)
	if clean == "/" {
		return fmt.Errorf("%s %s: the root itself", op, r)
	}
	d, err := r.OpenDir(filepath.Dir(clean))
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, r.Join(clean), err)
	}
	defer d.Close()
	if err := f(d, filepath.Base(clean)); err != nil {
		return fmt.Errorf("%s %s: %w", op, r.Join(clean), err)
	}
	return nil
}

// checkName refuses anything but a single path element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return fmt.Errorf("%q: not a single path element", name)
	}
	return nil
}

// openNoFollow opens name in d with O_NOFOLLOW; a symlink is ErrSymlink.
func (d *Dir) openNoFollow(name string, flags int) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd(), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP || (err == unix.ENOTDIR && flags&unix.O_DIRECTORY != 0) {
		var st unix.Stat_t
		if unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, fmt.Errorf("%s: %w", filepath.Join(d.path, name), ErrSymlink)
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(d.path, name), Err: err}
	}
	// O_PATH|O_NOFOLLOW opens a symlink itself instead of failing.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: filepath.Join(d.path, name), Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", filepath.Join(d.path, name), ErrSymlink)
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), nil
}

// Subdir opens the directory name in d, creating it with mode when absent.
// A symlink there is refused with ErrSymlink, never followed.
func (d *Dir) Subdir(name string, mode os.FileMode) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := unix.Mkdirat(d.fd(), name, uint32(mode.Perm())); err != nil && err != unix.EEXIST {
		return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(d.path, name), Err: err}
	}
	f, err := d.openNoFollow(name, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	return &Dir{f: f, path: filepath.Join(d.path, name)}, nil
}

// ReadFile reads the regular file name in d, at most limit bytes (more is
// an error). A symlink is ErrSymlink; a FIFO or device is refused without
// opening it for reading; a file with other hard links is refused, as it
// may be a link to a file its owner could not read (/etc/shadow).
func (d *Dir) ReadFile(name string, limit int64) ([]byte, error) {
	h, err := d.openNoFollow(name, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: h.Name(), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file", h.Name())
	}
	if st.Nlink > 1 {
		return nil, fmt.Errorf("%s: has %d hard links, refusing to read it", h.Name(), st.Nlink)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name(), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Name(), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", h.Name(), limit)
	}
	return data, nil
}

var tmpSeq atomic.Uint64

// WriteFile writes data to name in d atomically: a temporary file created
// in d with O_EXCL|O_NOFOLLOW, written, chmod'ed and chown'ed (owner, when
// not nil) through its descriptor, fsync'ed, renamed over name, and d
// fsync'ed. A symlink at name is replaced, never followed.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode, owner *Owner) error {
	return d.writeFile(name, data, perm, owner, true)
}

// writeFile is WriteFile; without durable, nothing is fsync'ed (the
// replacement is still atomic for readers).
func (d *Dir) writeFile(name string, data []byte, perm os.FileMode, owner *Owner, durable bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	var tmp string
	var fd int
	var err error
	for range 100 {
		tmp = "." + name + ".tmp-" + strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatUint(tmpSeq.Add(1), 36)
		fd, err = unix.Openat(d.fd(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != unix.EEXIST {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(d.path, tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.path, tmp))
	ok := false
	defer func() {
		if !ok {
			f.Close()
			_ = unix.Unlinkat(d.fd(), tmp, 0)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			return err
		}
	}
	// After chown, which clears set-id bits.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := unix.Renameat(d.fd(), tmp, d.fd(), name); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: filepath.Join(d.path, name), Err: err}
	}
	ok = true
	if !durable {
		return nil
	}
	if s, err := pathrs.Reopen(d.f, unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
		_ = s.Sync()
		s.Close()
	}
	return nil
}

// Chmod sets the mode of name in d; a symlink is ErrSymlink.
func (d *Dir) Chmod(name string, mode os.FileMode) error {
	h, err := d.openNoFollow(name, unix.O_PATH)
	if err != nil {
		return err
	}
	defer h.Close()
	// fchmod does not work on an O_PATH descriptor; chmod through
	// /proc/self/fd acts on the inode held, not on a path.
	return os.Chmod("/proc/self/fd/"+strconv.Itoa(int(h.Fd())), mode)
}

// Chown sets the owner of name in d, of a symlink itself (lchown).
func (d *Dir) Chown(name string, o Owner) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := unix.Fchownat(d.fd(), name, o.UID, o.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: filepath.Join(d.path, name), Err: err}
	}
	return nil
}

// ChmodSelf and ChownSelf act on d itself (the inode held, wherever its
// path now leads).
func (d *Dir) ChmodSelf(mode os.FileMode) error {
	return os.Chmod("/proc/self/fd/"+strconv.Itoa(d.fd()), mode)
}

// ChownSelf sets d's owner.
func (d *Dir) ChownSelf(o Owner) error {
	if err := unix.Fchownat(d.fd(), "", o.UID, o.GID, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: d.path, Err: err}
	}
	return nil
}
