package shim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Binary is the shim's program (cmd/hostd-shim), installed beside hostd.
const Binary = "hostd-shim"

// Files in a container's directory.
const (
	SpecFile  = "spec.json"  // the OCI runtime spec, written by the engine
	StateFile = "state.json" // written by the shim once the container runs
	ExitFile  = "exit.json"  // written by the shim when the container exits
)

// ReadyFD is the descriptor (ExtraFiles[0]) on which the shim reports to
// its starter: "ok\n" once the container runs, or the error.
const ReadyFD = 3

// Starter creates and starts c's container from its spec (c.Dir/SpecFile)
// on files (the container's side of its stdio: stdin, stdout and stderr,
// or with a terminal the socket on which the runtime sends the terminal's
// master) and returns the pid of its init, which must be a child of the
// calling process (the shim waits for it). cmd/hostd-shim's is
// launch.Starter: the runtime runs in the shim's own process, so a start
// costs no second program.
type Starter func(ctx context.Context, c Config, files runtime.Files) (pid int, err error)

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
	// Tty is the spec's process.terminal: the container's output is a
	// terminal, whose master the runtime sends to the shim.
	Tty bool
	// Stdin gives the container a stdin fed through StdinSocket;
	// StdinOnce closes it when the first client's input ends.
	Stdin, StdinOnce bool
}

// Args renders cfg as the shim's command line arguments (after the shim
// command), which ParseArgs reads back.
func (c Config) Args() []string {
	args := []string{"--id", c.ID, "--dir", c.Dir, "--state", c.StateRoot,
		"--log-max", fmt.Sprint(c.LogMax), "--log-files", fmt.Sprint(c.LogFiles)}
	for _, f := range []struct {
		set  bool
		name string
	}{{c.Tty, "--tty"}, {c.Stdin, "--stdin"}, {c.StdinOnce, "--stdin-once"}} {
		if f.set {
			args = append(args, f.name)
		}
	}
	return args
}

// ParseArgs reads a shim's arguments (Config.Args).
func ParseArgs(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.ID, "id", "", "container id")
	fs.StringVar(&c.Dir, "dir", "", "container directory")
	fs.StringVar(&c.StateRoot, "state", "", "libcontainer state root")
	fs.Int64Var(&c.LogMax, "log-max", 10<<20, "log file size before rotation")
	fs.IntVar(&c.LogFiles, "log-files", 3, "log files kept")
	fs.BoolVar(&c.Tty, "tty", false, "the container has a terminal")
	fs.BoolVar(&c.Stdin, "stdin", false, "give the container a stdin on "+StdinSocket)
	fs.BoolVar(&c.StdinOnce, "stdin-once", false, "close that stdin when the first client's input ends")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("shim arguments: %w", err)
	}
	if c.ID == "" || c.Dir == "" || c.StateRoot == "" {
		return c, errors.New("shim arguments: --id, --dir and --state are required")
	}
	return c, nil
}

