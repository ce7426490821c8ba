package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// HostOptions are the docker run options about the container's
// confinement and kernel resources: privileged mode, security options,
// devices, ulimits, sysctls, /dev/shm's size and an init. Zero values keep
// hostd's defaults.
type HostOptions struct {
	// Privileged runs the container with every capability and host
	// device, a writable /sys and no seccomp filter (--privileged).
	Privileged bool `yaml:"privileged,omitempty" json:"privileged,omitempty"`
	// SecurityOpt are Docker's --security-opt values hostd implements:
	// no-new-privileges[=true|false], seccomp=unconfined and
	// seccomp=<profile JSON>.
	SecurityOpt []string `yaml:"securityOpt,omitempty" json:"securityOpt,omitempty"`
	// AllowNewPrivileges is the no_new_privs default when SecurityOpt
	// does not set it: false (a declared workload's default) sets
	// no_new_privs, so setuid programs gain nothing; the Docker API sets
	// it true, dockerd's default, which setuid programs (su, sudo) need.
	AllowNewPrivileges bool `yaml:"allowNewPrivileges,omitempty" json:"allowNewPrivileges,omitempty"`
	// Devices are host devices given to the container (--device).
	Devices []DeviceMapping `yaml:"devices,omitempty" json:"devices,omitempty"`
	// Ulimits are the process's resource limits (--ulimit nofile=10:20).
	Ulimits []Ulimit `yaml:"ulimits,omitempty" json:"ulimits,omitempty"`
	// Sysctls are namespaced kernel parameters (--sysctl).
	Sysctls map[string]string `yaml:"sysctls,omitempty" json:"sysctls,omitempty"`
	// ShmSize is /dev/shm's size (64m, the default, when empty).
	ShmSize string `yaml:"shmSize,omitempty" json:"shmSize,omitempty"`
	// Init runs the command under a small init that reaps zombies and
	// forwards signals (--init), mounted at /sbin/docker-init.
	Init bool `yaml:"init,omitempty" json:"init,omitempty"`
}

// DeviceMapping is one --device: a host device, its path in the
// container (the same when empty) and the cgroup access (rwm when empty).
type DeviceMapping struct {
	PathOnHost        string `yaml:"pathOnHost" json:"pathOnHost"`
	PathInContainer   string `yaml:"pathInContainer,omitempty" json:"pathInContainer,omitempty"`
	CgroupPermissions string `yaml:"cgroupPermissions,omitempty" json:"cgroupPermissions,omitempty"`
}

// Ulimit is a resource limit by Docker's name (nofile, nproc, core...).
type Ulimit struct {
	Name string `yaml:"name" json:"name"`
	Soft int64  `yaml:"soft" json:"soft"`
	Hard int64  `yaml:"hard" json:"hard"`
}

// DefaultShmSize is /dev/shm's size without --shm-size (Docker's).
const DefaultShmSize = 64 << 20

// rlimitType is the OCI name of --ulimit's name (nofile: RLIMIT_NOFILE),
// "" for an unknown one.
func rlimitType(name string) string {
	t := "RLIMIT_" + strings.ToUpper(name)
	if _, ok := runtime.RlimitTypes[t]; !ok || name != strings.ToLower(name) {
		return ""
	}
	return t
}

// namespacedSysctls are the IPC sysctls a container may set, as dockerd
// allows; fs.mqueue.* and (with a network namespace of its own) net.* are
// allowed by prefix.
var namespacedSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// CheckSysctl reports why a container on network may not set sysctl k:
// only the kernel parameters a container's own namespaces scope.
func CheckSysctl(k, network string) error {
	switch {
	case namespacedSysctls[k], strings.HasPrefix(k, "fs.mqueue."):
		return nil
	case strings.HasPrefix(k, "net."):
		if network == runtime.NetworkHost {
			return fmt.Errorf("sysctl %q is not allowed in the host's network namespace", k)
		}
		return nil
	}
	return fmt.Errorf("sysctl %q is not allowed: only kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.* and net.* are namespaced", k)
}

