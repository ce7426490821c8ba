package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileName is the current log file in a container's directory.
const FileName = "container.log"

// Entry is one log line, as Docker's json-file driver writes it.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"` // stdout or stderr
	Time   time.Time `json:"time"`
}

// Writer appends entries to Dir/container.log, rotating it when it would grow
// past MaxBytes and keeping Files-1 older files. Safe for concurrent use by
// the stdout and stderr streams.
type Writer struct {
	Dir      string
	MaxBytes int64 // default 10 MiB
	Files    int   // default 3 (current + 2 rotated)

	mu   sync.Mutex
	f    *os.File
	size int64
}

func (w *Writer) path(n int) string {
	if n == 0 {
		return filepath.Join(w.Dir, FileName)
	}
	return filepath.Join(w.Dir, fmt.Sprintf("%s.%d", FileName, n))
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path(0), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening log %s: %w", w.path(0), err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write records one entry.
func (w *Writer) Write(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.MaxBytes <= 0 {
		w.MaxBytes = 10 << 20
	}
	if w.Files <= 0 {
		w.Files = 3
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	if w.size > 0 && w.size+int64(len(b)) > w.MaxBytes {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("writing log %s: %w", w.path(0), err)
	}
	return nil
}

func (w *Writer) rotate() error {
	w.f.Close()
	w.f = nil
	for i := w.Files - 1; i >= 1; i-- {
		if err := os.Rename(w.path(i-1), w.path(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotating log %s: %w", w.path(i-1), err)
		}
	}
	return w.open()
}

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Stream returns an io.Writer for one stream that cuts what is written into
// lines (a line longer than 16 KiB is cut there, as Docker does). Flush
// writes a last partial line.
func (w *Writer) Stream(name string) *LineWriter {
	return &LineWriter{w: w, stream: name}
}

// LineWriter is one stream of a Writer.
type LineWriter struct {
	w      *Writer
	stream string
	mu     sync.Mutex
	buf    []byte
}

const maxLine = 16 << 10

// Write implements io.Writer.
func (l *LineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 && len(l.buf) < maxLine {
			return len(p), nil
		}
		end := i + 1
		if i < 0 {
			end = maxLine
		}
		if err := l.w.Write(Entry{Log: string(l.buf[:end]), Stream: l.stream, Time: time.Now().UTC()}); err != nil {
			return 0, err
		}
		l.buf = l.buf[end:]
	}
}

// Flush writes what is left without a newline.
func (l *LineWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) == 0 {
		return nil
	}
	err := l.w.Write(Entry{Log: string(l.buf), Stream: l.stream, Time: time.Now().UTC()})
	l.buf = nil
	return err
}

// ReadOptions select what Read returns.
type ReadOptions struct {
	Follow bool
	Tail   int // last N entries only; 0 for all
	Since  time.Time
	// Done reports that no more lines will come (the container exited);
	// following stops once it is true and the file is read to its end.
	Done func() bool
	// Wake, when set, ends a wait for new lines early: closed when Done
	// turns true, it lets a follower finish at once instead of at its
	// next look.
	Wake <-chan struct{}
}

// Read calls fn for each entry of dir's logs, oldest first, and with Follow
// keeps waiting for new ones until ctx ends or opts.Done says so.
func Read(ctx context.Context, dir string, opts ReadOptions, fn func(Entry) error) error {
	var files []string
	for i := 9; i >= 1; i-- {
		p := filepath.Join(dir, fmt.Sprintf("%s.%d", FileName, i))
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	var tail []Entry
	emit := func(e Entry) error {
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return nil
		}
		if opts.Tail > 0 {
			tail = append(tail, e)
			if len(tail) > opts.Tail {
				tail = tail[1:]
			}
			return nil
		}
		return fn(e)
	}
	for _, p := range files {
		if err := readFile(p, emit); err != nil {
			return err
		}
	}
	cur := filepath.Join(dir, FileName)
	f, err := os.Open(cur)
	if errors.Is(err, os.ErrNotExist) && !opts.Follow {
		return nil
	}
	for err != nil {
		if !opts.Follow {
			return nil
		}
		// Done first, then one more look: the file may have come meanwhile.
		done := opts.Done != nil && opts.Done()
		if f, err = os.Open(cur); err == nil {
			break
		}
		if done {
			return nil
		}
		if serr := sleep(ctx, opts.Wake); serr != nil {
			return nil
		}
	}
	defer func() { f.Close() }()
	br := bufio.NewReader(f)
	var partial []byte
	if err := readLines(br, emit, &partial); err != nil {
		return err
	}
	for _, e := range tail {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	opts.Tail = 0
	for {
		done := opts.Done != nil && opts.Done()
		if err := readLines(br, emit, &partial); err != nil {
			return err
		}
		// Rotated: finish the old file (done above), continue with the new.
		if st, err := os.Stat(cur); err == nil {
			if fst, ferr := f.Stat(); ferr == nil && !os.SameFile(st, fst) {
				f.Close()
				if f, err = os.Open(cur); err != nil {
					return fmt.Errorf("following log %s: %w", cur, err)
				}
				br = bufio.NewReader(f)
				partial = partial[:0]
				continue
			}
		}
		if done {
			return nil
		}
		if err := sleep(ctx, opts.Wake); err != nil {
			return nil
		}
	}
}

// sleep waits for the next look at a followed log: 100 ms, less when wake
// is closed meanwhile.
func sleep(ctx context.Context, wake <-chan struct{}) error {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-wake:
	}
	return nil
}

// readLines reads whole lines. A partial last line (the writer may be in
// the middle of it) is kept in *partial for the next call.
func readLines(br *bufio.Reader, fn func(Entry) error, partial *[]byte) error {
	for {
		b, err := br.ReadBytes('\n')
		*partial = append(*partial, b...)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading log: %w", err)
		}
		var e Entry
		if json.Unmarshal(*partial, &e) == nil {
			if err := fn(e); err != nil {
				return err
			}
		}
		*partial = (*partial)[:0]
	}
}

func readFile(p string, fn func(Entry) error) error {
	f, err := os.Open(p)
	if err != nil {
		return nil // rotated away meanwhile
	}
	defer f.Close()
	var partial []byte
	return readLines(bufio.NewReader(f), fn, &partial)
}
