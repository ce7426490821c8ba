package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// freezerFiles are a container's freeze control in cgroup v2
// (cgroup.freeze, 1 or 0) and v1 (freezer.state, FROZEN or THAWED).
func (e *Engine) freezerFiles(id string) (v2, v1 string) {
	cg, dir := e.cfg.HostRoot.Join("sys/fs/cgroup"), e.cgroupDir(id)
	return filepath.Join(cg, dir, "cgroup.freeze"), filepath.Join(cg, "freezer", dir, "freezer.state")
}

// Paused reports whether a running container's processes are frozen.
func (e *Engine) Paused(c Container) bool {
	if c.State != StateRunning {
		return false
	}
	v2, v1 := e.freezerFiles(c.ID)
	if b, err := os.ReadFile(v2); err == nil {
		return strings.TrimSpace(string(b)) == "1"
	}
	b, err := os.ReadFile(v1)
	return err == nil && strings.TrimSpace(string(b)) != "THAWED"
}

// Pause freezes a running container's processes (docker pause).
func (e *Engine) Pause(ref string) error { return e.setFrozen(ref, true) }

// Unpause thaws them (docker unpause).
func (e *Engine) Unpause(ref string) error { return e.setFrozen(ref, false) }

func (e *Engine) setFrozen(ref string, frozen bool) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "pausing", false: "unpausing"}[frozen]
	if c.State != StateRunning {
		return fmt.Errorf("%s %s: %w: container is not running", verb, c.Name, ErrConflict)
	}
	if e.Paused(c) == frozen {
		return fmt.Errorf("%s %s: %w: container is %s paused", verb, c.Name, ErrConflict, map[bool]string{true: "already", false: "not"}[frozen])
	}
	v2, v1 := e.freezerFiles(c.ID)
	file, value, want := v2, map[bool]string{true: "1", false: "0"}[frozen], ""
	if _, err := os.Stat(v2); errors.Is(err, os.ErrNotExist) {
		file, value = v1, map[bool]string{true: "FROZEN", false: "THAWED"}[frozen]
		want = value
	}
	if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
		return fmt.Errorf("%s %s: %w", verb, c.Name, err)
	}
	// v1 freezing goes through FREEZING; wait until the state settles.
	for i := 0; want != "" && i < 100; i++ {
		if b, err := os.ReadFile(file); err == nil && strings.TrimSpace(string(b)) == want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.log.Info(verb+" container", "container", c.Name)
	return nil
}
