package engine

import (
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// ContainerSpec is a declared container: the schema of
// /etc/hostd/containers/<name>.yaml (and of cloud-config's
// bulkhead.containers items) and the body of POST /v1/containers.
type ContainerSpec struct {
	Name        string       `yaml:"name" json:"name"`
	Image       string       `yaml:"image" json:"image"`
	Command     []string     `yaml:"command,omitempty" json:"command,omitempty"`
	Entrypoint  []string     `yaml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
	Env         Env          `yaml:"env,omitempty" json:"env,omitempty"`
	Ports       []string     `yaml:"ports,omitempty" json:"ports,omitempty"`     // [ip:]hostPort:containerPort[/tcp|udp]
	Volumes     []string     `yaml:"volumes,omitempty" json:"volumes,omitempty"` // /host/path:/path[:ro] or name:/path[:ro]
	Workdir     string       `yaml:"workdir,omitempty" json:"workdir,omitempty"`
	User        string       `yaml:"user,omitempty" json:"user,omitempty"` // user[:group], names or numbers
	Restart     string       `yaml:"restart,omitempty" json:"restart,omitempty"`
	Healthcheck *Healthcheck `yaml:"healthcheck,omitempty" json:"healthcheck,omitempty"`
	Limits      Limits       `yaml:"limits,omitempty" json:"limits,omitempty"`
	ReadOnly    bool         `yaml:"readOnly,omitempty" json:"readOnly,omitempty"`
	Network     string       `yaml:"network,omitempty" json:"network,omitempty"` // bridge (default), host, none or a user-defined network
	// Networks are the user-defined networks the container is on (its
	// Network and those connected later), with its aliases on each.
	Networks map[string]EndpointSpec `yaml:"networks,omitempty" json:"networks,omitempty"`
	Hostname string                  `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	// PublishAll publishes every exposed port (the image's EXPOSE and
	// Expose) on a random host port (docker run -P).
	PublishAll bool `yaml:"publishAll,omitempty" json:"publishAll,omitempty"`
	// Expose adds ports (80, 53/udp) to the image's exposed ones.
	Expose []string `yaml:"expose,omitempty" json:"expose,omitempty"`
	// AutoRemove deletes the container when it exits (docker run --rm).
	AutoRemove bool `yaml:"-" json:"autoRemove,omitempty"`
	// OpenStdin gives the main process a stdin that clients attach to
	// (docker run -i); the shim holds it, so it outlives a hostd restart.
	OpenStdin bool `yaml:"-" json:"openStdin,omitempty"`
	// StdinOnce closes that stdin when the first attached client's input
	// ends (docker run -i without -d), so `cat` sees EOF.
	StdinOnce bool `yaml:"-" json:"stdinOnce,omitempty"`
	// Tty gives the main process a terminal (docker run -t); its output,
	// both streams, is logged as stdout.
	Tty bool `yaml:"-" json:"tty,omitempty"`
	// Labels are the user's key/value metadata (docker run --label,
	// compose's project labels), returned by inspect and matched by the
	// Docker API's label filter.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Mounts are binds, volumes and tmpfs mounts given field by field
	// (docker run --mount); a volume with no source is anonymous.
	Mounts []MountSpec `yaml:"mounts,omitempty" json:"mounts,omitempty"`
	// Tmpfs are tmpfs mounts: container path -> options (size=64m,mode=1777;
	// docker run --tmpfs), nosuid,nodev,noexec unless the options say otherwise.
	Tmpfs map[string]string `yaml:"tmpfs,omitempty" json:"tmpfs,omitempty"`
	// AnonymousVolumes are container paths each given a new volume with
	// a random name at create (docker run -v /data); the image's VOLUME
	// paths that nothing else mounts get one too.
	AnonymousVolumes []string `yaml:"anonymousVolumes,omitempty" json:"anonymousVolumes,omitempty"`
	// Log is the log driver and its rotation (--log-opt max-size, max-file).
	Log LogSpec `yaml:"log,omitempty" json:"log,omitempty"`
	// ProcessOptions: capabilities, stop signal, resolver, extra hosts.
	ProcessOptions `yaml:",inline"`
	// HostOptions: privileged, security options, devices, ulimits,
	// sysctls, /dev/shm size, init.
	HostOptions `yaml:",inline"`
}

// Healthcheck is an exec probe.
type Healthcheck struct {
	Command     Command  `yaml:"command" json:"command"`
	Interval    Duration `yaml:"interval,omitempty" json:"interval,omitempty"`       // default 30s
	Retries     int      `yaml:"retries,omitempty" json:"retries,omitempty"`         // default 3
	Timeout     Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`         // default 30s
	StartPeriod Duration `yaml:"startPeriod,omitempty" json:"startPeriod,omitempty"` // failures then do not count
}

// Limits are resource limits.
type Limits struct {
	Memory string  `yaml:"memory,omitempty" json:"memory,omitempty"` // 512m, 1g
	CPUs   float64 `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	Pids   int64   `yaml:"pids,omitempty" json:"pids,omitempty"`
	// MemorySwap is memory plus swap (--memory-swap), -1 for unlimited
	// swap; empty: no swap.
	MemorySwap string `yaml:"memorySwap,omitempty" json:"memorySwap,omitempty"`
	// MemoryReservation is the soft limit (--memory-reservation).
	MemoryReservation string `yaml:"memoryReservation,omitempty" json:"memoryReservation,omitempty"`
	// CPUShares is the relative CPU weight (--cpu-shares, 1024 Docker's
	// neutral value).
	CPUShares int64 `yaml:"cpuShares,omitempty" json:"cpuShares,omitempty"`
	// CPUQuota and CPUPeriod are raw CFS microseconds (--cpu-quota,
	// --cpu-period), not with CPUs.
	CPUQuota  int64 `yaml:"cpuQuota,omitempty" json:"cpuQuota,omitempty"`
	CPUPeriod int64 `yaml:"cpuPeriod,omitempty" json:"cpuPeriod,omitempty"`
	// CpusetCpus and CpusetMems pin the container (0-1,3).
	CpusetCpus string `yaml:"cpusetCpus,omitempty" json:"cpusetCpus,omitempty"`
	CpusetMems string `yaml:"cpusetMems,omitempty" json:"cpusetMems,omitempty"`
}

// Env is KEY=VALUE pairs; YAML may give a map or a list.
type Env []string

// UnmarshalYAML accepts {KEY: value} (sorted by key) or [KEY=value].
func (e *Env) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		m := map[string]string{}
		if err := n.Decode(&m); err != nil {
			return err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			*e = append(*e, k+"="+m[k])
		}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*e = l
	return nil
}

