package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// volumeMounts are the runtime mounts of c's volumes, binds and tmpfs
// mounts. A volume that is empty gets the image's content at its mount
// point first (copy-up), unless its mount says noCopy.
func (e *Engine) volumeMounts(c *Container, rootfs string) ([]runtime.Mount, error) {
	var out []runtime.Mount
	volume := func(name, dest string, ro, noCopy bool) error {
		v, err := e.CreateVolume(name, nil) // an existing one is returned as is
		if err != nil {
			return fmt.Errorf("volume %s for %s: %w", name, dest, err)
		}
		if !noCopy {
			if err := copyUp(rootfs, dest, v.Mountpoint); err != nil {
				return fmt.Errorf("copying the image's %s into volume %s: %w", dest, name, err)
			}
		}
		out = append(out, runtime.Mount{Source: v.Mountpoint, Destination: dest, ReadOnly: ro})
		return nil
	}
	for _, vs := range c.Spec.Volumes {
		v, err := ParseVolume(vs)
		if err != nil {
			return nil, err
		}
		if v.Named {
			if err := volume(v.Source, v.Destination, v.ReadOnly, false); err != nil {
				return nil, err
			}
			continue
		}
		// -v creates a missing host directory, as dockerd's does.
		if err := os.MkdirAll(v.Source, 0o755); err != nil {
			return nil, fmt.Errorf("volume %s: %w", vs, err)
		}
		out = append(out, runtime.Mount{Source: v.Source, Destination: v.Destination, ReadOnly: v.ReadOnly})
	}
	for _, m := range c.Spec.Mounts {
		dest := filepath.Clean(m.Target)
		switch m.Type {
		case MountBind:
			// --mount does not create the source (dockerd refuses it too).
			if _, err := os.Stat(m.Source); err != nil {
				return nil, fmt.Errorf("%w: bind source path does not exist: %s", ErrInvalid, m.Source)
			}
			out = append(out, runtime.Mount{Source: filepath.Clean(m.Source), Destination: dest, ReadOnly: m.ReadOnly})
		case MountVolume:
			if m.Source == "" {
				continue // anonymous: in c.AnonymousVolumes
			}
			if err := volume(m.Source, dest, m.ReadOnly, m.NoCopy); err != nil {
				return nil, err
			}
		case MountTmpfs:
			opts := append([]string(nil), tmpfsDefaults...)
			if m.TmpfsSize > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
			}
			if m.TmpfsMode != 0 {
				opts = append(opts, fmt.Sprintf("mode=%o", m.TmpfsMode))
			}
			out = append(out, runtime.Mount{Destination: dest, ReadOnly: m.ReadOnly, Tmpfs: true, Options: opts})
		}
	}
	for _, m := range c.AnonymousVolumes {
		if err := volume(m.Source, m.Target, m.ReadOnly, m.NoCopy); err != nil {
			return nil, err
		}
	}
	for _, t := range sortedPaths(c.Spec.Tmpfs) {
		opts, err := ParseTmpfsOptions(c.Spec.Tmpfs[t])
		if err != nil {
			return nil, err
		}
		out = append(out, runtime.Mount{Destination: filepath.Clean(t), Tmpfs: true, Options: opts})
	}
	return out, nil
}

// maxCopyDepth bounds the directories copy-up descends (each holds two
// descriptors open).
const maxCopyDepth = 128

// copyUp copies the image's content at dest (a path in the container,
// resolved inside rootfs: a symlink in the image cannot lead out of it)
// into the volume directory data when data is empty, keeping ownership
// and modes. Everything is created through descriptors of directories
// copy-up made itself, with O_NOFOLLOW|O_EXCL: a symlink in the image is
// copied as a symlink and never followed, so nothing is written outside
// the volume.
func copyUp(rootfs, dest, data string) error {
	dst, err := os.OpenFile(data, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	if names, err := dst.Readdirnames(1); len(names) > 0 || (err != nil && err != io.EOF) {
		return err // not empty: the volume's data wins
	}
	rfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the container's root %s: %w", rootfs, err)
	}
	defer unix.Close(rfd)
	sfd, err := unix.Openat2(rfd, dest, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing there (or not a directory): nothing to copy
	}
	if err != nil {
		return fmt.Errorf("opening the container's %s: %w", dest, err)
	}
	src := os.NewFile(uintptr(sfd), filepath.Join(rootfs, dest))
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	if err := copyDir(src, dst, 0); err != nil {
		return err
	}
	return setOwnerMode(int(dst.Fd()), st)
}

// copyDir copies the entries of src into dst.
func copyDir(src, dst *os.File, depth int) error {
	if depth > maxCopyDepth {
		return fmt.Errorf("%s: more than %d directories deep", src.Name(), maxCopyDepth)
	}
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src.Name(), err)
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("reading %s/%s: %w", src.Name(), name, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			err = copySubdir(src, dst, name, st, depth)
		case unix.S_IFREG:
			err = copyUpFile(sfd, dfd, name, st)
		case unix.S_IFLNK:
			err = copySymlink(sfd, dfd, name, st)
		case unix.S_IFIFO:
			if err = unix.Mknodat(dfd, name, unix.S_IFIFO|0o600, 0); err == nil {
				err = unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
			}
			if err == nil {
				err = unix.Fchmodat(dfd, name, st.Mode&0o7777, 0)
			}
		default:
			// Devices and sockets are not copied (an image has no business
			// shipping them in a volume's path).
		}
		if err != nil {
			return fmt.Errorf("copying %s/%s: %w", src.Name(), name, err)
		}
	}
	return nil
}

func copySubdir(src, dst *os.File, name string, st unix.Stat_t, depth int) error {
	if err := unix.Mkdirat(int(dst.Fd()), name, 0o700); err != nil {
		return err
	}
	dfd, err := unix.Openat(int(dst.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dfd), filepath.Join(dst.Name(), name))
	defer d.Close()
	sfd, err := unix.Openat(int(src.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	s := os.NewFile(uintptr(sfd), filepath.Join(src.Name(), name))
	defer s.Close()
	if err := copyDir(s, d, depth+1); err != nil {
		return err
	}
	return setOwnerMode(dfd, st)
}

func copyUpFile(sfd, dfd int, name string, st unix.Stat_t) error {
	in, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	r := os.NewFile(uintptr(in), name)
	defer r.Close()
	out, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	w := os.NewFile(uintptr(out), name)
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return setOwnerMode(out, st)
}

func copySymlink(sfd, dfd int, name string, st unix.Stat_t) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(sfd, name, buf)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(string(buf[:n]), dfd, name); err != nil {
		return err
	}
	return unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
}

// setOwnerMode gives fd the owner and mode of st (the mode after the
// owner: chown clears setuid bits).
func setOwnerMode(fd int, st unix.Stat_t) error {
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Fchmod(fd, st.Mode&0o7777)
}
