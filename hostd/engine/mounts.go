package engine

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// Mount types (Docker's --mount type=).
const (
	MountBind   = "bind"
	MountVolume = "volume"
	MountTmpfs  = "tmpfs"
)

// MountSpec is a mount given field by field (docker run --mount): a bind
// of a host path, a named volume, an anonymous volume (a volume with no
// Source: the engine names it at create) or a tmpfs.
type MountSpec struct {
	Type     string `yaml:"type" json:"type"`                         // bind, volume or tmpfs
	Source   string `yaml:"source,omitempty" json:"source,omitempty"` // host path (bind), volume name (volume)
	Target   string `yaml:"target" json:"target"`                     // path in the container
	ReadOnly bool   `yaml:"readOnly,omitempty" json:"readOnly,omitempty"`
	// NoCopy leaves a new volume empty instead of copying the image's
	// content at Target into it (volume-nocopy).
	NoCopy bool `yaml:"noCopy,omitempty" json:"noCopy,omitempty"`
	// TmpfsSize bounds a tmpfs in bytes (0: the kernel's default, half
	// the memory); TmpfsMode is its root's mode (0: 1777).
	TmpfsSize int64  `yaml:"tmpfsSize,omitempty" json:"tmpfsSize,omitempty"`
	TmpfsMode uint32 `yaml:"tmpfsMode,omitempty" json:"tmpfsMode,omitempty"`
}

// validate reports what is wrong with m.
func (m MountSpec) validate() error {
	if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
		return fmt.Errorf("target %q: must be an absolute path other than /", m.Target)
	}
	switch m.Type {
	case MountBind:
		if !path.IsAbs(m.Source) {
			return fmt.Errorf("bind source %q: must be an absolute host path", m.Source)
		}
	case MountVolume:
		if m.Source != "" && !volumeName.MatchString(m.Source) {
			return fmt.Errorf("volume source %q: letters, digits, _ . - only, not starting with a symbol", m.Source)
		}
	case MountTmpfs:
		if m.Source != "" {
			return fmt.Errorf("tmpfs at %s: a tmpfs has no source (got %q)", m.Target, m.Source)
		}
		if m.TmpfsSize < 0 {
			return fmt.Errorf("tmpfs at %s: size %d must be >= 0", m.Target, m.TmpfsSize)
		}
		if m.TmpfsMode > 0o7777 {
			return fmt.Errorf("tmpfs at %s: mode %o is not a file mode", m.Target, m.TmpfsMode)
		}
	default:
		return fmt.Errorf("type %q: want bind, volume or tmpfs", m.Type)
	}
	if m.Type != MountVolume && m.NoCopy {
		return fmt.Errorf("noCopy: only for volumes, not %s", m.Type)
	}
	if m.Type != MountTmpfs && (m.TmpfsSize != 0 || m.TmpfsMode != 0) {
		return fmt.Errorf("tmpfsSize/tmpfsMode: only for tmpfs, not %s", m.Type)
	}
	return nil
}

// tmpfsOptions are the tmpfs options --tmpfs takes (Docker's list less
// the SELinux and propagation ones). Options with a value are checked
// by ParseTmpfsOptions.
var tmpfsOptions = map[string]bool{
	"ro": true, "rw": true, "exec": true, "noexec": true, "suid": true, "nosuid": true, "dev": true, "nodev": true,
	"atime": true, "noatime": true, "diratime": true, "nodiratime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "sync": true, "async": true, "dirsync": true,
	"mand": true, "nomand": true,
}

// tmpfsDefaults are Docker's: a --tmpfs is nosuid,nodev,noexec unless
// its options say otherwise.
var tmpfsDefaults = []string{"nosuid", "nodev", "noexec"}

// ParseTmpfsOptions checks a --tmpfs options string (size=64m,mode=1770,
// uid=0,gid=0,nr_inodes=1k,ro,exec...) and returns the mount options,
// Docker's defaults first, sizes in bytes. An unknown option or a bad
// value is an error naming it.
func ParseTmpfsOptions(opts string) ([]string, error) {
	out := append([]string(nil), tmpfsDefaults...)
	if opts == "" {
		return out, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, hasV := strings.Cut(o, "=")
		switch {
		case !hasV && tmpfsOptions[k]:
			out = append(out, k)
		case hasV && (k == "size" || k == "nr_blocks" || k == "nr_inodes"):
			n, err := runtime.ParseMemory(v)
			if err != nil || (k != "size" && v == "") {
				return nil, fmt.Errorf("tmpfs option %q: want a number with an optional k, m or g suffix", o)
			}
			out = append(out, k+"="+strconv.FormatInt(n, 10))
		case hasV && k == "mode":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 0o7777 {
				return nil, fmt.Errorf("tmpfs option %q: want an octal file mode", o)
			}
			out = append(out, fmt.Sprintf("mode=%o", m))
		case hasV && (k == "uid" || k == "gid"):
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				return nil, fmt.Errorf("tmpfs option %q: want a number", o)
			}
			out = append(out, o)
		default:
			return nil, fmt.Errorf("tmpfs option %q: not a tmpfs option hostd implements (size, mode, uid, gid, nr_inodes, nr_blocks, ro, rw, exec, noexec, suid, nosuid, dev, nodev, atime options, sync)", o)
		}
	}
	return out, nil
}

