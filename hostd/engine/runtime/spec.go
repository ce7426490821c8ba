package runtime

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mount is a bind mount of a host path (a volume, /etc/hosts...) into the
// container, or a tmpfs.
type Mount struct {
	Source      string // host path; unused for a tmpfs
	Destination string // path in the container
	ReadOnly    bool
	// Tmpfs makes the mount a tmpfs with Options (nosuid, size=...).
	Tmpfs   bool
	Options []string
}

// Limits are the cgroup limits; zero means unlimited (or the kernel's
// default).
type Limits struct {
	MemoryBytes int64
	CPUs        float64 // 1.5 = one and a half CPUs (CFS quota over a 100 ms period)
	Pids        int64
	// MemorySwap is memory plus swap (--memory-swap): 0 is MemoryBytes
	// (no swap), -1 unlimited swap.
	MemorySwap int64
	// MemoryReservation is the soft limit (--memory-reservation).
	MemoryReservation int64
	// CPUShares is the relative weight (--cpu-shares; libcontainer turns
	// it into a cgroup v2 weight itself).
	CPUShares uint64
	// CPUQuota and CPUPeriod are the raw CFS values in microseconds
	// (--cpu-quota, --cpu-period), for a container without CPUs.
	CPUQuota  int64
	CPUPeriod uint64
	// CpusetCpus and CpusetMems pin the container (0-1,3).
	CpusetCpus, CpusetMems string
}

// Network modes.
const (
	NetworkNone = "none" // own namespace with loopback only
	NetworkHost = "host" // the host's namespace
)

// SpecInput is everything BuildSpec needs about one container.
type SpecInput struct {
	ID       string
	Rootfs   string // absolute path of the mounted snapshot
	Args     []string
	Env      []string
	Cwd      string
	UID, GID uint32
	Groups   []uint32
	Hostname string
	ReadOnly bool // read-only root filesystem
	// Network is NetworkNone, NetworkHost, or the path of a network
	// namespace to join (/run/netns/...) for a bridged container.
	Network string
	Mounts  []Mount
	Limits  Limits
	// CgroupsPath is the container's cgroup: a path ("/hostd/<id>" ->
	// /sys/fs/cgroup/[controller/]hostd/<id>) or, for a systemd scope,
	// runc's "slice:prefix:name" (default "/hostd/<ID>").
	CgroupsPath string
	// Seccomp applies the default profile (needs a build with -tags seccomp).
	Seccomp bool
	// Terminal gives the process a pseudo-terminal (docker run -t): its
	// output, both streams, comes from the terminal's master.
	Terminal bool
	// OOMScoreAdj is the container's oom_score_adj. It is always set
	// (0 by default): inherited, it would be hostd's, which systemd lowers
	// so the kernel kills sshd before a runaway container.
	OOMScoreAdj int
	// Caps is the capability set (CAP_ names); nil is DefaultCaps.
	Caps []string
	// Security: privileged mode, no_new_privs, seccomp (see security.go).
	Security Security
	// Devices are host devices made in the container's /dev and allowed
	// in its device cgroup (--device, or all of them when privileged).
	Devices []Device
	// Rlimits are the process's resource limits (--ulimit); none keeps
	// hostd's own.
	Rlimits []specs.POSIXRlimit
	// Sysctls are set in the container's namespaces (--sysctl).
	Sysctls map[string]string
	// ShmSize is /dev/shm's size in bytes; 0 is 64 MiB (Docker's).
	ShmSize int64
	// Init is the host path of an init (docker run --init), mounted at
	// InitPath, which runs Args as its child.
	Init string
}

// DefaultCaps is Docker's default capability set: enough for ordinary
// images (chown, setuid to a service user, bind low ports), without
// CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_NET_ADMIN, CAP_SYS_PTRACE...
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// maskedPaths and readonlyPaths are the OCI/Docker defaults: kernel
// interfaces a container must not read (keys, timers) or change (sysctl).
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// cfsPeriod is the CFS period for CPU limits (the kernel's default, 100 ms).
const cfsPeriod = 100000

