package runtime

import (
	"fmt"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// SeccompProfile names the profile containers get, for /info.
const SeccompProfile = "builtin"

// DefaultSeccomp is Docker's default seccomp profile for spec s (the
// moby/profiles/seccomp module, what dockerd applies): an allow-list, so a
// syscall newer than the list (io_uring_setup, ...) fails with EPERM and
// what runs under Docker runs here. The profile opens syscalls by the
// capabilities in s's bounding set and by the running kernel's version,
// so s's process must be complete.
func DefaultSeccomp(s *specs.Spec) (*specs.LinuxSeccomp, error) {
	p, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("building the default seccomp profile: %w", err)
	}
	return p, nil
}
