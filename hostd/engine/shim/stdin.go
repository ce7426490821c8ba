package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// StdinSocket is the socket in a container's directory on which the shim
// takes input for the container's stdin (containers created with -i).
// Each connection's bytes go to the stdin pipe, whose write end the shim
// holds: hostd can restart and attach again without the container seeing
// an EOF. The directory is root-only (0700), so is the socket.
const StdinSocket = "stdin.sock"

// stdinPipe is the container's stdin: a pipe fed from StdinSocket.
type stdinPipe struct {
	r, w *os.File
	l    net.Listener
	path string
	// once closes the pipe when the first client's input ends (Docker's
	// StdinOnce), so `echo hi | docker run -i IMAGE cat` ends.
	once bool

	mu     sync.Mutex
	closed bool
}

func openStdin(dir string, once bool) (*stdinPipe, error) {
	path := filepath.Join(dir, StdinSocket)
	_ = os.Remove(path) // a previous run's
	l, err := withShortPath(path, func(p string) (net.Listener, error) { return net.Listen("unix", p) })
	if err != nil {
		return nil, fmt.Errorf("listening for stdin on %s: %w", path, err)
	}
	// The listener's own unlink would use the /proc/self/fd name, by then
	// another descriptor's: closeAll removes path instead.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	r, w, err := os.Pipe()
	if err != nil {
		l.Close()
		_ = os.Remove(path)
		return nil, err
	}
	return &stdinPipe{r: r, w: w, l: l, path: path, once: once}, nil
}

// serve copies every client's input into the pipe until closeAll.
func (s *stdinPipe) serve() {
	for {
		conn, err := s.l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			// Ends at the client's EOF, or with EPIPE once the container
			// has closed its stdin.
			_, _ = io.Copy(s.w, conn)
			if s.once {
				s.closeAll()
			}
		}()
	}
}

// closeAll closes the pipe (the container reads EOF) and the socket.
func (s *stdinPipe) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.l.Close()
	s.w.Close()
	_ = os.Remove(s.path)
}

// DialStdin connects to the stdin of the container whose directory is dir.
// It fails (ENOENT, ECONNREFUSED) when the container has no open stdin.
func DialStdin(dir string) (*net.UnixConn, error) {
	c, err := withShortPath(filepath.Join(dir, StdinSocket), func(p string) (net.Conn, error) { return net.Dial("unix", p) })
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// withShortPath calls fn with a name for path that fits a unix socket
// address (108 bytes): /proc/self/fd/N/NAME through a descriptor of
// path's directory. Container directories (64-hex ids, a test's temporary
// root) are longer than that.
func withShortPath[T any](path string, fn func(string) (T, error)) (T, error) {
	var zero T
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return zero, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer unix.Close(fd)
	v, err := fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, filepath.Base(path)))
	var ne *net.OpError
	if errors.As(err, &ne) {
		// Name the real path in the error, not the descriptor's.
		ne.Addr = &net.UnixAddr{Name: path, Net: "unix"}
	}
	return v, err
}
