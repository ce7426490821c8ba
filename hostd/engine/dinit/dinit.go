package dinit

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Name is the program name that selects the init (/sbin/docker-init).
const Name = "docker-init"

// Main runs args (after an optional "--") as the child and returns the
// exit code to exit with: the child's, or 128+signal when a signal killed
// it.
func Main(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "docker-init: usage: docker-init -- COMMAND [ARG...]")
		return 1
	}
	sigs := make(chan os.Signal, 64)
	// Every signal; SIGCHLD says a child is to reap.
	signal.Notify(sigs)
	defer signal.Stop(sigs)
	pid, err := start(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker-init: %v\n", err)
		return 127
	}
	for {
		if code, done := reap(pid); done {
			return code
		}
		switch sig := (<-sigs).(syscall.Signal); sig {
		case syscall.SIGCHLD:
		case syscall.SIGURG:
			// The Go runtime's own preemption signal, not the user's.
		default:
			_ = unix.Kill(pid, sig)
		}
	}
}

// start runs args in a process group of its own, in the foreground of the
// terminal when there is one, so a terminal's ^C reaches it once.
func start(args []string) (int, error) {
	path := args[0]
	if lp, err := exec.LookPath(path); err == nil {
		path = lp
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		attr.Foreground, attr.Ctty = true, 0
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: attr,
	})
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", args[0], err)
	}
	return pid, nil
}

// reap waits for every child that has exited; done once the command
// itself has, with its exit code.
func reap(child int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return code, done
		}
		if pid == child {
			done = true
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
}
