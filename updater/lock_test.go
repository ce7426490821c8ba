package updater

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// WaitLock waits for the holder instead of failing, and gives up with the
// context.
func TestWaitLock(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	held, err := TryLock(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := WaitLock(ctx, root); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with the lock held: got %v, want context.DeadlineExceeded", err)
	}

	got := make(chan error, 1)
	go func() {
		l, err := WaitLock(context.Background(), root)
		if err == nil {
			err = l.Unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("WaitLock returned %v while the lock was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	held.Unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
