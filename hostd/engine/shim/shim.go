package shim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Files in a container's directory.
const (
	SpecFile  = "spec.json"  // the OCI runtime spec, written by the engine
	StateFile = "state.json" // written by the shim once the container runs
	ExitFile  = "exit.json"  // written by the shim when the container exits
)

// ReadyFD is the descriptor (ExtraFiles[0]) on which the shim reports to
// its starter: "ok\n" once the container runs, or the error.
const ReadyFD = 3

// State is StateFile.
type State struct {
	Pid       int       `json:"pid"`     // container init, host pid
	ShimPid   int       `json:"shimPid"` // this shim
	StartedAt time.Time `json:"startedAt"`
}

// Exit is ExitFile.
type Exit struct {
	Code       int       `json:"code"`
	FinishedAt time.Time `json:"finishedAt"`
	Error      string    `json:"error,omitempty"`
}

// Config is what one shim needs.
type Config struct {
	ID        string
	Dir       string // container directory: spec, state, exit, logs
	StateRoot string // libcontainer state root
	LogMax    int64
	LogFiles  int
	// Stdin gives the container a stdin fed through StdinSocket;
	// StdinOnce closes it when the first client's input ends.
	Stdin, StdinOnce bool
}

// Args renders cfg as the shim's command line arguments (after "shim").
func (c Config) Args() []string {
	args := []string{"--id", c.ID, "--dir", c.Dir, "--state", c.StateRoot,
		"--log-max", fmt.Sprint(c.LogMax), "--log-files", fmt.Sprint(c.LogFiles)}
	if c.Stdin {
		args = append(args, "--stdin")
	}
	if c.StdinOnce {
		args = append(args, "--stdin-once")
	}
	return args
}

// Main is `hostd shim ARGS`: it parses args and runs the shim. It reports
// to ReadyFD when that descriptor is open.
func Main(ctx context.Context, args []string, newRuntime runtime.Factory) error {
	var c Config
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	fs.StringVar(&c.ID, "id", "", "container id")
	fs.StringVar(&c.Dir, "dir", "", "container directory")
	fs.StringVar(&c.StateRoot, "state", "", "libcontainer state root")
	fs.Int64Var(&c.LogMax, "log-max", 10<<20, "log file size before rotation")
	fs.IntVar(&c.LogFiles, "log-files", 3, "log files kept")
	fs.BoolVar(&c.Stdin, "stdin", false, "give the container a stdin on "+StdinSocket)
	fs.BoolVar(&c.StdinOnce, "stdin-once", false, "close that stdin when the first client's input ends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.ID == "" || c.Dir == "" || c.StateRoot == "" {
		return errors.New("shim: --id, --dir and --state are required")
	}
	ready := os.NewFile(ReadyFD, "ready")
	err := Run(ctx, c, newRuntime(c.StateRoot), func(err error) {
		if ready == nil {
			return
		}
		if err != nil {
			fmt.Fprintln(ready, err)
		} else {
			fmt.Fprintln(ready, "ok")
		}
		ready.Close()
		ready = nil
	})
	return err
}

// Run starts the container, calls started (with nil once it runs, or the
// error that kept it from starting), waits for it and records its exit.
// Signals to the shim itself are ignored: the engine signals the container.
func Run(ctx context.Context, c Config, rt runtime.Runtime, started func(error)) error {
	goruntime.GOMAXPROCS(1)
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	_ = os.Remove(filepath.Join(c.Dir, ExitFile))
	b, err := os.ReadFile(filepath.Join(c.Dir, SpecFile))
	if err != nil {
		started(err)
		return fmt.Errorf("shim %s: %w", c.ID, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		started(err)
		return fmt.Errorf("shim %s: parsing spec: %w", c.ID, err)
	}
	lw := &logs.Writer{Dir: c.Dir, MaxBytes: c.LogMax, Files: c.LogFiles}
	defer lw.Close()
	stdout, stderr := lw.Stream("stdout"), lw.Stream("stderr")
	stdio := runtime.Stdio{Stdout: stdout, Stderr: stderr}
	var stdin *stdinPipe
	if c.Stdin {
		// Listening before the start: once hostd records the container as
		// running, clients can attach.
		if stdin, err = openStdin(c.Dir, c.StdinOnce); err != nil {
			started(err)
			return err
		}
		// The read end is the runtime's until the container is gone: with
		// a terminal, the runtime copies it to the terminal's master.
		defer stdin.r.Close()
		defer stdin.closeAll()
		stdio.Stdin = stdin.r
	}
	// A container left by a shim that was killed has the same id: clear it.
	_ = rt.Destroy(c.ID)
	r, err := rt.Start(ctx, c.ID, &spec, stdio)
	if err != nil {
		started(err)
		_ = writeJSON(filepath.Join(c.Dir, ExitFile), Exit{Code: -1, FinishedAt: time.Now().UTC(), Error: err.Error()})
		return err
	}
	st := State{Pid: r.Pid(), ShimPid: os.Getpid(), StartedAt: time.Now().UTC()}
	if err := writeJSON(filepath.Join(c.Dir, StateFile), st); err != nil {
		started(err)
		_ = rt.Signal(c.ID, syscall.SIGKILL)
		_, _ = r.Wait()
		return err
	}
	started(nil)
	if stdin != nil {
		go stdin.serve()
	}
	// The shim idles for the container's whole life: give back what
	// starting it took (one per container, so its footprint counts).
	debug.FreeOSMemory()
	code, werr := r.Wait()
	stdout.Flush()
	stderr.Flush()
	ex := Exit{Code: code, FinishedAt: time.Now().UTC()}
	if werr != nil {
		ex.Error = werr.Error()
	}
	return writeJSON(filepath.Join(c.Dir, ExitFile), ex)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fsroot.WriteFile(path, b, 0o600)
}

// ReadState reads a container directory's state file.
func ReadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// ReadExit reads a container directory's exit file.
func ReadExit(dir string) (Exit, error) {
	var e Exit
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(b, &e)
}
