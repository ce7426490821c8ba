package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// LockFile serializes writers of the slots and the boot configuration:
// `hostctl upgrade`, `hostctl rollback` and hostd's periodic updater.
const LockFile = "/run/bulkhead/update.lock"

// DownloadLockFile serializes downloaders of update payloads. It is not
// LockFile: a download waits on the network, and bless and rollback must
// not wait on it.
const DownloadLockFile = "/run/bulkhead/update-download.lock"

// ErrLocked means another update or rollback is running.
var ErrLocked = errors.New("another update is running")

// Lock is a held update lock.
type Lock struct{ f *os.File }

// TryLock takes the update lock without waiting. The lock is an flock on an
// open file, so it goes away with the process: a crashed writer never
// leaves a stale lock behind.
func TryLock(root fsroot.Root) (*Lock, error) {
	return tryLockFile(root, LockFile)
}

// tryLockFile takes the flock on file under root without waiting.
func tryLockFile(root fsroot.Root, file string) (*Lock, error) {
	p := root.Join(file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("taking update lock: %w", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("taking update lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s is locked)", ErrLocked, file)
		}
		return nil, fmt.Errorf("taking update lock %s: %w", p, err)
	}
	return &Lock{f: f}, nil
}

// WaitLock takes the update lock, waiting for a running update or
// rollback to finish: blessing the booted slot must not interleave with an
// upgrade's write of the GRUB environment, but must not fail because of it
// either. It polls, so a cancelled ctx ends the wait.
func WaitLock(ctx context.Context, root fsroot.Root) (*Lock, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := TryLock(root)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the update lock %s: %w", root.Join(LockFile), ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitLockFor is WaitLock bounded by d: past it, the error wraps ErrLocked
// and says how long it waited, so a boot-time caller (bless) fails clearly
// instead of hanging on a stuck writer.
func WaitLockFor(ctx context.Context, root fsroot.Root, d time.Duration) (*Lock, error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	l, err := WaitLock(wctx, root)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("waited %s for the update lock %s: %w", d, root.Join(LockFile), ErrLocked)
	}
	return l, err
}

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }
