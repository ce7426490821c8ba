package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/layer"
)

// ErrNoPath is a path docker cp names that the container does not have
// (a 404, but not "no such container").
var ErrNoPath = errors.New("no such file or directory")

// PathStat describes a path in a container, as the Docker API's
// X-Docker-Container-Path-Stat header carries it (types.ContainerPathStat).
type PathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       os.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"`
}

// ctrRoot is a container's filesystem opened for docker cp and export: an
// O_PATH descriptor of its "/", which every lookup below starts from with
// openat2 RESOLVE_IN_ROOT or RESOLVE_BENEATH, so no symlink the container
// made can lead a lookup to the host's files.
type ctrRoot struct {
	fd      int
	path    string // for computing link targets only, never opened by name
	name    string
	release func()
	// volumes are the mount points of a stopped container's volumes,
	// for docker cp: not mounted in the overlay view (see checkVolume).
	volumes []string
}

func (r *ctrRoot) Close() {
	unix.Close(r.fd)
	r.release()
}

// openRoot opens c's filesystem. withMounts: a running container's view
// with its volumes and bind mounts (its init's /proc/<pid>/root), as
// docker cp sees it; otherwise, and for a stopped container, the overlay
// rootfs, mounted for the time of the copy (the op lock keeps a start out
// meanwhile).
func (e *Engine) openRoot(ref string, withMounts bool) (*ctrRoot, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if withMounts && c.State == StateRunning && c.Pid > 0 {
		p := path.Join(e.ProcRoot(), strconv.Itoa(c.Pid), "root")
		fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening the filesystem of %s: %w", c.Name, err)
		}
		return &ctrRoot{fd: fd, path: p, name: c.Name, release: func() {}}, nil
	}
	m := e.op(c.ID)
	m.Lock()
	mounted := e.snaps.Mounted(c.ID)
	lowers := make([]string, len(c.Layers))
	for i, l := range c.Layers {
		lowers[i] = e.images.LayerDir(l)
	}
	rootfs, err := e.snaps.Mount(c.ID, lowers)
	if err != nil {
		m.Unlock()
		return nil, fmt.Errorf("opening the filesystem of %s: %w", c.Name, err)
	}
	release := func() {
		if !mounted {
			if err := e.snaps.Unmount(c.ID); err != nil {
				e.log.Warn("unmounting snapshot", "container", c.Name, "err", err)
			}
		}
		m.Unlock()
	}
	fd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		release()
		return nil, fmt.Errorf("opening the filesystem of %s: %w", c.Name, err)
	}
	root := &ctrRoot{fd: fd, path: rootfs, name: c.Name, release: release}
	if withMounts {
		for _, d := range c.Destinations() {
			root.volumes = append(root.volumes, path.Clean("/"+d))
		}
	}
	return root, nil
}

// checkVolume refuses p when it is in a volume of a stopped container:
// the overlay view does not have the volume mounted, so a copy there
// would read or write the hidden rootfs directory instead of the volume.
func (r *ctrRoot) checkVolume(p string) error {
	clean := path.Clean("/" + p)
	for _, d := range r.volumes {
		if clean == d || strings.HasPrefix(clean, d+"/") || d == "/" {
			return fmt.Errorf("%w: %s is in the volume at %s of the stopped container %s: hostd copies volume contents only while the container runs",
				ErrInvalid, p, d, r.name)
		}
	}
	return nil
}

