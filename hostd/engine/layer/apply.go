package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsafe marks a layer entry refused because it would write outside the
// target directory or create something a layer must not (a device node).
var ErrUnsafe = errors.New("unsafe layer entry")

// Whiteout markers, from the OCI image spec (image-layer.md, "Whiteouts"):
// a .wh.name entry deletes name, a .wh..wh..opq entry hides what lower
// layers have in its directory.
const (
	WhiteoutPrefix = ".wh."
	OpaqueWhiteout = ".wh..wh..opq"
)

// OverlayOpaqueXattr marks a directory whose lower-layer contents are hidden
// (overlayfs documentation, "whiteouts and opaque directories").
const OverlayOpaqueXattr = "trusted.overlay.opaque"

// Stats describes an applied layer.
type Stats struct {
	Entries   int   // tar entries processed
	Bytes     int64 // regular file bytes written
	Whiteouts int   // whiteouts and opaque markers converted
}

// Apply unpacks the uncompressed tar stream r into dir, which must exist and
// should be empty (each layer gets its own directory, stacked by overlayfs).
//
// Every entry is created through file descriptors opened beneath dir with
// symlinks refused along the way (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
// so no entry name, symlink or hardlink in the layer can make a write land
// outside dir. Entries with absolute names or names climbing out with ".."
// and character/block devices are refused with ErrUnsafe. Whiteouts need root
// (mknod of a 0/0 device, trusted.* xattrs). Ownership is applied only when
// running as root.
func Apply(ctx context.Context, dir string, r io.Reader) (Stats, error) {
	var st Stats
	rootFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return st, fmt.Errorf("opening layer directory %s: %w", dir, err)
	}
	defer unix.Close(rootFD)
	a := &applier{root: rootFD, dir: dir, chown: os.Geteuid() == 0}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("reading layer tar into %s: %w", dir, err)
		}
		st.Entries++
		n, wh, err := a.entry(hdr, tr)
		if err != nil {
			return st, fmt.Errorf("unpacking %q into %s: %w", hdr.Name, dir, err)
		}
		st.Bytes += n
		if wh {
			st.Whiteouts++
		}
	}
	// Directory times last: creating their children changed them.
	for i := len(a.dirTimes) - 1; i >= 0; i-- {
		dt := a.dirTimes[i]
		if err := a.setTimes(dt.name, dt.mtime); err != nil {
			return st, fmt.Errorf("setting times of %q in %s: %w", dt.name, dir, err)
		}
	}
	return st, nil
}

type dirTime struct {
	name  string
	mtime time.Time
}

type applier struct {
	root     int
	dir      string
	chown    bool
	dirTimes []dirTime
}

// CleanName turns a tar entry name into a relative slash path inside the
// layer, or fails with ErrUnsafe for absolute names and names that climb
// out. "./" prefixes and trailing slashes are normal in layers.
func CleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name", ErrUnsafe)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: name contains ..", ErrUnsafe)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return ".", nil
	}
	if strings.ContainsRune(c, 0) {
		return "", fmt.Errorf("%w: NUL in name", ErrUnsafe)
	}
	return c, nil
}

// entry applies one tar header. It returns the bytes written and whether it
// was a whiteout.
func (a *applier) entry(hdr *tar.Header, r io.Reader) (int64, bool, error) {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return 0, false, err
	}
	if isSparse(hdr) {
		// A sparse entry can declare a logical size far beyond its bytes
		// and fill the disk with zeros; image builders do not write them.
		return 0, false, fmt.Errorf("%w: sparse file", ErrUnsafe)
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return 0, false, a.attrs(".", hdr)
		}
		return 0, false, fmt.Errorf("%w: the layer root is not a directory", ErrUnsafe)
	}
	parent, base := path.Split(name)
	parent = path.Clean(parent)
	pfd, err := a.mkdirAll(parent)
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(pfd)

	if base == OpaqueWhiteout {
		return 0, true, setXattr(pfd, ".", OverlayOpaqueXattr, "y")
	}
	if strings.HasPrefix(base, WhiteoutPrefix) {
		target := strings.TrimPrefix(base, WhiteoutPrefix)
		if target == "" || target == "." || target == ".." {
			return 0, false, fmt.Errorf("%w: whiteout of %q", ErrUnsafe, target)
		}
		if err := removeAt(pfd, target); err != nil {
			return 0, false, err
		}
		// overlayfs: a 0/0 character device hides the name in lower layers.
		if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
			return 0, false, fmt.Errorf("making whiteout %s: %w", target, err)
		}
		return 0, true, nil
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return 0, false, fmt.Errorf("making directory: %w", err)
		}
		if err := a.requireDir(pfd, base); err != nil {
			// A non-directory is in the way: replace it.
			if err := removeAt(pfd, base); err != nil {
				return 0, false, err
			}
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return 0, false, fmt.Errorf("making directory: %w", err)
			}
		}
		if err := a.attrs(name, hdr); err != nil {
			return 0, false, err
		}
		a.dirTimes = append(a.dirTimes, dirTime{name: name, mtime: hdr.ModTime})
		return 0, false, nil
	case tar.TypeReg, tar.TypeRegA:
		if err := removeAt(pfd, base); err != nil {
			return 0, false, err
		}
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, false, fmt.Errorf("creating file: %w", err)
		}
		f := os.NewFile(uintptr(fd), name)
		n, err := io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, false, fmt.Errorf("writing file: %w", err)
		}
		return n, false, a.attrs(name, hdr)
	case tar.TypeSymlink:
		if err := removeAt(pfd, base); err != nil {
			return 0, false, err
		}
		// The target is stored as is: it is resolved later inside the
		// container's root, never while unpacking (no write follows it).
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return 0, false, fmt.Errorf("making symlink: %w", err)
		}
		return 0, false, a.attrs(name, hdr)
	case tar.TypeLink:
		target, err := CleanName(hdr.Linkname)
		if err != nil || target == "." {
			return 0, false, fmt.Errorf("%w: hardlink target %q", ErrUnsafe, hdr.Linkname)
		}
		tparent, tbase := path.Split(target)
		tfd, err := a.openDir(path.Clean(tparent))
		if err != nil {
			return 0, false, fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		if err := removeAt(pfd, base); err != nil {
			return 0, false, err
		}
		// No AT_SYMLINK_FOLLOW: linking a symlink links the symlink itself.
		if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
			return 0, false, fmt.Errorf("making hardlink to %q: %w", hdr.Linkname, err)
		}
		return 0, false, nil
	case tar.TypeFifo:
		if err := removeAt(pfd, base); err != nil {
			return 0, false, err
		}
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return 0, false, fmt.Errorf("making fifo: %w", err)
		}
		return 0, false, a.attrs(name, hdr)
	case tar.TypeChar, tar.TypeBlock:
		// A container gets its devices from the runtime; a device node in a
		// layer could open host hardware.
		return 0, false, fmt.Errorf("%w: device node", ErrUnsafe)
	case tar.TypeXGlobalHeader:
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("%w: tar entry type %q", ErrUnsafe, hdr.Typeflag)
	}
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// beneath is how every path inside the layer is resolved: never above the
// layer root, never through a symlink or a magic /proc link.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openDir opens an existing directory inside the layer as an O_PATH fd.
func (a *applier) openDir(rel string) (int, error) {
	if rel == "." {
		return unix.Dup(a.root)
	}
	fd, err := unix.Openat2(a.root, rel, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath,
	})
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			return -1, fmt.Errorf("%w: %s goes through a symlink", ErrUnsafe, rel)
		}
		return -1, fmt.Errorf("opening %s: %w", rel, err)
	}
	return fd, nil
}

