package runtime

import (
	"fmt"
	"os"
	"path"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// InitPath is where a container's init (docker run --init) is mounted,
// Docker's path for its docker-init.
const InitPath = "/sbin/docker-init"

// Security are the docker run security options of a container. The zero
// value is hostd's default: Docker's confinement, with no_new_privs set.
type Security struct {
	// Privileged gives every capability (Caps must list them), every host
	// device (Devices), a writable /sys and cgroup tree, no masked or
	// read-only paths and, without SeccompProfile, no seccomp filter: as
	// dockerd's --privileged.
	Privileged bool
	// AllowNewPrivileges leaves no_new_privs unset, so setuid programs
	// gain their owner's rights (Docker's default).
	AllowNewPrivileges bool
	// SeccompUnconfined runs without a seccomp filter
	// (--security-opt seccomp=unconfined).
	SeccompUnconfined bool
	// SeccompProfile is a Docker seccomp profile's JSON used instead of
	// the default (--security-opt seccomp=FILE: the CLI sends the file).
	SeccompProfile string
}

// Device is a host device node made in the container.
type Device struct {
	Path         string // in the container
	Type         string // c, b or p
	Major, Minor int64
	FileMode     uint32 // permission bits
	UID, GID     uint32
	// Permissions are the device cgroup's access: some of r, w, m.
	Permissions string
}

// addDevices makes devs in s's /dev and allows them in its device cgroup.
func addDevices(s *specs.Spec, devs []Device) {
	for _, d := range devs {
		mode := os.FileMode(d.FileMode & 0o7777)
		uid, gid := d.UID, d.GID
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
			Path: path.Clean(d.Path), Type: d.Type, Major: d.Major, Minor: d.Minor, FileMode: &mode, UID: &uid, GID: &gid,
		})
		major, minor := d.Major, d.Minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: d.Permissions,
		})
	}
}

// privileged lifts the confinement BuildSpec set up: every device allowed,
// no masked or read-only paths, /sys and the cgroup tree writable.
func privileged(s *specs.Spec) {
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	for i, m := range s.Mounts {
		if m.Destination != "/sys" && m.Destination != "/sys/fs/cgroup" {
			continue
		}
		var opts []string
		for _, o := range m.Options {
			if o != "ro" {
				opts = append(opts, o)
			}
		}
		s.Mounts[i].Options = append(opts, "rw")
	}
}

// seccomp is the filter for s: none when unconfined, privileged without a
// profile of its own, or without seccomp support (in.Seccomp unset); else
// the given profile or Docker's default.
func (in SpecInput) seccomp(s *specs.Spec) (*specs.LinuxSeccomp, error) {
	sec := in.Security
	switch {
	case sec.SeccompUnconfined:
		return nil, nil
	case sec.SeccompProfile != "":
		if !in.Seccomp {
			return nil, fmt.Errorf("seccomp profile: this hostd runs containers without seccomp (built without -tags seccomp)")
		}
		p, err := seccomp.LoadProfile(sec.SeccompProfile, s)
		if err != nil {
			return nil, fmt.Errorf("loading the seccomp profile: %w", err)
		}
		return p, nil
	case sec.Privileged || !in.Seccomp:
		return nil, nil
	}
	return DefaultSeccomp(s)
}

// CheckSeccompProfile reports whether profile is a seccomp profile hostd
// can load, for validating it when the container is created.
func CheckSeccompProfile(profile string) error {
	if _, err := seccomp.LoadProfile(profile, &specs.Spec{Process: &specs.Process{}}); err != nil {
		return fmt.Errorf("seccomp profile: %w", err)
	}
	return nil
}