// inRoot opens p (a path in the container) beneath r with flags, symlinks
// resolved as the container would, inside its root.
func (r *ctrRoot) inRoot(p string, flags int) (int, error) {
	rel := strings.TrimLeft(path.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(r.fd, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// target is the path docker cp names: its parent directory, opened, and
// its last element. A path ending in "/" or "/." names what a symlink
// there points to, as with dockerd; otherwise the link itself.
type target struct {
	dirfd int
	base  string
	st    unix.Stat_t
}

func (r *ctrRoot) lookup(p string) (target, error) {
	if p == "" {
		return target{}, fmt.Errorf("%w: empty path", ErrInvalid)
	}
	if err := r.checkVolume(p); err != nil {
		return target{}, err
	}
	clean := path.Clean("/" + p)
	follow := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	var t target
	var err error
	if clean == "/" || follow {
		t.dirfd, err = r.inRoot(clean, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return t, r.notFound(p, err)
		}
		t.base = "."
	} else {
		t.dirfd, err = r.inRoot(path.Dir(clean), unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return t, r.notFound(p, err)
		}
		t.base = path.Base(clean)
	}
	if err := unix.Fstatat(t.dirfd, t.base, &t.st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH); err != nil {
		unix.Close(t.dirfd)
		return t, r.notFound(p, err)
	}
	return t, nil
}

func (r *ctrRoot) notFound(p string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("could not find the file %s in container %s: %w", p, r.name, ErrNoPath)
	}
	return fmt.Errorf("looking up %s in container %s: %w", p, r.name, err)
}

// fileMode is st's mode as Go's os.FileMode, which the stat header uses.
func fileMode(st *unix.Stat_t) os.FileMode {
	m := os.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= os.ModeDir
	case unix.S_IFLNK:
		m |= os.ModeSymlink
	case unix.S_IFCHR:
		m |= os.ModeDevice | os.ModeCharDevice
	case unix.S_IFBLK:
		m |= os.ModeDevice
	case unix.S_IFIFO:
		m |= os.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= os.ModeSocket
	}
	if st.Mode&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

func (r *ctrRoot) stat(p string, t target) PathStat {
	ps := PathStat{
		Name: path.Base(path.Clean("/" + p)), Size: t.st.Size, Mode: fileMode(&t.st),
		Mtime: time.Unix(t.st.Mtim.Unix()).UTC(),
	}
	if t.st.Mode&unix.S_IFMT == unix.S_IFLNK {
		// Where the link leads inside the container (docker cp -L copies
		// that). Only reported: every access goes through openat2.
		if full, err := securejoin.SecureJoin(r.path, p); err == nil {
			ps.LinkTarget = "/" + strings.TrimLeft(strings.TrimPrefix(full, r.path), "/")
		}
	}
	return ps
}

// StatPath is HEAD /containers/{id}/archive: what p is in the container.
func (e *Engine) StatPath(ref, p string) (PathStat, error) {
	r, err := e.openRoot(ref, true)
	if err != nil {
		return PathStat{}, err
	}
	defer r.Close()
	t, err := r.lookup(p)
	if err != nil {
		return PathStat{}, err
	}
	defer unix.Close(t.dirfd)
	return r.stat(p, t), nil
}

// CopyFrom is GET /containers/{id}/archive (docker cp out of a container):
// head gets p's stat before any of the tar stream of p (named by its last
// element, a directory with its contents) is written to w.
func (e *Engine) CopyFrom(ref, p string, head func(PathStat), w io.Writer) error {
	r, err := e.openRoot(ref, true)
	if err != nil {
		return err
	}
	defer r.Close()
	t, err := r.lookup(p)
	if err != nil {
		return err
	}
	defer unix.Close(t.dirfd)
	ps := r.stat(p, t)
	head(ps)
	name := ps.Name
	if name == "/" || name == "." {
		name = "."
	}
	tw := tar.NewWriter(w)
	if err := (treeWriter{tw: tw}).entry(t.dirfd, t.base, name, &t.st); err != nil {
		return fmt.Errorf("copying %s from %s: %w", p, r.name, err)
	}
	return tw.Close()
}

// Export is GET /containers/{id}/export: the container's filesystem (its
// rootfs, without volumes and mounts, as dockerd exports it) as a tar.
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	r, err := e.openRoot(ref, false)
	if err != nil {
		return err
	}
	defer r.Close()
	dirfd, err := r.inRoot("/", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("exporting %s: %w", r.name, err)
	}
	defer unix.Close(dirfd)
	tw := tar.NewWriter(w)
	if err := (treeWriter{tw: tw}).children(dirfd, ""); err != nil {
		return fmt.Errorf("exporting %s: %w", r.name, err)
	}
	return tw.Close()
}

// openBeneath opens name in dirfd refusing any symlink on the way: a
// running container cannot swap a directory for a link mid-walk.
func openBeneath(dirfd int, name string, flags int) (int, error) {
	return unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// treeWriter writes a directory tree into a tar. With layer set it writes
// an image layer from an overlay upper directory: a whiteout (0/0
// character device) becomes a .wh. entry, an opaque directory gets a
// .wh..wh..opq entry, and the names in skip are left out.
type treeWriter struct {
	tw    *tar.Writer
	layer bool
	skip  map[string]bool
}

// entry writes base (in dirfd, stat st) as tar entry name, and a
// directory's contents beneath it.
func (w treeWriter) entry(dirfd int, base, name string, st *unix.Stat_t) error {
	tw := w.tw
	if w.skip[name] {
		return nil
	}
	hdr := &tar.Header{
		Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()), Format: tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, strings.TrimSuffix(name, "/")+"/"
		fd, err := openBeneath(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if name != "." {
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		if kernelFS(fd) {
			return nil
		}
		prefix := name + "/"
		if name == "." {
			prefix = ""
		}
		if w.layer && opaque(fd) {
			if err := tw.WriteHeader(&tar.Header{Name: prefix + layer.OpaqueWhiteout, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: hdr.ModTime, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		return w.children(fd, prefix)
	case unix.S_IFREG:
		fd, err := openBeneath(dirfd, base, unix.O_RDONLY)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			return err
		}
		if fst.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("%s changed while copied", name)
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, fst.Size
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.CopyN(tw, f, fst.Size)
		if errors.Is(err, io.EOF) {
			// Shrunk while copied: the header promised fst.Size bytes.
			_, err = io.CopyN(tw, zeros{}, fst.Size-n)
		}
		return err
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, string(buf[:n])
	case unix.S_IFCHR, unix.S_IFBLK:
		if w.layer && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			dir, file := path.Split(name)
			hdr.Name, hdr.Typeflag, hdr.Mode = dir+layer.WhiteoutPrefix+file, tar.TypeReg, 0o644
			break
		}
		hdr.Typeflag = map[bool]byte{true: tar.TypeChar, false: tar.TypeBlock}[st.Mode&unix.S_IFMT == unix.S_IFCHR]
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets: tar has no type for them
	}
	return tw.WriteHeader(hdr)
}

// kernelFS reports whether the directory fd is the root of a kernel
// filesystem the runtime mounted in the container (/proc, /sys, cgroups):
// docker cp copies the directory, not the kernel's files in it, as
// dockerd's view of the container has them empty.
func kernelFS(fd int) bool {
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil {
		return false
	}
	switch sfs.Type {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.CGROUP2_SUPER_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.DEVPTS_SUPER_MAGIC:
		return true
	}
	return false
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// children writes the entries of the directory dirfd, named under
// prefix.
func (w treeWriter) children(dirfd int, prefix string) error {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), prefix)
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, ent := range ents {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, ent.Name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			return err
		}
		if err := w.entry(dirfd, ent.Name(), prefix+ent.Name(), &st); err != nil {
			return err
		}
	}
	return nil
}

// CopyOptions are docker cp's PUT parameters.
type CopyOptions struct {
	// KeepOwner keeps the tar's owners (copyUIDGID, docker cp -a).
	KeepOwner bool
	// NoOverwriteDirNonDir refuses to replace a directory with a
	// non-directory or the other way round (the CLI's default).
	NoOverwriteDirNonDir bool
}

// CopyTo is PUT /containers/{id}/archive (docker cp into a container):
// the tar stream r is unpacked into the directory dir of the container.
// Entries are unpacked by the image layer code beneath that directory,
// so names with ".." or absolute names, and links in the way, are refused
// (layer.ErrUnsafe). Without o.KeepOwner the files belong to the
// container's root, as dockerd makes them without copyUIDGID.
func (e *Engine) CopyTo(ctx context.Context, ref, dir string, r io.Reader, o CopyOptions) error {
	root, err := e.openRoot(ref, true)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.checkVolume(dir); err != nil {
		return err
	}
	fd, err := root.inRoot(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("%w: extracting into %s in %s: not a directory", ErrInvalid, dir, root.name)
		}
		return root.notFound(dir, err)
	}
	defer unix.Close(fd)
	pr := cpEntries(r, fd, o, func(name string) error { return root.checkVolume(path.Join("/", dir, name)) })
	defer pr.Close() // ends the rewriter if Apply stopped early
	// The descriptor's /proc link is the directory itself, wherever its
	// path leads now.
	if _, err := layer.Apply(ctx, "/proc/self/fd/"+strconv.Itoa(fd), pr); err != nil {
		if errors.Is(err, ErrInvalid) {
			return err
		}
		if errors.Is(err, layer.ErrUnsafe) {
			return fmt.Errorf("%w: copying into %s in %s: %w", ErrInvalid, dir, root.name, err)
		}
		return fmt.Errorf("copying into %s in %s: %w", dir, root.name, err)
	}
	return nil
}

// cpEntries passes the tar stream r, to be unpacked in the directory
// dirfd, on: with every entry owned by 0:0 unless o.KeepOwner, and
// refused where it would replace a directory by a non-directory or the
// other way round, with o.NoOverwriteDirNonDir, or where check refuses
// its name (a stopped container's volume). Names that layer.Apply would take for overlayfs
// whiteouts (.wh.*) are refused: in docker cp they are plain names, and
// unpacked as whiteouts they would delete files.
func cpEntries(r io.Reader, dirfd int, o CopyOptions, check func(name string) error) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		tr, tw := tar.NewReader(r), tar.NewWriter(pw)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if strings.HasPrefix(path.Base(hdr.Name), ".wh.") {
				pw.CloseWithError(fmt.Errorf("%w: %q: a name starting with .wh. is not copied", layer.ErrUnsafe, hdr.Name))
				return
			}
			if err := check(hdr.Name); err != nil {
				pw.CloseWithError(err)
				return
			}
			if o.NoOverwriteDirNonDir {
				if err := overwriteCheck(dirfd, hdr); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			if !o.KeepOwner {
				hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			}
			if err := tw.WriteHeader(hdr); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// overwriteCheck refuses hdr where it would replace a directory by a
// non-directory or a non-directory by a directory (dockerd's messages).
// The existing entry is looked up beneath dirfd without following links;
// names the layer code refuses are left to it.
func overwriteCheck(dirfd int, hdr *tar.Header) error {
	name, err := layer.CleanName(hdr.Name)
	if err != nil || name == "." {
		return nil
	}
	pfd, err := openBeneath(dirfd, path.Dir(name), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil // not there yet
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if unix.Fstatat(pfd, path.Base(name), &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return nil
	}
	isDir, newDir := st.Mode&unix.S_IFMT == unix.S_IFDIR, hdr.Typeflag == tar.TypeDir
	switch {
	case isDir && !newDir:
		return fmt.Errorf("%w: cannot overwrite directory %q with non-directory %q", ErrInvalid, "/"+name, hdr.Name)
	case !isDir && newDir:
		return fmt.Errorf("%w: cannot overwrite non-directory %q with directory %q", ErrInvalid, "/"+name, hdr.Name)
	}
	return nil
}