// Command is an argv; YAML may give a string, run with /bin/sh -c as
// Docker's CMD-SHELL.
type Command []string

// UnmarshalYAML accepts a list or a shell string.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = Command{"/bin/sh", "-c", n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*c = l
	return nil
}

// Duration is a time.Duration written as "30s" in YAML and JSON.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Restart policy names (Docker's).
const (
	RestartNo            = "no"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
	RestartOnFailure     = "on-failure"
)

// RestartPolicy is a parsed restart string.
type RestartPolicy struct {
	Name       string
	MaxRetries int // on-failure:N; 0 for no limit
}

// ParseRestart parses no, always, unless-stopped, on-failure[:N].
func ParseRestart(s string) (RestartPolicy, error) {
	name, n, hasN := strings.Cut(s, ":")
	switch name {
	case "", RestartNo:
		return RestartPolicy{Name: RestartNo}, nil
	case RestartAlways, RestartUnlessStopped:
		if hasN {
			return RestartPolicy{}, fmt.Errorf("restart %q: only on-failure takes a count", s)
		}
		return RestartPolicy{Name: name}, nil
	case RestartOnFailure:
		p := RestartPolicy{Name: name}
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return RestartPolicy{}, fmt.Errorf("restart %q: count must be a number >= 0", s)
			}
			p.MaxRetries = v
		}
		return p, nil
	}
	return RestartPolicy{}, fmt.Errorf("restart %q: want no, always, unless-stopped or on-failure[:N]", s)
}

// Port is a parsed published port.
type Port struct {
	HostIP        string `json:"hostIp,omitempty"` // "" for all addresses
	HostPort      int    `json:"hostPort"`         // 0: a free one is picked at start
	ContainerPort int    `json:"containerPort"`
	Proto         string `json:"proto"` // tcp or udp
}

// ParsePort parses [ip:][hostPort:]containerPort[/proto]; an empty or 0
// host port (80, 127.0.0.1::80, 0:80) means a free ephemeral port picked
// when the container starts, as Docker's -p 80 does.
func ParsePort(s string) (Port, error) {
	p := Port{Proto: "tcp"}
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("port %q: protocol must be tcp or udp", s)
		}
		p.Proto = proto
	}
	parts := strings.Split(spec, ":")
	if len(parts) == 3 {
		if net.ParseIP(parts[0]) == nil {
			return p, fmt.Errorf("port %q: %q is not an IP address", s, parts[0])
		}
		p.HostIP, parts = parts[0], parts[1:]
	}
	if len(parts) == 1 {
		parts = []string{"", parts[0]}
	}
	if len(parts) != 2 {
		return p, fmt.Errorf("port %q: want [ip:][hostPort:]containerPort[/tcp|udp]", s)
	}
	var err1, err2 error
	if parts[0] != "" {
		p.HostPort, err1 = strconv.Atoi(parts[0])
	}
	p.ContainerPort, err2 = strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || p.HostPort < 0 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
		return p, fmt.Errorf("port %q: ports must be numbers from 1 to 65535 (host port 0 or empty for a free one)", s)
	}
	return p, nil
}

