package runtime

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"
	"sync"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SeccompProfile names the profile containers get, for /info.
const SeccompProfile = "builtin"

// DefaultSeccomp is Docker's default seccomp profile for spec s (the
// moby/profiles/seccomp module, what dockerd applies): an allow-list, so a
// syscall newer than the list (io_uring_setup, ...) fails with EPERM and
// what runs under Docker runs here. The profile opens syscalls by the
// capabilities in s's bounding set and by the running kernel's version,
// so s's process must be complete.
//
// One difference, where it cannot be seen: on a kernel that refuses x32
// system calls (Debian's, unless booted with syscall.x32=y), the filter
// leaves out the x32 ABI. An x32 program cannot run there anyway (each of
// its calls fails with ENOSYS), and the filter's BPF is built in every
// container's init at each start: x32 is a third of that work (12 of 30 ms
// on a test machine, measured with runc's seccomp.InitSeccomp). A stray
// x32 call from a 64-bit program is then refused as a foreign
// architecture instead of failing with ENOSYS.
func DefaultSeccomp(s *specs.Spec) (*specs.LinuxSeccomp, error) {
	p, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("building the default seccomp profile: %w", err)
	}
	if !X32Enabled() {
		p.Architectures = withoutArch(p.Architectures, specs.ArchX32)
	}
	return p, nil
}

// withoutArch is archs less a.
func withoutArch(archs []specs.Arch, a specs.Arch) []specs.Arch {
	return slices.DeleteFunc(slices.Clone(archs), func(x specs.Arch) bool { return x == a })
}

// x32SysGetpid is getpid in the x32 ABI: x86-64's number with the x32 bit.
const x32SysGetpid = 0x40000000 | unix.SYS_GETPID

// X32Enabled reports whether this kernel runs x32 system calls: it asks
// once, with an x32 getpid (harmless where it runs, ENOSYS where x32 is
// not built in or not enabled). Only amd64 has the x32 ABI.
var X32Enabled = sync.OnceValue(func() bool {
	if goruntime.GOARCH != "amd64" {
		return false
	}
	_, _, errno := unix.RawSyscall(x32SysGetpid, 0, 0, 0)
	return !errors.Is(errno, unix.ENOSYS)
})
