package engine

import (
	"errors"
	"fmt"
)

// ErrUnsupported marks an operation the runtime in use cannot do.
var ErrUnsupported = errors.New("not supported by this runtime")

// Pids lists the host pids of a running container's processes (docker
// top). The runtime must be able to list them (libct's can).
func (e *Engine) Pids(ref string) ([]int, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if c.State != StateRunning {
		return nil, fmt.Errorf("%w: container %s is not running", ErrConflict, c.Name)
	}
	lister, ok := e.rt.(interface {
		Pids(id string) ([]int, error)
	})
	if !ok {
		return nil, fmt.Errorf("listing processes of %s: %w", c.Name, ErrUnsupported)
	}
	return lister.Pids(c.ID)
}

// ProcRoot is where the engine reads /proc of the host (top, stats).
func (e *Engine) ProcRoot() string { return e.cfg.HostRoot.Join("proc") }
