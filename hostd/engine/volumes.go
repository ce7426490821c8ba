package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// NamedVolume is a named volume: a directory under <root>/volumes/<name>/_data
// that containers mount with name:/path (the layout dockerd's local
// driver uses).
type NamedVolume struct {
	Name       string
	Mountpoint string
	Created    time.Time
	Labels     map[string]string
}

// ErrVolumeInUse refuses removing a volume a container mounts.
var ErrVolumeInUse = fmt.Errorf("%w: volume is in use", ErrConflict)

func (e *Engine) volumeDir(name string) string { return filepath.Join(e.cfg.Root, "volumes", name) }

// VolumeMountpoint is the host directory of a volume's data.
func (e *Engine) VolumeMountpoint(name string) string {
	return filepath.Join(e.volumeDir(name), "_data")
}

// Volumes lists the named volumes, by name.
func (e *Engine) Volumes() ([]NamedVolume, error) {
	ents, err := os.ReadDir(filepath.Join(e.cfg.Root, "volumes"))
	if err != nil {
		return nil, fmt.Errorf("listing volumes: %w", err)
	}
	var out []NamedVolume
	for _, ent := range ents {
		if v, err := e.Volume(ent.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Volume returns a named volume.
func (e *Engine) Volume(name string) (NamedVolume, error) {
	if !volumeName.MatchString(name) {
		return NamedVolume{}, fmt.Errorf("%w: volume name %q", ErrInvalid, name)
	}
	fi, err := os.Stat(e.volumeDir(name))
	if err != nil {
		return NamedVolume{}, fmt.Errorf("%w: no such volume %s", ErrNotFound, name)
	}
	v := NamedVolume{Name: name, Mountpoint: e.VolumeMountpoint(name), Created: fi.ModTime().UTC(), Labels: map[string]string{}}
	if b, err := os.ReadFile(filepath.Join(e.volumeDir(name), "labels")); err == nil {
		_ = json.Unmarshal(b, &v.Labels)
	}
	return v, nil
}

// CreateVolume makes a named volume; an existing one is returned as is
// (docker volume create is idempotent).
func (e *Engine) CreateVolume(name string, labels map[string]string) (NamedVolume, error) {
	if !volumeName.MatchString(name) {
		return NamedVolume{}, fmt.Errorf("%w: volume name %q: letters, digits, _ . - only, not starting with a symbol", ErrInvalid, name)
	}
	if v, err := e.Volume(name); err == nil {
		return v, nil
	}
	if err := os.MkdirAll(filepath.Join(e.volumeDir(name), "_data"), 0o755); err != nil {
		return NamedVolume{}, fmt.Errorf("creating volume %s: %w", name, err)
	}
	if len(labels) > 0 {
		b, _ := json.Marshal(labels)
		if err := fsroot.WriteFile(filepath.Join(e.volumeDir(name), "labels"), b, 0o600); err != nil {
			return NamedVolume{}, fmt.Errorf("creating volume %s: %w", name, err)
		}
	}
	return e.Volume(name)
}

// VolumeUsers are the containers that mount the named volume.
func (e *Engine) VolumeUsers(name string) []string {
	var out []string
	for _, c := range e.List() {
		for _, m := range c.MountPoints() {
			if m.Type == MountVolume && m.Name == name {
				out = append(out, c.Name)
				break
			}
		}
	}
	return out
}

// AnonymousLabel marks a volume made without a name (docker run -v /path,
// an image's VOLUME), as dockerd marks it: volume prune removes such
// volumes when unused.
const AnonymousLabel = "com.docker.volume.anonymous"

// createAnonymousVolume makes a volume with a random 64-hex name.
func (e *Engine) createAnonymousVolume() (NamedVolume, error) {
	return e.CreateVolume(newID(), map[string]string{AnonymousLabel: ""})
}

// anonymousVolumes makes a new anonymous volume for each volume mount
// of s with no source, each of s's AnonymousVolumes and each of the
// image's VOLUME paths (imageVols) that nothing else mounts, and returns
// them as mounts. On an error the volumes made so far are returned too,
// for the caller to remove.
func (e *Engine) anonymousVolumes(s ContainerSpec, imageVols map[string]struct{}) ([]MountSpec, error) {
	var out []MountSpec
	add := func(m MountSpec) error {
		v, err := e.createAnonymousVolume()
		if err != nil {
			return err
		}
		m.Type, m.Source, m.Target = MountVolume, v.Name, path.Clean(m.Target)
		out = append(out, m)
		return nil
	}
	covered := map[string]bool{}
	for _, m := range s.Mounts {
		if m.Type == MountVolume && m.Source == "" {
			if err := add(m); err != nil {
				return out, err
			}
		}
	}
	for _, d := range s.Destinations() {
		covered[d] = true
	}
	paths := append([]string(nil), s.AnonymousVolumes...)
	for p := range imageVols {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		p = path.Clean("/" + p)
		if covered[p] || p == "/" {
			continue
		}
		covered[p] = true
		if err := add(MountSpec{Target: p}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// removeAnonymousVolumes removes c's anonymous volumes that no other
// container mounts (docker rm -v, run --rm); named ones stay.
func (e *Engine) removeAnonymousVolumes(c Container) {
	for _, m := range c.AnonymousVolumes {
		if err := e.RemoveVolume(m.Source); err != nil && !errors.Is(err, ErrNotFound) {
			e.log.Warn("removing an anonymous volume", "container", c.Name, "volume", m.Source, "err", err)
		}
	}
}

// RemoveVolume deletes a named volume and its data. One a container
// mounts, running or not, is refused (dockerd refuses it even forced).
func (e *Engine) RemoveVolume(name string) error {
	if _, err := e.Volume(name); err != nil {
		return err
	}
	if users := e.VolumeUsers(name); len(users) > 0 {
		return fmt.Errorf("removing volume %s: %w by %v", name, ErrVolumeInUse, users)
	}
	if err := os.RemoveAll(e.volumeDir(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing volume %s: %w", name, err)
	}
	e.log.Info("removed volume", "volume", name)
	return nil
}