// LogSpec is the container's log configuration (docker run --log-driver,
// --log-opt): the json-file driver and its rotation.
type LogSpec struct {
	// Driver is json-file (also ""), the only one.
	Driver string `yaml:"driver,omitempty" json:"driver,omitempty"`
	// MaxSize is the size a log file reaches before it is rotated (10m,
	// 500k; Docker's decimal units); "" for the host's default.
	MaxSize string `yaml:"maxSize,omitempty" json:"maxSize,omitempty"`
	// MaxFile is how many files (the current one and rotated ones) are
	// kept; 0 for the host's default.
	MaxFile int `yaml:"maxFile,omitempty" json:"maxFile,omitempty"`
}

// LogDriverJSONFile is the json-file log driver, hostd's.
const LogDriverJSONFile = "json-file"

// ParseLogSize parses a log size as Docker's max-size: a number with an
// optional k, m, g or t suffix (kb, KB...), in powers of 1000.
func ParseLogSize(s string) (int64, error) {
	num := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "b")
	mult := int64(1)
	for i, u := range []string{"k", "m", "g", "t"} {
		if strings.HasSuffix(num, u) {
			num = strings.TrimSuffix(num, u)
			for j := 0; j <= i; j++ {
				mult *= 1000
			}
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || n*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("log size %q: want a positive number with an optional k, m, g or t suffix", s)
	}
	return int64(n * float64(mult)), nil
}

func (l LogSpec) validate(add func(field, format string, a ...any)) {
	if l.Driver != "" && l.Driver != LogDriverJSONFile {
		add("log.driver", "%q: only json-file is implemented", l.Driver)
	}
	if l.MaxSize != "" {
		if _, err := ParseLogSize(l.MaxSize); err != nil {
			add("log.maxSize", "%v", err)
		}
	}
	if l.MaxFile < 0 {
		add("log.maxFile", "%d: must be >= 1", l.MaxFile)
	}
}

// MountPoint is one of a container's mounts whatever way it was given
// (a volumes entry, a mount, a tmpfs), as docker inspect lists them.
type MountPoint struct {
	Type        string // bind, volume or tmpfs
	Name        string // volume name
	Source      string // host path of a bind or a volume's data
	Destination string
	ReadOnly    bool
	Anonymous   bool
}

// MountPoints lists c's mounts: its spec's, then its anonymous volumes.
func (c Container) MountPoints() []MountPoint {
	var out []MountPoint
	for _, m := range c.Spec.MountPoints() {
		if m.Type != MountVolume || m.Name != "" {
			out = append(out, m) // not a volume named in AnonymousVolumes
		}
	}
	for _, m := range c.AnonymousVolumes {
		out = append(out, MountPoint{Type: MountVolume, Name: m.Source, Destination: m.Target, ReadOnly: m.ReadOnly, Anonymous: true})
	}
	return out
}

// Destinations are the container paths c mounts something on.
func (c Container) Destinations() []string { return destinations(c.MountPoints()) }

// MountPoints lists s's mounts as declared: its volumes, then its mounts
// (a volume mount with no source too, its volume not named yet), then
// its tmpfs mounts by path.
func (s ContainerSpec) MountPoints() []MountPoint {
	var out []MountPoint
	for _, vs := range s.Volumes {
		v, err := ParseVolume(vs)
		if err != nil {
			continue
		}
		if v.Named {
			out = append(out, MountPoint{Type: MountVolume, Name: v.Source, Destination: v.Destination, ReadOnly: v.ReadOnly})
		} else {
			out = append(out, MountPoint{Type: MountBind, Source: v.Source, Destination: v.Destination, ReadOnly: v.ReadOnly})
		}
	}
	for _, m := range s.Mounts {
		p := MountPoint{Type: m.Type, Destination: path.Clean(m.Target), ReadOnly: m.ReadOnly}
		switch m.Type {
		case MountBind:
			p.Source = path.Clean(m.Source)
		case MountVolume:
			p.Name = m.Source
		}
		out = append(out, p)
	}
	for _, t := range sortedPaths(s.Tmpfs) {
		opts, _ := ParseTmpfsOptions(s.Tmpfs[t])
		ro := false
		for _, o := range opts {
			ro = ro || o == "ro"
		}
		out = append(out, MountPoint{Type: MountTmpfs, Destination: path.Clean(t), ReadOnly: ro})
	}
	return out
}

// Destinations are the container paths s mounts something on, as
// declared.
func (s ContainerSpec) Destinations() []string { return destinations(s.MountPoints()) }

func destinations(ms []MountPoint) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Destination
	}
	return out
}

func sortedPaths(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// validateMounts checks s's mounts and tmpfs mounts, and that no two
// mounts share a destination.
func (s ContainerSpec) validateMounts(add func(field, format string, a ...any)) {
	for i, m := range s.Mounts {
		if err := m.validate(); err != nil {
			add(fmt.Sprintf("mounts[%d]", i), "%v", err)
		}
	}
	for _, t := range sortedPaths(s.Tmpfs) {
		if !path.IsAbs(t) || path.Clean(t) == "/" {
			add("tmpfs", "%q: the container path must be absolute and not /", t)
		}
		if _, err := ParseTmpfsOptions(s.Tmpfs[t]); err != nil {
			add("tmpfs."+t, "%v", err)
		}
	}
	for i, p := range s.AnonymousVolumes {
		if !path.IsAbs(p) || path.Clean(p) == "/" {
			add(fmt.Sprintf("anonymousVolumes[%d]", i), "%q: the container path must be absolute and not /", p)
		}
	}
	seen := map[string]bool{}
	for _, d := range s.Destinations() {
		if seen[d] {
			add("mounts", "duplicate mount point: %s", d)
		}
		seen[d] = true
	}
}
