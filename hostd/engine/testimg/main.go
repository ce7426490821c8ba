package testimg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	// libcontainer's C constructor, for a test binary re-executed as a
	// container's init.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim/launch"
)

// Probes the test binary runs as instead of its tests (os.Args[1]), from
// inside a container or planted by one.
const (
	ProbeEUID     = "probe-euid"
	ProbeSyscalls = "probe-syscalls"
)

// Main is TestMain for packages whose tests run containers: the test
// binary is then also what hostd-shim is: a shim, and a container's init
// (libcontainer re-executes /proc/self/exe init).
func Main(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "init":
			libct.Init()
		case ProbeEUID:
			// A copy made setuid by a container: does it run as root?
			fmt.Println(os.Geteuid())
			os.Exit(0)
		case ProbeSyscalls:
			probeSyscalls(os.Args[2:])
			os.Exit(0)
		case "shim":
			if err := shim.Main(context.Background(), os.Args[2:], launch.Starter(libct.New)); err != nil {
				fmt.Fprintln(os.Stderr, "shim:", err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// probeSyscalls tries the named syscalls, which a container must not
// have, one line each: "name: ok" or "name: <errno>". io_uring_setup gets
// a valid request, so only a filter (or a disabled io_uring) refuses it;
// mount targets a directory of its own, so a run on the host harms nothing.
func probeSyscalls(names []string) {
	var params [120]byte // struct io_uring_params
	calls := map[string]func() error{
		"io_uring_setup": func() error {
			fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
			if errno != 0 {
				return errno
			}
			return unix.Close(int(fd))
		},
		"mount": func() error {
			dir, err := os.MkdirTemp("", "probe-mount")
			if err != nil {
				return err
			}
			defer os.Remove(dir)
			if err := unix.Mount("none", dir, "tmpfs", 0, ""); err != nil {
				return err
			}
			return unix.Unmount(dir, 0)
		},
		"init_module": func() error {
			_, _, errno := unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, 0)
			if errno != 0 {
				return errno
			}
			return nil
		},
		"unshare-user": func() error { return unix.Unshare(unix.CLONE_NEWUSER) },
	}
	for _, n := range names {
		call, ok := calls[n]
		if !ok {
			fmt.Printf("%s: unknown\n", n)
			continue
		}
		var errno unix.Errno
		switch err := call(); {
		case err == nil:
			fmt.Printf("%s: ok\n", n)
		case errors.As(err, &errno):
			fmt.Printf("%s: %s\n", n, unix.ErrnoName(errno))
		default:
			fmt.Printf("%s: %v\n", n, err)
		}
	}
}