// security reads SecurityOpt into the runtime's options.
func (o HostOptions) security() (runtime.Security, error) {
	sec := runtime.Security{Privileged: o.Privileged, AllowNewPrivileges: o.AllowNewPrivileges}
	for _, opt := range o.SecurityOpt {
		// The CLI sends key=value; Docker also reads key:value.
		k, v, hasV := strings.Cut(opt, "=")
		if !hasV {
			k, v, hasV = strings.Cut(opt, ":")
		}
		switch k {
		case "no-new-privileges":
			nnp := true
			if hasV {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return sec, fmt.Errorf("security option %q: want no-new-privileges[=true|false]", opt)
				}
				nnp = b
			}
			sec.AllowNewPrivileges = !nnp
		case "seccomp":
			switch {
			case v == "unconfined":
				sec.SeccompUnconfined, sec.SeccompProfile = true, ""
			case strings.HasPrefix(strings.TrimSpace(v), "{"):
				if err := runtime.CheckSeccompProfile(v); err != nil {
					return sec, fmt.Errorf("security option seccomp: %w", err)
				}
				sec.SeccompUnconfined, sec.SeccompProfile = false, v
			default:
				return sec, fmt.Errorf("security option %q: want seccomp=unconfined or a profile's JSON", opt)
			}
		default:
			return sec, fmt.Errorf("security option %q: hostd implements no-new-privileges and seccomp only", opt)
		}
	}
	return sec, nil
}

