package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

// ErrNoStdin means the container has no open stdin: it was created without
// OpenStdin, or its StdinOnce input has ended.
var ErrNoStdin = errors.New("container has no open stdin")

// AttachStdin connects to the stdin of the container's main process, which
// its shim holds. A container that is not running yet (docker run attaches
// before it starts) is waited for until ctx ends. Closing the connection's
// write side ends this client's input: with StdinOnce the container then
// reads EOF; otherwise its stdin stays open for the next client.
func (e *Engine) AttachStdin(ctx context.Context, ref string) (*net.UnixConn, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if !c.Spec.OpenStdin {
		return nil, fmt.Errorf("attaching stdin of %s: %w", c.Name, ErrNoStdin)
	}
	for {
		cur, err := e.Get(c.ID)
		if err != nil {
			return nil, err
		}
		if cur.State == StateRunning {
			// The shim listens before it starts the container, and the
			// engine records a run only once the shim reported it: a
			// refused dial means this run's stdin is closed.
			conn, err := shim.DialStdin(e.dir(c.ID))
			if err != nil {
				return nil, fmt.Errorf("attaching stdin of %s: %w: %v", c.Name, ErrNoStdin, err)
			}
			return conn, nil
		}
		// Polled, not signalled: a start is rare and 20 ms is well under
		// what a person at a terminal notices.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ForwardStdin copies in to the container's stdin (waiting for it to start,
// as AttachStdin), then half-closes: with StdinOnce the container reads EOF.
// It returns when in ends or ctx does (the attach is over); an ended ctx is
// not an error.
func (e *Engine) ForwardStdin(ctx context.Context, ref string, in io.Reader) error {
	sc, err := e.AttachStdin(ctx, ref)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	defer sc.Close()
	_, err = io.Copy(sc, in)
	switch {
	case ctx.Err() != nil, errors.Is(err, syscall.EPIPE):
		// The attach is over, or the container closed its stdin.
		return nil
	case err != nil:
		return fmt.Errorf("forwarding stdin to %s: %w", ref, err)
	}
	return sc.CloseWrite()
}
