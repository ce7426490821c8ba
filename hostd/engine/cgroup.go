package engine

import (
	"os"
	"path/filepath"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Where containers' cgroups live. Under systemd with the unified hierarchy
// (Bulkhead's guest) each container is a transient scope,
// hostd.slice/hostd-<id>.scope, that systemd creates with Delegate=yes for
// the runtime: the subtree is systemd's to account and ours to configure,
// and systemd never moves or trims it. Scopes outlive a hostd restart as
// the shims do, and have no default dependencies, so shutdown leaves them
// to hostd's graceful stop. Elsewhere (no systemd, or cgroup v1, as in
// host tests) the runtime writes /sys/fs/cgroup/[controller/]hostd/<id>
// itself.
const (
	containerSlice = "hostd.slice"
	scopePrefix    = "hostd"
	cgroupfsParent = "hostd"
)

// cgroupLayout is the choice made once when the engine starts.
type cgroupLayout struct {
	systemd bool
}

// detectCgroups picks systemd scopes when systemd is the host's init (its
// /run/systemd/system, as sd_booted checks) and cgroup v2 is mounted.
func detectCgroups(root fsroot.Root) cgroupLayout {
	_, v2 := os.Stat(root.Join("sys/fs/cgroup/cgroup.controllers"))
	_, sd := os.Stat(root.Join("run/systemd/system"))
	return cgroupLayout{systemd: v2 == nil && sd == nil}
}

// specPath is the OCI spec's cgroupsPath for container id: runc's
// "slice:prefix:name" form for systemd, a path for cgroupfs.
func (l cgroupLayout) specPath(id string) string {
	if l.systemd {
		return containerSlice + ":" + scopePrefix + ":" + id
	}
	return "/" + cgroupfsParent + "/" + id
}

// cgroupDir is container id's cgroup relative to a v2 mount, or to each
// v1 controller's mount. A container started by a hostd from before scopes
// (re-attached after an upgrade) keeps its cgroupfs directory until it
// restarts.
func (e *Engine) cgroupDir(id string) string {
	fs := filepath.Join(cgroupfsParent, id)
	if !e.cgroups.systemd {
		return fs
	}
	scope := filepath.Join(containerSlice, scopePrefix+"-"+id+".scope")
	cg := e.cfg.HostRoot.Join("sys/fs/cgroup")
	if _, err := os.Stat(filepath.Join(cg, scope)); err != nil {
		if _, err := os.Stat(filepath.Join(cg, fs)); err == nil {
			return fs
		}
	}
	return scope
}

// CgroupDriver is /info's name for the layout: "systemd" (scopes) or
// "cgroupfs".
func (e *Engine) CgroupDriver() string {
	if e.cgroups.systemd {
		return "systemd"
	}
	return "cgroupfs"
}
