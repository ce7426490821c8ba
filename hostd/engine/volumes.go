package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
	v := NamedVolume{Name: name, Mountpoint: filepath.Join(e.volumeDir(name), "_data"), Created: fi.ModTime().UTC(), Labels: map[string]string{}}
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
		for _, s := range c.Spec.Volumes {
			if v, err := ParseVolume(s); err == nil && v.Named && v.Source == name {
				out = append(out, c.Name)
			}
		}
	}
	return out
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
