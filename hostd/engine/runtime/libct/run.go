package libct

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"syscall"

	// Device rules in the cgroup config need the devices controller code.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// Init is the container init entry point. libcontainer starts a container
// by re-executing the current binary as `<binary> init` (after the nsenter
// C constructor has joined the namespaces): main, or a test's TestMain, calls
// Init when os.Args[1] is "init". It does not return.
//
// The init lives only until it executes the container's process, so it
// never collects garbage: a collection in the middle of a container start
// is time on every start, and nothing of this process's heap outlives it.
func Init() {
	debug.SetGCPercent(-1)
	libcontainer.Init()
}

// Runtime runs containers with libcontainer. StateRoot holds libcontainer's
// state (state.json per container); put it on tmpfs (/run/hostd/runc) so a
// reboot forgets containers that no longer run.
type Runtime struct {
	StateRoot string
}

// Stdio is the runtime package's.
type Stdio = runtime.Stdio

var _ runtime.Runtime = Runtime{}

// New is the runtime.Factory for libcontainer.
func New(stateRoot string) runtime.Runtime { return Runtime{StateRoot: stateRoot} }

// Running is a started container's init process.
type Running struct {
	c   *libcontainer.Container
	p   *libcontainer.Process
	tty *ttyCopier // nil without a terminal
}

// Config converts a spec to libcontainer's configuration. A cgroupsPath in
// runc's "slice:prefix:name" form selects libcontainer's systemd cgroup
// manager (a transient scope per container, made over systemd's private
// D-Bus socket), as runc's --systemd-cgroup does; a path, cgroupfs.
func Config(id string, spec *specs.Spec) (*configs.Config, error) {
	systemd := spec.Linux != nil && strings.Count(spec.Linux.CgroupsPath, ":") == 2 && !strings.HasPrefix(spec.Linux.CgroupsPath, "/")
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:       id,
		UseSystemdCgroup: systemd,
		Spec:             spec,
	})
	if err != nil {
		return nil, fmt.Errorf("converting spec of %s: %w", id, err)
	}
	return cfg, nil
}

// Start creates container id from spec and starts its init process. The
// container is destroyed again if its process cannot start.
func (r Runtime) Start(ctx context.Context, id string, spec *specs.Spec, stdio Stdio) (runtime.Process, error) {
	c, err := r.create(ctx, id, spec)
	if err != nil {
		return nil, err
	}
	p := processOf(spec.Process, stdio)
	p.Init = true
	var tty *ttyCopier
	if spec.Process.Terminal {
		if tty, err = newTTY(p, stdio); err != nil {
			_ = c.Destroy()
			return nil, fmt.Errorf("starting container %s: %w", id, err)
		}
	}
	if err := c.Run(p); err != nil {
		if tty != nil {
			tty.Close()
		}
		_ = c.Destroy()
		return nil, fmt.Errorf("starting container %s: %w", id, err)
	}
	if tty != nil {
		if err := tty.start(); err != nil {
			tty.Close()
			_ = p.Signal(syscall.SIGKILL)
			_, _ = p.Wait()
			_ = c.Destroy()
			return nil, fmt.Errorf("starting container %s: %w", id, err)
		}
	}
	return &Running{c: c, p: p, tty: tty}, nil
}

// Launch creates container id from spec and starts its init process on
// files, keeping nothing of it: the caller may exit at once, and the init
// then goes to the caller's subreaper (the shim), which waits for it. Its
// container is destroyed again if it cannot start.
func (r Runtime) Launch(ctx context.Context, id string, spec *specs.Spec, files runtime.Files) (int, error) {
	// A container left by a shim that was killed has the same id: clear it.
	if err := r.Destroy(id); err != nil {
		return 0, err
	}
	c, err := r.create(ctx, id, spec)
	if err != nil {
		return 0, err
	}
	p := processOf(spec.Process, Stdio{})
	p.Init = true
	if spec.Process.Terminal {
		if files.Console == nil {
			_ = c.Destroy()
			return 0, fmt.Errorf("starting container %s: it has a terminal, but no console socket was given", id)
		}
		p.ConsoleSocket = files.Console
	} else {
		// Files, not readers or writers: the process gets them as they
		// are, nothing here copies.
		p.Stdin, p.Stdout, p.Stderr = files.Stdin, files.Stdout, files.Stderr
	}
	if err := c.Run(p); err != nil {
		_ = c.Destroy()
		return 0, fmt.Errorf("starting container %s: %w", id, err)
	}
	pid, err := p.Pid()
	if err != nil {
		_ = c.Destroy()
		return 0, fmt.Errorf("starting container %s: %w", id, err)
	}
	return pid, nil
}

