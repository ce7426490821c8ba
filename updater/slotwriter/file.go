package slotwriter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// InstallFile copies src to dst with Install.
func InstallFile(ctx context.Context, src, dst string, perm os.FileMode) (int64, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	defer in.Close()
	return Install(ctx, in, dst, perm)
}

// Install writes r to dst so that dst is either the old file or the complete
// new one: a temporary file in dst's directory, fsync, rename, fsync of the
// directory. On FAT (the ESP) the rename is the commit point. It returns the
// size and sha256 of what was written, read back from the file. Unlike
// fsroot.WriteFile it does not insist on perm: the ESP is mounted with
// umask=0077, where chmod fails with EPERM and modes mean nothing.
func Install(ctx context.Context, r io.Reader, dst string, perm os.FileMode) (int64, string, error) {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	// FAT has no permissions: chmod fails there with EPERM, and does not matter.
	_ = tmp.Chmod(perm)
	if err := tmp.Sync(); err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	dropCache(tmp, 0)
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, tmp)
	if err != nil {
		return 0, "", fmt.Errorf("reading back %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, "", fmt.Errorf("installing %s: %w", dst, err)
	}
	ok = true
	SyncDir(dir)
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// SyncDir flushes a directory's entries (renames, removals). Best effort: a
// filesystem that cannot sync directories has nothing better to offer.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// SyncFS flushes the whole filesystem that holds dir. On vfat (the ESP) a
// directory's entries live in the block device's buffers, which fsync of
// the directory does not reach: TestUpdatePowerCut found boot files with
// their names but size 0 after a power cut right after the trial was set,
// while the GRUB environment, written later, had reached the disk. Call it
// before a write that makes the boot configuration depend on the files.
func SyncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the filesystem of %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncing the filesystem of %s: %w", dir, err)
	}
	return nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
