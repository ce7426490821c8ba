package engine

import (
	"errors"
	"fmt"
	"strings"
)

// Rename gives a container a new name (docker rename). A container the
// workload loader owns keeps the name its file declares.
func (e *Engine) Rename(ref, name string) error {
	name = strings.TrimPrefix(name, "/")
	if !containerName.MatchString(name) {
		return fmt.Errorf("renaming %s: %w: invalid name %q: letters, digits, _ . - only, not starting with a symbol", ref, ErrInvalid, name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.find(ref)
	if err != nil {
		return err
	}
	if c.Managed {
		return fmt.Errorf("renaming %s: %w: it is declared in the workload directory under that name", c.Name, ErrConflict)
	}
	for _, o := range e.ctrs {
		if o.Name == name && o.ID != c.ID {
			return fmt.Errorf("renaming %s: %w: the name %q is used by container %s", c.Name, ErrConflict, name, o.ID[:12])
		}
	}
	old := c.Name
	c.Name, c.Spec.Name = name, name
	if err := e.save(c); err != nil {
		c.Name, c.Spec.Name = old, old
		return err
	}
	e.log.Info("renamed container", "container", name, "from", old)
	return nil
}

// ErrInvalid marks a request with a bad value (a 400 for the APIs).
var ErrInvalid = errors.New("invalid argument")
