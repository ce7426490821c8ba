package engine

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNoTerminal means the container was not created with a terminal.
var ErrNoTerminal = errors.New("container has no terminal")

// Resize sets the size of a running container's terminal (docker run -t
// then the client's window changes); its foreground programs get SIGWINCH.
// The terminal is reached through the init process's stdio (its slave
// side): the shim holds the master, and a terminal's size is one for both
// sides, so no shim round trip is needed.
func (e *Engine) Resize(ref string, rows, cols uint16) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if !c.Spec.Tty {
		return fmt.Errorf("resizing %s: %w", c.Name, ErrNoTerminal)
	}
	if c.State != StateRunning || c.Pid == 0 {
		return fmt.Errorf("resizing %s: %w: it is not running", c.Name, ErrConflict)
	}
	var errs []error
	// Stdin first; a shell may have redirected it, so then stdout, stderr.
	for fd := range 3 {
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", c.Pid, fd), os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		f.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("resizing the terminal of %s: %w", c.Name, errors.Join(errs...))
}
