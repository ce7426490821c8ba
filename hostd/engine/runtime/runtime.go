package runtime

import (
	"context"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Stdio is a process's standard streams; nil ones are /dev/null. The
// runtime may read Stdin until the process is gone (with a terminal it
// copies Stdin to the terminal's master); an *os.File is handed to the
// process itself.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Files are a launched process's stdio, handed to it as they are; nil ones
// are /dev/null. With a terminal, the runtime makes one in the container
// and sends its master (SCM_RIGHTS) on the socket Console instead.
type Files struct {
	Stdin, Stdout, Stderr, Console *os.File
}

// Runtime runs containers from OCI specs. The implementation
// (runtime/libct, runc's libcontainer) needs cgo; it is handed in by main
// as a Factory, so packages that only talk to hostd stay cgo-free.
//
// Contract: ids are unique among live containers; Start returns once the
// container's process runs; Destroy of an unknown id is not an error.
type Runtime interface {
	// Start creates container id from spec and starts its init process.
	Start(ctx context.Context, id string, spec *specs.Spec, stdio Stdio) (Process, error)
	// Launch creates container id from spec and starts its init process
	// on files, as the shim's launcher does: it returns the init's pid
	// and keeps nothing of it, so the caller may exit and leave the init
	// to its subreaper. A container left with the same id is cleared
	// first.
	Launch(ctx context.Context, id string, spec *specs.Spec, files Files) (pid int, err error)
	// Signal sends sig to the container's init process.
	Signal(id string, sig os.Signal) error
	// Exec runs proc in the running container and waits for its exit code.
	Exec(ctx context.Context, id string, proc *specs.Process, stdio Stdio) (int, error)
	// Update changes running container id's cgroup limits to res (its
	// memory, CPU and pids; those res leaves nil are kept).
	Update(id string, res *specs.LinuxResources) error
	// Destroy kills what is left of the container and removes its state.
	Destroy(id string) error
}

// Process is a started container's init process.
type Process interface {
	Pid() int
	// Wait waits for the exit, destroys the container and returns the exit
	// code (128+signal when killed by a signal).
	Wait() (int, error)
}

// Factory makes a Runtime keeping its state under stateRoot.
type Factory func(stateRoot string) Runtime