// mkdirAll makes rel and its parents (as tar often omits them) and returns
// an fd of rel. A symlink on the way is refused, not followed.
func (a *applier) mkdirAll(rel string) (int, error) {
	fd, err := unix.Dup(a.root)
	if err != nil {
		return -1, err
	}
	if rel == "." {
		return fd, nil
	}
	for _, part := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(fd, part, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(fd)
			return -1, fmt.Errorf("making parent %s: %w", rel, err)
		}
		next, err := unix.Openat2(fd, part, &unix.OpenHow{
			Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath,
		})
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
				return -1, fmt.Errorf("%w: parent %s is a symlink or not a directory", ErrUnsafe, rel)
			}
			return -1, fmt.Errorf("opening parent %s: %w", rel, err)
		}
		fd = next
	}
	return fd, nil
}

func (a *applier) requireDir(pfd int, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	return nil
}

// removeAt removes whatever is at pfd/base (a whole tree for a directory),
// as a later entry replaces an earlier one of the same name.
func removeAt(pfd int, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("removing %s: %w", base, err)
	}
	dfd, err := unix.Openat2(pfd, base, &unix.OpenHow{
		Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath,
	})
	if err != nil {
		return fmt.Errorf("opening %s to remove it: %w", base, err)
	}
	d := os.NewFile(uintptr(dfd), base)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return fmt.Errorf("listing %s to remove it: %w", base, err)
	}
	for _, n := range names {
		if err := removeAt(dfd, n); err != nil {
			d.Close()
			return err
		}
	}
	d.Close()
	if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("removing %s: %w", base, err)
	}
	return nil
}

// attrs applies owner, mode, xattrs and (for non-directories) times to the
// entry at rel, without following a symlink at rel.
func (a *applier) attrs(rel string, hdr *tar.Header) error {
	pfd, base, err := a.parentOf(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if a.chown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears setuid/setgid bits.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		x, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !allowedXattr(x) {
			continue
		}
		if err := setXattr(pfd, base, x, v); err != nil {
			return err
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil
	}
	return a.setTimesAt(pfd, base, hdr.ModTime)
}

// allowedXattr keeps user.* and file capabilities. trusted.* and security.*
// others are dropped: a layer must not forge overlayfs metadata
// (trusted.overlay.redirect could point a lookup anywhere) or LSM labels.
func allowedXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability"
}

func (a *applier) parentOf(rel string) (int, string, error) {
	if rel == "." {
		fd, err := unix.Dup(a.root)
		return fd, ".", err
	}
	parent, base := path.Split(rel)
	fd, err := a.openDir(path.Clean(parent))
	return fd, base, err
}

func (a *applier) setTimes(rel string, mtime time.Time) error {
	pfd, base, err := a.parentOf(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return a.setTimesAt(pfd, base, mtime)
}

func (a *applier) setTimesAt(pfd int, base string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// setXattr sets an xattr on pfd/base without following symlinks. An O_PATH
// fd cannot take xattrs directly, so it goes through /proc/self/fd, which
// names the already-resolved inode.
func setXattr(pfd int, base, name, value string) error {
	fd, err := unix.Openat2(pfd, base, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: beneath,
	})
	if err != nil {
		return fmt.Errorf("opening for xattr %s: %w", name, err)
	}
	defer unix.Close(fd)
	p := fmt.Sprintf("/proc/self/fd/%d", fd)
	if err := unix.Setxattr(p, name, []byte(value), 0); err != nil {
		return fmt.Errorf("setting xattr %s: %w", name, err)
	}
	return nil
}
