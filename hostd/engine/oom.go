package engine

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// oomKills is the kernel's count of OOM kills in container id's cgroup:
// oom_kill in memory.events (v2) or in memory.oom_control (v1); 0 when
// the cgroup is gone or the kernel does not count them.
func (e *Engine) oomKills(id string) int {
	cg := e.cfg.HostRoot.Join("sys/fs/cgroup")
	rel := e.cgroupDir(id)
	for _, p := range []string{
		filepath.Join(cg, rel, "memory.events"),
		filepath.Join(cg, "memory", rel, "memory.oom_control"),
	} {
		if n, ok := readCounter(p, "oom_kill"); ok {
			return n
		}
	}
	return 0
}

// readCounter reads "key N" from a cgroup file of such lines.
func readCounter(path, key string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), " "); ok && k == key {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}

// watchOOM notes in l an OOM kill in container id's cgroup as it happens.
// Under systemd a container's scope, and its memory.events, is gone soon
// after its last process: what exited reads then may already be lost. The
// kernel signals a change of memory.events (cgroup v2) as a file
// modification, so an inotify watch sees it while the cgroup exists. On
// cgroup v1 (no memory.events) exited's own read is enough: hostd removes
// those cgroups itself, after reading.
func (e *Engine) watchOOM(id string, l *liveState) {
	events := filepath.Join(e.cfg.HostRoot.Join("sys/fs/cgroup"), e.cgroupDir(id), "memory.events")
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return
	}
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return
	}
	// Non-blocking, so reads wait in Go's poller, not on a thread.
	f := os.NewFile(uintptr(fd), "inotify:"+events)
	go func() {
		<-l.exited
		f.Close()
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			if n, _ := readCounter(events, "oom_kill"); n > 0 {
				l.oomKilled.Store(true)
				return
			}
			// Any event (a change, or IN_IGNORED when the cgroup goes)
			// or an error (closed at exit) ends this wait.
			if _, err := f.Read(buf); err != nil {
				return
			}
		}
	}()
}
