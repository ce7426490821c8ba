package libct

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

// ttyCopier gives an exec'd process a terminal: libcontainer makes the pty
// inside the container and sends its master over a socket pair; the master
// is then copied to and from the caller's streams.
type ttyCopier struct {
	parent, child *os.File
	stdio         Stdio
	master        *os.File
	out           sync.WaitGroup
}

func newTTY(p *libcontainer.Process, stdio Stdio) (*ttyCopier, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("making console socket: %w", err)
	}
	t := &ttyCopier{parent: os.NewFile(uintptr(fds[0]), "console-parent"), child: os.NewFile(uintptr(fds[1]), "console-child"), stdio: stdio}
	p.ConsoleSocket = t.child
	p.Stdin, p.Stdout, p.Stderr = nil, nil, nil
	return t, nil
}

// start receives the master and starts copying (after the process runs).
func (t *ttyCopier) start() error {
	t.child.Close()
	m, err := shim.RecvFD(t.parent)
	if err != nil {
		return fmt.Errorf("receiving the terminal: %w", err)
	}
	t.master = m
	_ = unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	if t.stdio.Stdin != nil {
		go func() { _, _ = io.Copy(m, t.stdio.Stdin) }()
	}
	out := t.stdio.Stdout
	if out == nil {
		out = io.Discard
	}
	t.out.Add(1)
	go func() {
		defer t.out.Done()
		// EIO ends it: the last process holding the slave has exited.
		_, _ = io.Copy(out, m)
	}()
	return nil
}

// wait waits for the output copy to drain.
func (t *ttyCopier) wait() { t.out.Wait() }

func (t *ttyCopier) Close() {
	t.parent.Close()
	t.child.Close()
	if t.master != nil {
		t.master.Close()
	}
}
