package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Cmd is one invocation of an external program.
type Cmd struct {
	Name  string    // program name or path
	Args  []string  // arguments, without the program name
	Dir   string    // working directory; "" for the caller's
	Env   []string  // extra KEY=VALUE pairs appended to the inherited environment
	Stdin io.Reader // nil for no input
	// Stdout, when set, receives the program's standard output as it is
	// produced (for long streams); Run then returns nil output.
	Stdout io.Writer
	// Stderr, when set, also receives standard error as it is produced (for
	// progress); it is still folded into the error on failure.
	Stderr io.Writer
}

// String renders the command line the way a shell user would type it.
func (c Cmd) String() string {
	parts := append([]string{c.Name}, c.Args...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\n'\"$\\;&|<>*?") {
			parts[i] = "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
		}
	}
	return strings.Join(parts, " ")
}

// Runner runs external programs.
//
// Contract: Run starts c, waits for it to finish or for ctx to end, and
// returns its standard output (unless c.Stdout is set). A non-zero exit is an
// error that names the command line and carries the trimmed standard error,
// and wraps an *exec.ExitError so callers can read the exit code with
// ExitCode. Implementations are safe for concurrent use.
type Runner interface {
	Run(ctx context.Context, c Cmd) ([]byte, error)
}

// Exec is the real Runner. It logs each command's start, finish and failure.
type Exec struct {
	Log *slog.Logger // nil for slog.Default()
}

// maxStderr bounds how much standard error is folded into an error.
const maxStderr = 4096

// Run implements Runner.
func (e Exec) Run(ctx context.Context, c Cmd) ([]byte, error) {
	log := e.Log
	if log == nil {
		log = slog.Default()
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.Stdin = c.Stdin
	var out, errb bytes.Buffer
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&errb, c.Stderr)
	}
	start := time.Now()
	log.Debug("command start", "cmd", c.String())
	err := cmd.Run()
	dur := time.Since(start).Round(time.Millisecond)
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > maxStderr {
			msg = "..." + msg[len(msg)-maxStderr:]
		}
		log.Debug("command failed", "cmd", c.String(), "dur", dur, "err", err)
		if msg != "" {
			return out.Bytes(), fmt.Errorf("running %s: %w: %s", c.String(), err, msg)
		}
		return out.Bytes(), fmt.Errorf("running %s: %w", c.String(), err)
	}
	log.Debug("command done", "cmd", c.String(), "dur", dur)
	return out.Bytes(), nil
}

// ExitCode returns the exit status carried by an error from Run, or -1 when
// the error is not an exit status (the program did not start, was killed).
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Recorder is a Runner for tests: it records every command and answers from
// Respond (nil Respond answers with empty output and no error).
type Recorder struct {
	Respond func(c Cmd) ([]byte, error)

	mu    sync.Mutex
	calls []Cmd
}

// Run implements Runner.
func (r *Recorder) Run(_ context.Context, c Cmd) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	if r.Respond == nil {
		return nil, nil
	}
	out, err := r.Respond(c)
	if c.Stdout != nil && len(out) > 0 {
		_, _ = c.Stdout.Write(out)
		return nil, err
	}
	return out, err
}

// Calls returns the commands run so far.
func (r *Recorder) Calls() []Cmd {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Cmd(nil), r.calls...)
}

// Transcript renders the recorded commands one per line, for golden files.
func (r *Recorder) Transcript() string {
	var b strings.Builder
	for _, c := range r.Calls() {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}