// ParseExpose parses an exposed port: 80, 80/tcp, 53/udp (the image
// config's ExposedPorts keys).
func ParseExpose(s string) (Port, error) {
	num, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp") {
		return Port{}, fmt.Errorf("exposed port %q: want PORT[/tcp|udp], PORT from 1 to 65535", s)
	}
	return Port{ContainerPort: n, Proto: proto}, nil
}

// Volume is a parsed volume.
type Volume struct {
	Source      string // absolute host path, or a volume name
	Named       bool
	Destination string
	ReadOnly    bool
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ParseVolume parses /host:/ctr[:ro|rw] or name:/ctr[:ro|rw].
func ParseVolume(s string) (Volume, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Volume{}, fmt.Errorf("volume %q: want source:/path[:ro]", s)
	}
	v := Volume{Source: parts[0], Destination: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			v.ReadOnly = true
		case "rw":
		default:
			return Volume{}, fmt.Errorf("volume %q: mode must be ro or rw", s)
		}
	}
	if !path.IsAbs(v.Destination) || path.Clean(v.Destination) == "/" {
		return Volume{}, fmt.Errorf("volume %q: the container path must be absolute and not /", s)
	}
	v.Destination = path.Clean(v.Destination)
	switch {
	case path.IsAbs(v.Source):
		v.Source = path.Clean(v.Source)
	case volumeName.MatchString(v.Source):
		v.Named = true
	default:
		return Volume{}, fmt.Errorf("volume %q: source must be an absolute path or a volume name", s)
	}
	return v, nil
}

var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Validate reports every problem in s, each prefixed with its field path.
func (s ContainerSpec) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if s.Name != "" && !containerName.MatchString(s.Name) {
		add("name", "%q: letters, digits, _ . - only, not starting with a symbol", s.Name)
	}
	if s.Image == "" {
		add("image", "required")
	}
	for i, e := range s.Env {
		if k, _, _ := strings.Cut(e, "="); k == "" {
			add(fmt.Sprintf("env[%d]", i), "%q has no name", e)
		}
	}
	for i, p := range s.Ports {
		if _, err := ParsePort(p); err != nil {
			add(fmt.Sprintf("ports[%d]", i), "%v", err)
		}
	}
	for i, v := range s.Volumes {
		if _, err := ParseVolume(v); err != nil {
			add(fmt.Sprintf("volumes[%d]", i), "%v", err)
		}
	}
	s.validateMounts(add)
	s.Log.validate(add)
	if s.Workdir != "" && !path.IsAbs(s.Workdir) {
		add("workdir", "%q must be absolute", s.Workdir)
	}
	if _, err := ParseRestart(s.Restart); err != nil {
		add("restart", "%v", err)
	}
	if h := s.Healthcheck; h != nil {
		if len(h.Command) == 0 {
			add("healthcheck.command", "required")
		}
		if h.Retries < 0 {
			add("healthcheck.retries", "must be >= 0")
		}
		if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 {
			add("healthcheck", "durations must be >= 0")
		}
	}
	if m, err := runtime.ParseMemory(s.Limits.Memory); err != nil {
		add("limits.memory", "%v", err)
	} else if m > 0 && m < MinMemory {
		// dockerd's floor and words: a smaller cgroup cannot hold a process.
		add("limits.memory", "%s: Minimum memory limit allowed is 6MB", s.Limits.Memory)
	}
	if s.Limits.CPUs < 0 {
		add("limits.cpus", "must be >= 0")
	}
	if s.Limits.Pids < 0 {
		add("limits.pids", "must be >= 0")
	}
	switch s.Network {
	case "", NetworkBridge, runtime.NetworkHost, runtime.NetworkNone:
	default:
		if !containerName.MatchString(s.Network) {
			add("network", "%q: want bridge, host, none or a user-defined network's name", s.Network)
		}
	}
	for n, ep := range s.Networks {
		if !containerName.MatchString(n) {
			add("networks", "%q: not a network name", n)
		}
		for _, a := range ep.Aliases {
			if !dnsName(a) {
				add("networks."+n+".aliases", "%q: not a DNS name", a)
			}
		}
	}
	for i, x := range s.Expose {
		if _, err := ParseExpose(x); err != nil {
			add(fmt.Sprintf("expose[%d]", i), "%v", err)
		}
	}
	if (len(s.Ports) > 0 || s.PublishAll) && (s.Network == runtime.NetworkHost || s.Network == runtime.NetworkNone) {
		add("ports", "published ports need a bridge network")
	}
	if s.StdinOnce && !s.OpenStdin {
		add("stdinOnce", "needs openStdin")
	}
	s.validateProcess(add)
	s.validateHost(add)
	return errors.Join(errs...)
}

// MinMemory is the smallest memory limit a container may have (dockerd's).
const MinMemory = 6 << 20

// NetworkBridge is the default network: the hostd0 bridge with NAT.
const NetworkBridge = "bridge"