// BuildSpec returns the OCI runtime spec for a container. Without Seccomp
// it is pure: the same input gives the same spec (golden-tested); Docker's
// seccomp profile also depends on the running kernel's version.
func BuildSpec(in SpecInput) (*specs.Spec, error) {
	if in.ID == "" || !filepath.IsAbs(in.Rootfs) || len(in.Args) == 0 {
		return nil, fmt.Errorf("building spec: need an id, an absolute rootfs and a command (got %q, %q, %q)", in.ID, in.Rootfs, in.Args)
	}
	cwd := in.Cwd
	if cwd == "" {
		cwd = "/"
	}
	bounding := DefaultCaps
	if in.Caps != nil {
		bounding = in.Caps
	}
	caps := append([]string(nil), bounding...)
	if in.UID != 0 {
		// A non-root user gets no effective capabilities, as with Docker.
		caps = nil
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: in.Hostname,
		Root:     &specs.Root{Path: in.Rootfs, Readonly: in.ReadOnly},
		Process: &specs.Process{
			Args: in.Args,
			Env:  in.Env,
			Cwd:  cwd,
			User: specs.User{UID: in.UID, GID: in.GID, AdditionalGids: in.Groups},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: bounding, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: !in.Security.AllowNewPrivileges,
			Terminal:        in.Terminal,
			OOMScoreAdj:     &in.OOMScoreAdj,
			// Without --ulimit the container inherits hostd's limits
			// (systemd's LimitNOFILE on the unit), as with runc and Docker.
			Rlimits: in.Rlimits,
		},
		Mounts: baseMounts(in.ShmSize),
		Linux: &specs.Linux{
			CgroupsPath:   orDefault(in.CgroupsPath, "/hostd/"+in.ID),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Sysctl: in.Sysctls,
		},
	}
	addDevices(s, in.Devices)
	if in.Init != "" {
		s.Process.Args = append([]string{InitPath, "--"}, in.Args...)
		s.Mounts = append(s.Mounts, specs.Mount{Destination: InitPath, Type: "bind", Source: in.Init, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	for _, m := range in.Mounts {
		if m.Tmpfs {
			opts := append([]string(nil), m.Options...)
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
			continue
		}
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	ns := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace}}
	switch in.Network {
	case NetworkHost:
		// Sharing the host's network also means sharing its hostname:
		// no UTS namespace, as with Docker's --network host.
		ns = slicesDelete(ns, specs.UTSNamespace)
		s.Hostname = ""
	case NetworkNone, "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.Network})
	}
	s.Linux.Namespaces = ns
	in.Limits.apply(s.Linux.Resources)
	if in.Security.Privileged {
		privileged(s)
	}
	p, err := in.seccomp(s)
	if err != nil {
		return nil, err
	}
	s.Linux.Seccomp = p
	return s, nil
}

// apply sets the cgroup resources of l on r.
func (l Limits) apply(r *specs.LinuxResources) {
	if l.MemoryBytes > 0 || l.MemoryReservation > 0 {
		r.Memory = &specs.LinuxMemory{}
	}
	if l.MemoryBytes > 0 {
		m, swap := l.MemoryBytes, l.MemoryBytes
		if l.MemorySwap != 0 {
			swap = l.MemorySwap
		}
		r.Memory.Limit, r.Memory.Swap = &m, &swap
	}
	if l.MemoryReservation > 0 {
		res := l.MemoryReservation
		r.Memory.Reservation = &res
	}
	cpu := &specs.LinuxCPU{Cpus: l.CpusetCpus, Mems: l.CpusetMems}
	if l.CPUs > 0 {
		q := int64(l.CPUs * cfsPeriod)
		p := uint64(cfsPeriod)
		cpu.Quota, cpu.Period = &q, &p
	}
	if l.CPUQuota != 0 {
		q := l.CPUQuota
		cpu.Quota = &q
	}
	if l.CPUPeriod != 0 {
		p := l.CPUPeriod
		cpu.Period = &p
	}
	if l.CPUShares != 0 {
		sh := l.CPUShares
		cpu.Shares = &sh
	}
	if *cpu != (specs.LinuxCPU{}) {
		r.CPU = cpu
	}
	if l.Pids > 0 {
		p := l.Pids
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
}

// Resources are l as cgroup resources, the ones BuildSpec gives a new
// container: what Runtime.Update applies to a running one (docker update).
// A limit left out is not changed.
func (l Limits) Resources() *specs.LinuxResources {
	r := &specs.LinuxResources{}
	l.apply(r)
	return r
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func slicesDelete(ns []specs.LinuxNamespace, t specs.LinuxNamespaceType) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	for _, n := range ns {
		if n.Type != t {
			out = append(out, n)
		}
	}
	return out
}

// baseMounts are the pseudo filesystems every container has (the set runc's
// `runc spec` writes). With the host's network, libcontainer falls back to
// binding /sys when sysfs cannot be mounted.
func baseMounts(shmSize int64) []specs.Mount {
	shm := "size=65536k"
	if shmSize > 0 {
		shm = fmt.Sprintf("size=%dk", (shmSize+1023)/1024)
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", shm}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// ParseMemory parses Docker-style sizes: 512m, 1g, 1048576, 64k.
func ParseMemory(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	num := strings.ToLower(strings.TrimSpace(s))
	num = strings.TrimSuffix(num, "b")
	switch {
	case strings.HasSuffix(num, "k"):
		mult, num = 1<<10, strings.TrimSuffix(num, "k")
	case strings.HasSuffix(num, "m"):
		mult, num = 1<<20, strings.TrimSuffix(num, "m")
	case strings.HasSuffix(num, "g"):
		mult, num = 1<<30, strings.TrimSuffix(num, "g")
	}
	var n int64
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != num {
		return 0, fmt.Errorf("parsing size %q: want a number with an optional k, m or g suffix", s)
	}
	return n * mult, nil
}
