package dockerapi

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

// mountBody is one HostConfig.Mounts item (docker run --mount).
type mountBody struct {
	Type        string
	Source      string
	Target      string
	ReadOnly    bool
	Consistency string // macOS only; dockerd ignores it on Linux
	BindOptions *struct {
		Propagation  string
		NonRecursive bool
	}
	VolumeOptions *struct {
		NoCopy       bool
		Labels       map[string]string
		DriverConfig *struct {
			Name    string
			Options map[string]string
		}
	}
	TmpfsOptions *struct {
		SizeBytes int64
		Mode      uint32
	}
}

// logOpts are the --log-opt keys of the json-file driver hostd implements.
var logOpts = map[string]bool{"max-size": true, "max-file": true}

// storage maps the create body's mounts, tmpfs mounts, anonymous volumes
// and log configuration onto s, refusing by name the options hostd does
// not implement.
func (b createBody) storage(s *engine.ContainerSpec) error {
	var refused []string
	for i, m := range b.HostConfig.Mounts {
		at := fmt.Sprintf("HostConfig.Mounts[%d].", i)
		ms := engine.MountSpec{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type != engine.MountBind && m.Type != engine.MountVolume && m.Type != engine.MountTmpfs {
			refused = append(refused, fmt.Sprintf("%sType %q (--mount type=)", at, m.Type))
			continue
		}
		if o := m.BindOptions; o != nil {
			if o.Propagation != "" {
				refused = append(refused, at+"BindOptions.Propagation (--mount bind-propagation)")
			}
			if o.NonRecursive {
				refused = append(refused, at+"BindOptions.NonRecursive (--mount bind-nonrecursive)")
			}
		}
		if o := m.VolumeOptions; o != nil {
			ms.NoCopy = o.NoCopy
			if len(o.Labels) > 0 {
				refused = append(refused, at+"VolumeOptions.Labels (--mount volume-label)")
			}
			if d := o.DriverConfig; d != nil {
				if d.Name != "" && d.Name != "local" {
					refused = append(refused, at+"VolumeOptions.DriverConfig.Name (--mount volume-driver)")
				}
				if len(d.Options) > 0 {
					refused = append(refused, at+"VolumeOptions.DriverConfig.Options (--mount volume-opt)")
				}
			}
		}
		if o := m.TmpfsOptions; o != nil {
			ms.TmpfsSize, ms.TmpfsMode = o.SizeBytes, o.Mode&0o7777
		}
		s.Mounts = append(s.Mounts, ms)
	}
	if len(b.HostConfig.Tmpfs) > 0 {
		s.Tmpfs = b.HostConfig.Tmpfs
	}
	s.AnonymousVolumes = sortedKeys(b.Volumes)
	lc := b.HostConfig.LogConfig
	switch lc.Type {
	case "", engine.LogDriverJSONFile:
	default:
		refused = append(refused, fmt.Sprintf("HostConfig.LogConfig.Type %q (--log-driver; hostd has json-file only)", lc.Type))
	}
	for _, k := range sortedKeys(lc.Config) {
		v := lc.Config[k]
		switch {
		case !logOpts[k]:
			refused = append(refused, fmt.Sprintf("HostConfig.LogConfig.Config.%s (--log-opt %s)", k, k))
		case k == "max-size":
			if _, err := engine.ParseLogSize(v); err != nil {
				return fmt.Errorf("--log-opt max-size=%s: %w", v, err)
			}
			s.Log.MaxSize = v
		case k == "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("--log-opt max-file=%s: want a number >= 1", v)
			}
			s.Log.MaxFile = n
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("unsupported container option: %s: hostd does not implement it; remove it to create the container", strings.Join(refused, ", "))
	}
	s.Log.Driver = lc.Type
	return nil
}

// createVolumes makes the named volumes spec mounts and checks that its
// --mount binds' sources exist, when the container is created, as
// dockerd does (-v binds make a missing source at start instead).
func (a *API) createVolumes(spec engine.ContainerSpec) error {
	for _, m := range spec.MountPoints() {
		if m.Type == engine.MountVolume && m.Name != "" {
			if _, err := a.E.CreateVolume(m.Name, nil); err != nil {
				return err
			}
		}
	}
	for _, m := range spec.Mounts {
		if m.Type != engine.MountBind {
			continue
		}
		if _, err := os.Stat(m.Source); err != nil {
			return badRequest("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
		}
	}
	return nil
}

// logConfigJSON is inspect's HostConfig.LogConfig.
func logConfigJSON(l engine.LogSpec) map[string]any {
	cfg := map[string]string{}
	if l.MaxSize != "" {
		cfg["max-size"] = l.MaxSize
	}
	if l.MaxFile > 0 {
		cfg["max-file"] = strconv.Itoa(l.MaxFile)
	}
	return map[string]any{"Type": engine.LogDriverJSONFile, "Config": cfg}
}

// hostMountsJSON is inspect's HostConfig.Mounts: the --mount items as
// given.
func hostMountsJSON(ms []engine.MountSpec) []map[string]any {
	var out []map[string]any
	for _, m := range ms {
		item := map[string]any{"Type": m.Type, "Target": m.Target}
		if m.Source != "" {
			item["Source"] = m.Source
		}
		if m.ReadOnly {
			item["ReadOnly"] = true
		}
		switch {
		case m.NoCopy:
			item["VolumeOptions"] = map[string]any{"NoCopy": true}
		case m.Type == engine.MountTmpfs && (m.TmpfsSize != 0 || m.TmpfsMode != 0):
			item["TmpfsOptions"] = map[string]any{"SizeBytes": m.TmpfsSize, "Mode": m.TmpfsMode}
		}
		out = append(out, item)
	}
	return out
}

// configVolumes is inspect's Config.Volumes: the anonymous volumes' paths.
func configVolumes(s engine.ContainerSpec) map[string]struct{} {
	if len(s.AnonymousVolumes) == 0 {
		return nil
	}
	out := map[string]struct{}{}
	for _, p := range s.AnonymousVolumes {
		out[p] = struct{}{}
	}
	return out
}

// mountsJSON is Docker's MountPoint list for c's volumes, binds and
// tmpfs mounts; volumePath gives a volume's host directory (Source).
func mountsJSON(c engine.Container, volumePath func(string) string) []map[string]any {
	out := []map[string]any{}
	tmpfs := map[string]bool{}
	for p := range c.Spec.Tmpfs {
		tmpfs[path.Clean(p)] = true
	}
	for _, m := range c.MountPoints() {
		if m.Type == engine.MountTmpfs && tmpfs[m.Destination] {
			continue // --tmpfs mounts are only in HostConfig.Tmpfs, as dockerd shows them
		}
		var item map[string]any
		switch m.Type {
		case engine.MountVolume:
			item = map[string]any{"Type": "volume", "Name": m.Name, "Source": volumePath(m.Name), "Driver": "local", "Mode": "z", "Propagation": ""}
		case engine.MountBind:
			item = map[string]any{"Type": "bind", "Source": m.Source, "Mode": "", "Propagation": "rprivate"}
		default:
			item = map[string]any{"Type": m.Type, "Source": "", "Mode": "", "Propagation": ""}
		}
		item["Destination"], item["RW"] = m.Destination, !m.ReadOnly
		out = append(out, item)
	}
	return out
}