// rlimits are the Ulimits as OCI rlimits.
func (o HostOptions) rlimits() []specs.POSIXRlimit {
	var out []specs.POSIXRlimit
	for _, u := range o.Ulimits {
		out = append(out, specs.POSIXRlimit{Type: rlimitType(u.Name), Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	return out
}

// ShmBytes is /dev/shm's size in bytes.
func (o HostOptions) ShmBytes() int64 {
	n, err := runtime.ParseMemory(o.ShmSize)
	if err != nil || n == 0 {
		return DefaultShmSize
	}
	return n
}

// validateHost adds a problem per bad host option; network is the
// container's network mode.
func (s ContainerSpec) validateHost(add func(field, format string, a ...any)) {
	o := s.HostOptions
	if _, err := o.security(); err != nil {
		add("securityOpt", "%v", err)
	}
	for i, d := range o.Devices {
		if !path.IsAbs(d.PathOnHost) || (d.PathInContainer != "" && !path.IsAbs(d.PathInContainer)) {
			add(fmt.Sprintf("devices[%d]", i), "%q: the paths must be absolute", d.PathOnHost)
		}
		if strings.Trim(d.CgroupPermissions, "rwm") != "" {
			add(fmt.Sprintf("devices[%d]", i), "%q: permissions %q: want some of r, w, m", d.PathOnHost, d.CgroupPermissions)
		}
	}
	for i, u := range o.Ulimits {
		if rlimitType(u.Name) == "" {
			add(fmt.Sprintf("ulimits[%d]", i), "unknown limit %q", u.Name)
		} else if u.Soft > u.Hard {
			add(fmt.Sprintf("ulimits[%d]", i), "%s: soft limit %d is above the hard limit %d", u.Name, u.Soft, u.Hard)
		}
	}
	for _, k := range sortedMapKeys(o.Sysctls) {
		if err := CheckSysctl(k, s.Network); err != nil {
			add("sysctls", "%v", err)
		}
	}
	if n, err := runtime.ParseMemory(o.ShmSize); err != nil {
		add("shmSize", "%v", err)
	} else if o.ShmSize != "" && n == 0 {
		add("shmSize", "must be above 0")
	}
	s.Limits.validateCPUMem(add)
}

func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// minMemory is dockerd's smallest memory limit and reservation.
const minMemory = 6 << 20

// validateCPUMem checks the CPU and memory options against each other as
// dockerd does.
func (l Limits) validateCPUMem(add func(field, format string, a ...any)) {
	mem, _ := runtime.ParseMemory(l.Memory)
	swap, err := parseSwap(l.MemorySwap)
	if err != nil {
		add("limits.memorySwap", "%v", err)
	}
	switch {
	case swap > 0 && mem == 0:
		add("limits.memorySwap", "needs a memory limit too")
	case swap > 0 && swap < mem:
		add("limits.memorySwap", "must be at least the memory limit (memory plus swap), or -1 for unlimited swap")
	}
	res, err := runtime.ParseMemory(l.MemoryReservation)
	switch {
	case err != nil:
		add("limits.memoryReservation", "%v", err)
	case res > 0 && res < minMemory:
		add("limits.memoryReservation", "must be at least 6MB")
	case res > 0 && mem > 0 && mem < res:
		add("limits.memoryReservation", "must not be above the memory limit")
	}
	if l.CPUs > 0 && (l.CPUQuota != 0 || l.CPUPeriod != 0) {
		add("limits.cpuQuota/cpuPeriod", "not with cpus (Docker's --cpus and --cpu-quota/--cpu-period conflict)")
	}
	if l.CPUPeriod != 0 && (l.CPUPeriod < 1000 || l.CPUPeriod > 1000000) {
		add("limits.cpuPeriod", "%d: must be from 1000 (1 ms) to 1000000 (1 s)", l.CPUPeriod)
	}
	if l.CPUQuota != 0 && l.CPUQuota < 1000 && l.CPUQuota != -1 {
		add("limits.cpuQuota", "%d: must be at least 1000 (1 ms), or -1", l.CPUQuota)
	}
	if l.CPUShares < 0 {
		add("limits.cpuShares", "must be >= 0")
	}
	for name, set := range map[string]string{"limits.cpusetCpus": l.CpusetCpus, "limits.cpusetMems": l.CpusetMems} {
		if _, err := parseCPUSet(set); err != nil {
			add(name, "%v", err)
		}
	}
}

// parseSwap reads --memory-swap: a size, or -1 for unlimited.
func parseSwap(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	return runtime.ParseMemory(s)
}

// parseCPUSet reads a cpuset list (0-2,4) into the highest number + 1
// it names; "" is 0.
func parseCPUSet(s string) (int, error) {
	top := 0
	if s == "" {
		return 0, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return 0, fmt.Errorf("%q: want a list like 0-2,4", s)
		}
		top = max(top, b+1)
	}
	return top, nil
}

// checkHost checks the options against this host: each device exists and
// is a device, the cpuset's CPUs and memory nodes are online.
func (s ContainerSpec) checkHost() error {
	var errs []error
	for _, d := range s.Devices {
		if _, err := hostDevice(d); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range []struct{ name, set, online string }{
		{"cpuset-cpus", s.Limits.CpusetCpus, "/sys/devices/system/cpu/online"},
		{"cpuset-mems", s.Limits.CpusetMems, "/sys/devices/system/node/online"},
	} {
		want, _ := parseCPUSet(c.set)
		if want == 0 {
			continue
		}
		b, err := os.ReadFile(c.online)
		if errors.Is(err, fs.ErrNotExist) && c.name == "cpuset-mems" {
			b, err = []byte("0"), nil // a kernel without NUMA: one node
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: reading what this host has: %w", c.name, err))
			continue
		}
		have, err := parseCPUSet(strings.TrimSpace(string(b)))
		if err == nil && want > have {
			errs = append(errs, fmt.Errorf("%s %s: not available, this host has %s", c.name, c.set, strings.TrimSpace(string(b))))
		}
	}
	return errors.Join(errs...)
}

// hostDevice is the device d maps, read from the host.
func hostDevice(d DeviceMapping) (runtime.Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.PathOnHost, &st); err != nil {
		return runtime.Device{}, fmt.Errorf("device %s: %w", d.PathOnHost, err)
	}
	typ := ""
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return runtime.Device{}, fmt.Errorf("device %s: not a device node", d.PathOnHost)
	}
	dst := d.PathInContainer
	if dst == "" {
		dst = d.PathOnHost
	}
	perms := d.CgroupPermissions
	if perms == "" {
		perms = "rwm"
	}
	return runtime.Device{
		Path: dst, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Permissions: perms,
	}, nil
}

// hostDevices are every device under the host's /dev, for a privileged
// container, but those the container has of its own (its terminal,
// /dev/pts, /dev/shm, /dev/mqueue) and the host's console.
func hostDevices() ([]runtime.Device, error) {
	var out []runtime.Device
	err := filepath.WalkDir("/dev", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil // a device gone while walking
		}
		if de.IsDir() {
			switch de.Name() {
			case "pts", "shm", "mqueue", "fd":
				return filepath.SkipDir
			}
			return nil
		}
		if de.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 || p == "/dev/console" || p == "/dev/ptmx" {
			return nil
		}
		d, err := hostDevice(DeviceMapping{PathOnHost: p})
		if err == nil {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the host's devices: %w", err)
	}
	return out, nil
}

// apply sets the options on a container's runtime input (the
// capabilities are ContainerSpec.caps).
func (o HostOptions) apply(in *runtime.SpecInput, initBinary string) error {
	var err error
	if in.Security, err = o.security(); err != nil {
		return err
	}
	if o.Privileged {
		if in.Devices, err = hostDevices(); err != nil {
			return err
		}
	}
	for _, d := range o.Devices {
		dev, err := hostDevice(d)
		if err != nil {
			return err
		}
		// A privileged container's host device of the same path gives
		// way to the one asked for.
		in.Devices = slices.DeleteFunc(in.Devices, func(h runtime.Device) bool { return path.Clean(h.Path) == path.Clean(dev.Path) })
		in.Devices = append(in.Devices, dev)
	}
	in.Rlimits = o.rlimits()
	in.Sysctls = o.Sysctls
	in.ShmSize = o.ShmBytes()
	if o.Init {
		if _, err := os.Stat(initBinary); initBinary == "" || err != nil {
			return fmt.Errorf("init: this hostd has no init binary (%s beside it): %v", initBinary, err)
		}
		in.Init = initBinary
	}
	return nil
}