// Main is the shim program (hostd-shim ARGS): it parses args and runs the
// shim, which starts the container with start. It reports to ReadyFD when
// that descriptor is open.
func Main(ctx context.Context, args []string, start Starter) error {
	c, err := ParseArgs(args)
	if err != nil {
		return err
	}
	// hostd's end of the report is the shim's alone: not the container's.
	unix.CloseOnExec(ReadyFD)
	ready := os.NewFile(ReadyFD, "ready")
	return Run(ctx, c, start, func(err error) {
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
}

// Run has start start the container, calls started (with nil once it
// runs, or the error that kept it from starting), copies its output to
// the logs, waits for it and records its exit.
//
// The container's init is the shim's child, and the shim its subreaper
// too (a process the init leaves behind is the shim's to reap). The shim
// starts it through the runtime in its own process (one program start
// per container start, where a separate launcher took two), then gives
// back the heap that took. Every container has its own pid namespace, so
// when its init exits the kernel kills the rest and the output pipes end.
// Signals to the shim itself are dropped: the engine signals the
// container.
func Run(ctx context.Context, c Config, start Starter, started func(error)) error {
	goruntime.GOMAXPROCS(1)
	// Caught and dropped, not ignored: an ignored signal stays ignored
	// across exec, and the container's init would inherit it (a shell
	// cannot even trap a signal ignored at its start, so `docker stop`
	// would never reach a TERM trap). A caught one is reset to its default.
	// So are the signals the shim was started with ignored (systemd
	// ignores SIGPIPE in services): the container starts with none.
	resetIgnoredSignals()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	_ = os.Remove(filepath.Join(c.Dir, ExitFile))
	fail := func(err error) error {
		err = fmt.Errorf("shim %s: %w", c.ID, err)
		started(err)
		_ = writeJSON(filepath.Join(c.Dir, ExitFile), Exit{Code: -1, FinishedAt: time.Now().UTC(), Error: err.Error()})
		return err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("becoming the subreaper: %w", err))
	}
	lw := &logs.Writer{Dir: c.Dir, MaxBytes: c.LogMax, Files: c.LogFiles}
	defer lw.Close()
	var stdin *stdinPipe
	if c.Stdin {
		// Listening before the start: once hostd records the container as
		// running, clients can attach.
		var err error
		if stdin, err = openStdin(c.Dir, c.StdinOnce); err != nil {
			return fail(err)
		}
		defer stdin.closeAll()
	}
	cio, err := newContainerIO(c.Tty, stdin)
	if err != nil {
		return fail(err)
	}
	defer cio.close()
	pid, err := start(ctx, c, cio.stdio())
	if err != nil {
		return fail(err)
	}
	// What the container reads and writes is its own now: the shim keeps
	// only its ends.
	cio.closeChildEnds()
	if err := cio.attach(lw); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		reap(pid)
		return fail(err)
	}
	st := State{Pid: pid, ShimPid: os.Getpid(), StartedAt: time.Now().UTC()}
	if err := writeJSON(filepath.Join(c.Dir, StateFile), st); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		reap(pid)
		return fail(err)
	}
	started(nil)
	if stdin != nil {
		go stdin.serve()
	}
	shedStartup()
	code := reap(pid)
	cio.wait()
	return writeJSON(filepath.Join(c.Dir, ExitFile), Exit{Code: code, FinishedAt: time.Now().UTC()})
}

// reap waits for pid, reaping every other child that comes by (orphans
// handed to the shim as their subreaper), and returns pid's exit code.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1 // ECHILD: no such child, it cannot be waited for
		}
		if got == pid {
			return ExitCode(ws)
		}
	}
}

// ExitCode is a wait status as a shell gives it: 128+signal for a process
// killed by a signal.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// containerIO is the container's stdio as the shim holds it: pipes (or a
// terminal) whose container ends go to the runtime, and the copies of its
// output into the logs.
type containerIO struct {
	stdin                  *stdinPipe
	devNull                *os.File
	outR, outW, errR, errW *os.File
	console                *consoleSocket // with a terminal
	master                 *os.File
	copies                 sync.WaitGroup
	streams                []*logs.LineWriter
}

