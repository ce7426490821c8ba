package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Stream ids in the header's first byte (Docker's stdcopy).
const (
	Stdin  byte = 0
	Stdout byte = 1
	Stderr byte = 2
)

// Mux writes frames to one underlying writer; safe for concurrent streams.
type Mux struct {
	mu sync.Mutex
	w  io.Writer
	// Flush, when set, is called after each frame (an http.Flusher's).
	Flush func()
}

// NewMux returns a Mux writing to w.
func NewMux(w io.Writer) *Mux { return &Mux{w: w} }

// Writer returns an io.Writer that frames what it gets as stream id.
func (m *Mux) Writer(id byte) io.Writer { return frameWriter{m: m, id: id} }

type frameWriter struct {
	m  *Mux
	id byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var hdr [8]byte
	hdr[0] = f.id
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if _, err := f.m.w.Write(hdr[:]); err != nil {
		return 0, err
	}
	n, err := f.m.w.Write(p)
	if f.m.Flush != nil {
		f.m.Flush()
	}
	return n, err
}

// maxFrame bounds a frame's payload when reading (outside input).
const maxFrame = 64 << 20

// Demux reads frames from r into stdout and stderr until EOF.
func Demux(r io.Reader, stdout, stderr io.Writer) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading stream header: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if n > maxFrame {
			return fmt.Errorf("stream frame of %d bytes is too large", n)
		}
		var w io.Writer
		switch hdr[0] {
		case Stdout, Stdin:
			w = stdout
		case Stderr:
			w = stderr
		default:
			return fmt.Errorf("unknown stream id %d", hdr[0])
		}
		if _, err := io.CopyN(w, r, int64(n)); err != nil {
			return fmt.Errorf("reading stream frame: %w", err)
		}
	}
}
