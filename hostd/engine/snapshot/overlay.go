package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay makes and removes overlayfs snapshots under Root.
type Overlay struct {
	Root string // e.g. /var/lib/hostd/snapshots
}

// Dirs of one snapshot.
func (o Overlay) dir(id string) string    { return filepath.Join(o.Root, id) }
func (o Overlay) upper(id string) string  { return filepath.Join(o.dir(id), "upper") }
func (o Overlay) work(id string) string   { return filepath.Join(o.dir(id), "work") }
func (o Overlay) empty(id string) string  { return filepath.Join(o.dir(id), "empty") }
func (o Overlay) Rootfs(id string) string { return filepath.Join(o.dir(id), "rootfs") }
func (o Overlay) Upper(id string) string  { return o.upper(id) }
func (o Overlay) Mounted(id string) bool  { return isMountPoint(o.Rootfs(id)) }

// MountOptions is the overlayfs option string for lowers (bottom first, as
// an image lists its layers; overlayfs wants the top first).
func MountOptions(lowers []string, upper, work string) string {
	rev := make([]string, len(lowers))
	for i, l := range lowers {
		rev[len(lowers)-1-i] = l
	}
	// index=off: layers are shared between snapshots and may be hardlinked;
	// the inode index would tie a lower to the first upper that used it.
	// redirect_dir=off, metacopy=off: the upper directory must hold whole
	// files and plain directories, since docker diff, commit and export read
	// it as a layer (a kernel built with either on by default would leave
	// redirects and metadata-only copies there).
	return fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off,redirect_dir=off,metacopy=off", strings.Join(rev, ":"), upper, work)
}

// Mount mounts snapshot id over the given layer directories (bottom first)
// and returns its rootfs path. The upper directory is kept between mounts, so
// a stopped container restarts with its changes. Mounting a mounted snapshot
// does nothing.
func (o Overlay) Mount(id string, lowers []string) (string, error) {
	rootfs := o.Rootfs(id)
	if o.Mounted(id) {
		return rootfs, nil
	}
	// Root and each snapshot's directory are private (0700): the upper
	// directory holds what the container wrote, setuid binaries and device
	// nodes among them, on the host's filesystem (moby's CVE-2021-41091).
	// The upper and rootfs directories keep 0755, the mode the
	// container sees on its /.
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{o.Root, 0o700}, {o.dir(id), 0o700}, {o.upper(id), 0o755}, {o.work(id), 0o700}, {rootfs, 0o755}, {o.empty(id), 0o755}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return "", fmt.Errorf("preparing snapshot %s: %w", id, err)
		}
		if d.mode == 0o700 {
			// Made by an older hostd with 0755: close it now.
			if err := os.Chmod(d.path, d.mode); err != nil {
				return "", fmt.Errorf("preparing snapshot %s: %w", id, err)
			}
		}
	}
	if len(lowers) == 0 {
		// overlayfs needs a lower; an image without layers gets an empty one.
		lowers = []string{o.empty(id)}
	}
	opts := MountOptions(lowers, o.upper(id), o.work(id))
	if len(opts) > unix.Getpagesize()-1 {
		return "", fmt.Errorf("mounting snapshot %s: %d layers make overlay options longer than a page", id, len(lowers))
	}
	// nosuid, nodev: the mount is reachable from the host, where a setuid
	// binary or a device node the container made must mean nothing. Inside
	// too, setuid binaries of the rootfs gain nothing, even in a container
	// without no_new_privs (the Docker API's default, as dockerd's);
	// containers get their devices on /dev's tmpfs.
	if err := unix.Mount("overlay", rootfs, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return "", fmt.Errorf("mounting snapshot %s: %w", id, err)
	}
	return rootfs, nil
}

// Unmount unmounts snapshot id; an unmounted one is fine.
func (o Overlay) Unmount(id string) error {
	rootfs := o.Rootfs(id)
	if !o.Mounted(id) {
		return nil
	}
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmounting snapshot %s: %w", id, err)
	}
	return nil
}

// Remove unmounts and deletes snapshot id with its changes.
func (o Overlay) Remove(id string) error {
	if err := o.Unmount(id); err != nil {
		return err
	}
	if err := os.RemoveAll(o.dir(id)); err != nil {
		return fmt.Errorf("removing snapshot %s: %w", id, err)
	}
	return nil
}

// isMountPoint reports whether p is a mount point: its device differs from
// its parent's, or (for bind mounts on the same device) the mount IDs do.
func isMountPoint(p string) bool {
	var st, pst unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st) != nil {
		return false
	}
	if unix.Statx(unix.AT_FDCWD, filepath.Dir(p), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &pst) != nil {
		return false
	}
	return st.Mnt_id != pst.Mnt_id
}