// create makes container id's libcontainer state and cgroup from spec.
func (r Runtime) create(ctx context.Context, id string, spec *specs.Spec) (*libcontainer.Container, error) {
	if spec.Linux != nil && spec.Linux.Seccomp != nil && !runtime.SeccompSupported {
		return nil, fmt.Errorf("starting %s: seccomp asked for, but hostd was built without -tags seccomp", id)
	}
	cfg, err := Config(id, spec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := libcontainer.Create(r.StateRoot, id, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating container %s: %w", id, err)
	}
	return c, nil
}

func processOf(sp *specs.Process, stdio Stdio) *libcontainer.Process {
	p := &libcontainer.Process{
		Args:            sp.Args,
		Env:             sp.Env,
		UID:             int(sp.User.UID),
		GID:             int(sp.User.GID),
		Cwd:             sp.Cwd,
		NoNewPrivileges: &sp.NoNewPrivileges,
		Stdin:           stdio.Stdin,
		Stdout:          stdio.Stdout,
		Stderr:          stdio.Stderr,
	}
	for _, r := range sp.Rlimits {
		// runc's spec conversion leaves rlimits to the process; an
		// unknown name was refused when the container was declared.
		if t, ok := runtime.RlimitTypes[r.Type]; ok {
			p.Rlimits = append(p.Rlimits, configs.Rlimit{Type: t, Hard: r.Hard, Soft: r.Soft})
		}
	}
	for _, g := range sp.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	if c := sp.Capabilities; c != nil {
		p.Capabilities = &configs.Capabilities{Bounding: c.Bounding, Effective: c.Effective, Permitted: c.Permitted, Inheritable: c.Inheritable, Ambient: c.Ambient}
	}
	return p
}

// Pid is the init process's pid on the host.
func (x *Running) Pid() int {
	pid, _ := x.p.Pid()
	return pid
}

// Wait waits for the init process to exit, then destroys the container
// (every other process in it is killed, its cgroup removed). The exit code
// is 128+signal for a process killed by a signal, as in a shell.
func (x *Running) Wait() (int, error) {
	st, werr := x.p.Wait()
	code := ExitCode(st)
	derr := x.c.Destroy()
	if x.tty != nil {
		// Every process holding the terminal is gone now: drain what it
		// printed (the copy ends at EIO).
		x.tty.wait()
		x.tty.Close()
	}
	if derr != nil {
		return code, fmt.Errorf("destroying container %s: %w", x.c.ID(), derr)
	}
	if st == nil && werr != nil {
		return code, fmt.Errorf("waiting for container %s: %w", x.c.ID(), werr)
	}
	return code, nil
}

// ExitCode turns a process state into a shell-style exit code.
func ExitCode(st *os.ProcessState) int {
	if st == nil {
		return -1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Signal sends sig to container id's init process.
func (r Runtime) Signal(id string, sig os.Signal) error {
	c, err := libcontainer.Load(r.StateRoot, id)
	if err != nil {
		return fmt.Errorf("signalling container %s: %w", id, err)
	}
	if err := c.Signal(sig); err != nil {
		return fmt.Errorf("signalling container %s: %w", id, err)
	}
	return nil
}

// Exec runs a process in running container id and waits for it; it
// inherits the container's namespaces, cgroup, capabilities and seccomp
// filter. proc.Args must be set; an empty Cwd means "/".
func (r Runtime) Exec(ctx context.Context, id string, proc *specs.Process, stdio Stdio) (int, error) {
	c, err := libcontainer.Load(r.StateRoot, id)
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	if proc.Cwd == "" {
		proc.Cwd = "/"
	}
	p := processOf(proc, stdio)
	var tty *ttyCopier
	if proc.Terminal {
		if tty, err = newTTY(p, stdio); err != nil {
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
		defer tty.Close()
	}
	if err := c.Run(p); err != nil {
		return -1, fmt.Errorf("exec %q in container %s: %w", proc.Args, id, err)
	}
	if tty != nil {
		if err := tty.start(); err != nil {
			_ = p.Signal(syscall.SIGKILL)
			_, _ = p.Wait()
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Signal(syscall.SIGKILL)
		case <-done:
		}
	}()
	st, _ := p.Wait()
	close(done)
	if tty != nil {
		tty.wait()
	}
	return ExitCode(st), ctx.Err()
}

// Pids lists the host pids of the container's processes.
func (r Runtime) Pids(id string) ([]int, error) {
	c, err := libcontainer.Load(r.StateRoot, id)
	if err != nil {
		return nil, fmt.Errorf("listing processes of %s: %w", id, err)
	}
	return c.Processes()
}

// Update applies res's memory, CPU (quota, shares, cpuset) and pids
// limits to running container id's cgroup, as runc update does; what res
// leaves nil or empty is kept.
func (r Runtime) Update(id string, res *specs.LinuxResources) error {
	c, err := libcontainer.Load(r.StateRoot, id)
	if err != nil {
		return fmt.Errorf("updating container %s: %w", id, err)
	}
	cfg := c.Config()
	cg := *cfg.Cgroups
	set := *cg.Resources
	if m := res.Memory; m != nil {
		if m.Limit != nil {
			set.Memory = *m.Limit
		}
		if m.Swap != nil {
			set.MemorySwap = *m.Swap
		}
		if m.Reservation != nil {
			set.MemoryReservation = *m.Reservation
		}
	}
	if p := res.CPU; p != nil {
		if p.Quota != nil {
			set.CpuQuota = *p.Quota
		}
		if p.Period != nil {
			set.CpuPeriod = *p.Period
		}
		if p.Shares != nil {
			set.CpuShares = *p.Shares
		}
		if p.Cpus != "" {
			set.CpusetCpus = p.Cpus
		}
		if p.Mems != "" {
			set.CpusetMems = p.Mems
		}
	}
	if p := res.Pids; p != nil {
		set.PidsLimit = p.Limit
	}
	cg.Resources = &set
	cfg.Cgroups = &cg
	if err := c.Set(cfg); err != nil {
		return fmt.Errorf("updating the cgroup limits of container %s: %w", id, err)
	}
	return nil
}

// Destroy removes what is left of container id (a crashed shim's
// container): processes killed, cgroup and state removed. A container that
// does not exist is not an error.
func (r Runtime) Destroy(id string) error {
	c, err := libcontainer.Load(r.StateRoot, id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading container %s: %w", id, err)
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("destroying container %s: %w", id, err)
	}
	return nil
}
