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

// ErrLocked means another update or rollback is running.
var ErrLocked = errors.New("another update is running (" + LockFile + " is locked)")

// Lock is a held update lock.
type Lock struct{ f *os.File }

// TryLock takes the update lock without waiting. The lock is an flock on an
// open file, so it goes away with the process: a crashed writer never
// leaves a stale lock behind.
func TryLock(root fsroot.Root) (*Lock, error) {
	p := root.Join(LockFile)
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
			return nil, ErrLocked
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

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }
