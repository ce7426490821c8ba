package engine

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// Change kinds, as Docker's container changes API numbers them.
const (
	ChangeModified = 0
	ChangeAdded    = 1
	ChangeDeleted  = 2
)

// Change is a path the container changed in its filesystem.
type Change struct {
	Path string
	Kind int
}

// Changes lists what a container changed against its image (docker
// diff), from its overlay upper directory: an overlayfs whiteout (a 0/0
// character device, Documentation/filesystems/overlayfs.rst) is a
// deletion; any other entry is an addition, or a change when a layer of
// the image has the path.
func (e *Engine) Changes(ref string) ([]Change, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	lowers := make([]string, len(c.Layers))
	for i, l := range c.Layers {
		lowers[i] = e.images.LayerDir(l)
	}
	upper := e.snaps.Upper(c.ID)
	// The runtime creates the mount points of the engine's bind mounts in
	// the upper directory; they are not the container's changes (dockerd
	// leaves them out too).
	mountpoints := map[string]bool{"/etc/hosts": true, "/etc/hostname": true, "/etc/resolv.conf": true}
	for _, d := range c.Destinations() {
		mountpoints[d] = true
	}
	var out []Change
	err = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == upper {
				return filepath.SkipAll // never started: no changes
			}
			return err
		}
		if p == upper {
			return nil
		}
		rel, _ := filepath.Rel(upper, p)
		ch := Change{Path: "/" + rel, Kind: ChangeAdded}
		if d.Type()&fs.ModeCharDevice != 0 {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil && st.Rdev == 0 {
				ch.Kind = ChangeDeleted
				out = append(out, ch)
				return nil
			}
		}
		for _, l := range lowers {
			if _, err := os.Lstat(filepath.Join(l, rel)); err == nil {
				ch.Kind = ChangeModified
				break
			}
		}
		if ch.Kind == ChangeAdded && mountpoints[ch.Path] {
			return nil
		}
		out = append(out, ch)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing changes of %s: %w", c.Name, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
