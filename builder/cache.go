package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/images"
)

// lockCache takes the cache's lock (flock on CACHE/lock) for the whole
// build: two builds sharing a cache would make, or prune, the same root
// tree at once. It waits, and says so, when another build holds it.
func (b *Builder) lockCache() (func(), error) {
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("making cache %s: %w", b.CacheDir, err)
	}
	path := filepath.Join(b.CacheDir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking cache %s: %w", b.CacheDir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		b.progress("waiting for another build using the cache %s", b.CacheDir)
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking cache %s: %w", b.CacheDir, err)
	}
	return func() { f.Close() }, nil
}

// PruneOptions say which root trees PruneCache keeps.
type PruneOptions struct {
	// Keep are the definitions whose root trees stay (unless too old).
	Keep []*images.Definition
	// OlderThan, when not zero, also removes a kept tree made longer ago:
	// its packages may miss security updates.
	OlderThan time.Duration
	// All removes every tree and the whole .deb cache.
	All bool
	Now time.Time // for OlderThan; zero for the clock
}

// PruneCache removes, under the cache's lock, the root trees no kept
// definition uses (and those older than OlderThan), what interrupted
// builds left, and the .deb files no remaining tree was made from. It
// returns what it removed, relative to the cache.
func (b *Builder) PruneCache(o PruneOptions) ([]string, error) {
	unlock, err := b.lockCache()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if o.All {
		var removed []string
		for _, d := range []string{"rootfs", "debs"} {
			if _, err := os.Lstat(filepath.Join(b.CacheDir, d)); err != nil {
				continue
			}
			if err := os.RemoveAll(filepath.Join(b.CacheDir, d)); err != nil {
				return removed, fmt.Errorf("pruning cache %s: %w", b.CacheDir, err)
			}
			removed = append(removed, d)
		}
		return removed, nil
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	keep := map[string]bool{}
	for _, def := range o.Keep {
		keep[newRootfsInputs(def, b.Epoch).key()] = true
	}
	dir := filepath.Join(b.CacheDir, "rootfs")
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pruning cache %s: %w", b.CacheDir, err)
	}
	var removed []string
	debsUsed := map[string]bool{}
	locksComplete := true
	for _, e := range ents {
		name := e.Name()
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			continue // removed with its tree
		}
		if t, ok := strings.CutSuffix(name, ".packages.json"); ok {
			if _, err := os.Lstat(filepath.Join(dir, t)); err == nil {
				continue // goes with its tree
			}
			// A lock whose tree is gone is removed below, as a leftover.
		}
		tree := filepath.Join(dir, name)
		stay := e.IsDir() && keep[name]
		if stay && o.OlderThan > 0 {
			if st, err := os.Stat(lockPath(tree)); err != nil || now.Sub(st.ModTime()) > o.OlderThan {
				stay = false
			}
		}
		if stay {
			pkgs, err := loadLock(lockPath(tree))
			if err != nil {
				locksComplete = false // keep every .deb: this tree's are unknown
			}
			for _, p := range pkgs {
				debsUsed[debFileName(p)] = true
			}
			continue
		}
		// Other definitions' trees, *.tmp and *.hooks left by an
		// interrupted build, *.old left by an interrupted refresh.
		for _, p := range []string{tree, lockPath(tree)} {
			if err := os.RemoveAll(p); err != nil {
				return removed, fmt.Errorf("pruning cache %s: %w", b.CacheDir, err)
			}
		}
		removed = append(removed, filepath.Join("rootfs", name))
	}
	if !locksComplete {
		return removed, nil
	}
	debs, _ := os.ReadDir(filepath.Join(b.CacheDir, "debs"))
	for _, e := range debs {
		if debsUsed[e.Name()] || !strings.HasSuffix(e.Name(), ".deb") {
			continue
		}
		if err := os.Remove(filepath.Join(b.CacheDir, "debs", e.Name())); err != nil {
			return removed, fmt.Errorf("pruning cache %s: %w", b.CacheDir, err)
		}
		removed = append(removed, filepath.Join("debs", e.Name()))
	}
	return removed, nil
}

// Refresh is what RefreshCache did: the package changes between the old
// root tree and the new one (DiffPackages, the old tree as the lock).
type Refresh struct {
	Tree    string
	Had     bool     // there was a cached tree before
	Changes []string // empty when the archive had nothing new
}

// RefreshCache makes def's root tree again from the mirror, under the
// cache's lock, so security updates reach the next build without a
// definition change. The old tree is kept until the new one is made: a
// failed refresh (the mirror unreachable) leaves the cache as it was.
func (b *Builder) RefreshCache(ctx context.Context, def *images.Definition) (*Refresh, error) {
	unlock, err := b.lockCache()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return b.refreshTree(ctx, newRootfsInputs(def, b.Epoch))
}

// refreshTree moves the cached tree for in aside, makes a new one and
// then removes the old; the caller holds the cache's lock.
func (b *Builder) refreshTree(ctx context.Context, in rootfsInputs) (*Refresh, error) {
	tree := filepath.Join(b.CacheDir, "rootfs", in.key())
	old := tree + ".old"
	for _, p := range []string{old, lockPath(old)} {
		if err := os.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("refreshing root tree %s: %w", tree, err)
		}
	}
	r := &Refresh{Tree: tree}
	if _, err := os.Lstat(tree); err == nil {
		r.Had = true
		if err := os.Rename(tree, old); err != nil {
			return nil, fmt.Errorf("refreshing root tree %s: %w", tree, err)
		}
		_ = os.Rename(lockPath(tree), lockPath(old))
	}
	_, pkgs, err := b.rootfs(ctx, in)
	if err != nil {
		if r.Had {
			_ = os.RemoveAll(tree)
			_ = os.Rename(lockPath(old), lockPath(tree))
			if rerr := os.Rename(old, tree); rerr != nil {
				return nil, fmt.Errorf("refreshing root tree %s: %w (and putting the old tree back: %v)", tree, err, rerr)
			}
		}
		return nil, fmt.Errorf("refreshing root tree %s (the cached tree is unchanged): %w", tree, err)
	}
	if r.Had {
		if oldPkgs, err := loadLock(lockPath(old)); err == nil {
			r.Changes = diffPackages(oldPkgs, pkgs, "was", "now")
		}
		for _, p := range []string{old, lockPath(old)} {
			if err := os.RemoveAll(p); err != nil {
				return r, fmt.Errorf("removing the previous root tree %s: %w", old, err)
			}
		}
	}
	return r, nil
}