func newContainerIO(tty bool, stdin *stdinPipe) (*containerIO, error) {
	c := &containerIO{stdin: stdin}
	var err error
	if c.devNull, err = os.Open(os.DevNull); err != nil {
		return nil, err
	}
	if tty {
		if c.console, err = newConsoleSocket(); err != nil {
			c.close()
			return nil, err
		}
		return c, nil
	}
	if c.outR, c.outW, err = os.Pipe(); err != nil {
		c.close()
		return nil, err
	}
	if c.errR, c.errW, err = os.Pipe(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// stdio is the container's side of its stdio: with a terminal, the
// console socket only (the runtime makes the terminal the init's stdio).
func (c *containerIO) stdio() runtime.Files {
	if c.console != nil {
		return runtime.Files{Console: c.console.child}
	}
	in := c.devNull
	if c.stdin != nil {
		in = c.stdin.r
	}
	return runtime.Files{Stdin: in, Stdout: c.outW, Stderr: c.errW}
}

// closeChildEnds closes the shim's copies of the container's ends, so the
// output ends when the container's last process is gone.
func (c *containerIO) closeChildEnds() {
	for _, f := range []*os.File{c.outW, c.errW, c.devNull} {
		if f != nil {
			f.Close()
		}
	}
	c.outW, c.errW, c.devNull = nil, nil, nil
	if c.console != nil {
		c.console.child.Close()
	}
	if c.stdin != nil && c.console == nil {
		// The container has the read end; the shim feeds the write end.
		c.stdin.r.Close()
	}
}

// attach starts copying the output into lw (and, with a terminal, stdin
// into it).
func (c *containerIO) attach(lw *logs.Writer) error {
	stdout := lw.Stream("stdout")
	c.streams = append(c.streams, stdout)
	if c.console != nil {
		m, err := RecvFD(c.console.parent)
		if err != nil {
			return fmt.Errorf("receiving the container's terminal: %w", err)
		}
		c.master = m
		_ = unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
		if c.stdin != nil {
			go func() { _, _ = io.Copy(m, c.stdin.r) }()
		}
		// EIO ends it: the last process holding the terminal has exited.
		c.copy(stdout, m)
		return nil
	}
	stderr := lw.Stream("stderr")
	c.streams = append(c.streams, stderr)
	c.copy(stdout, c.outR)
	c.copy(stderr, c.errR)
	return nil
}

func (c *containerIO) copy(w io.Writer, r io.Reader) {
	c.copies.Add(1)
	go func() {
		defer c.copies.Done()
		_, _ = io.Copy(w, r)
	}()
}

// wait waits for the output to end and flushes partial lines.
func (c *containerIO) wait() {
	c.copies.Wait()
	for _, s := range c.streams {
		_ = s.Flush()
	}
}

func (c *containerIO) close() {
	for _, f := range []*os.File{c.devNull, c.outR, c.outW, c.errR, c.errW, c.master} {
		if f != nil {
			f.Close()
		}
	}
	if c.console != nil {
		c.console.parent.Close()
		c.console.child.Close()
	}
	if c.stdin != nil {
		c.stdin.r.Close()
	}
}

// consoleSocket is the socket pair on which the runtime sends the master
// of the container's terminal: child goes to the runtime.
type consoleSocket struct{ parent, child *os.File }

func newConsoleSocket() (*consoleSocket, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("making the console socket: %w", err)
	}
	return &consoleSocket{parent: os.NewFile(uintptr(fds[0]), "console-parent"), child: os.NewFile(uintptr(fds[1]), "console-child")}, nil
}

// RecvFD receives one descriptor sent with SCM_RIGHTS on sock.
func RecvFD(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err == nil && len(fds) == 1 {
			return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
		}
	}
	return nil, errors.New("no descriptor in the message")
}

// resetIgnoredSignals gives back their default action to the signals the
// shim was started with ignored and the Go runtime left so (SIGHUP,
// SIGINT, and 32 and 33, which the runtime never handles). Go has no call
// for that, so it is rt_sigaction(2) with an all-zero action: SIG_DFL,
// whatever the architecture's layout.
func resetIgnoredSignals() {
	var dfl [4]uint64
	for sig := syscall.Signal(1); sig < 65; sig++ {
		if sig != syscall.SIGKILL && sig != syscall.SIGSTOP && signal.Ignored(sig) {
			_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		}
	}
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// The state and exit of a running process: nothing of it survives a
	// host crash, so atomic for hostd's reads is enough, no fsync.
	return fsroot.WriteTransient(path, b, 0o600)
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
