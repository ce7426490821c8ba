package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Under systemd with cgroup v2 a container is a scope in hostd.slice (the
// QEMU test checks /proc/PID/cgroup says so); elsewhere hostd/<id>; a
// container from before scopes keeps its cgroupfs directory.
func TestCgroupLayout(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("sys/fs/cgroup")
	e := &Engine{cfg: Config{HostRoot: fsroot.Root(root)}}
	e.cgroups = detectCgroups(e.cfg.HostRoot)
	if e.cgroups.systemd || e.cgroups.specPath("c1") != "/hostd/c1" || e.cgroupDir("c1") != "hostd/c1" {
		t.Errorf("no systemd, no v2: %+v %s %s", e.cgroups, e.cgroups.specPath("c1"), e.cgroupDir("c1"))
	}
	if err := os.WriteFile(filepath.Join(root, "sys/fs/cgroup/cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk("run/systemd/system")
	e.cgroups = detectCgroups(e.cfg.HostRoot)
	if !e.cgroups.systemd || e.cgroups.specPath("c1") != "hostd.slice:hostd:c1" || e.cgroupDir("c1") != "hostd.slice/hostd-c1.scope" {
		t.Errorf("systemd and v2: %+v %s %s", e.cgroups, e.cgroups.specPath("c1"), e.cgroupDir("c1"))
	}
	mk("sys/fs/cgroup/hostd/old")
	if got := e.cgroupDir("old"); got != "hostd/old" {
		t.Errorf("a container started before scopes: %s, want hostd/old", got)
	}
}
