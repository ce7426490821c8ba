package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats is a sample of a running container's cgroup counters (docker
// stats), read from cgroup v2 or, where that is not mounted, v1.
type Stats struct {
	Read        time.Time
	CPUNanos    uint64            // CPU time used, all CPUs
	SystemNanos uint64            // host CPU time since boot (/proc/stat), all CPUs
	MemoryUsage uint64            // bytes
	MemoryLimit uint64            // bytes; the host's memory when unlimited
	MemoryStat  map[string]uint64 // memory.stat
	Pids        uint64
}

// Stats samples c's cgroup. The files read are in cgroups(7) and the
// kernel's cgroup-v1/v2 documents.
func (e *Engine) Stats(ref string) (Stats, error) {
	c, err := e.Get(ref)
	if err != nil {
		return Stats{}, err
	}
	if c.State != StateRunning {
		return Stats{}, fmt.Errorf("%w: container %s is not running", ErrConflict, c.Name)
	}
	cg := e.cfg.HostRoot.Join("sys/fs/cgroup")
	st := Stats{Read: time.Now().UTC(), MemoryStat: map[string]uint64{}}
	st.SystemNanos = systemNanos(e.cfg.HostRoot.Join("proc/stat"))
	rel := e.cgroupDir(c.ID)
	if v2 := filepath.Join(cg, rel); exists(filepath.Join(v2, "cgroup.controllers")) {
		st.MemoryUsage = readUint(filepath.Join(v2, "memory.current"))
		st.MemoryLimit = readUint(filepath.Join(v2, "memory.max"))
		st.MemoryStat = readKV(filepath.Join(v2, "memory.stat"))
		st.CPUNanos = readKV(filepath.Join(v2, "cpu.stat"))["usage_usec"] * 1000
		st.Pids = readUint(filepath.Join(v2, "pids.current"))
	} else {
		st.MemoryUsage = readUint(filepath.Join(cg, "memory", rel, "memory.usage_in_bytes"))
		st.MemoryLimit = readUint(filepath.Join(cg, "memory", rel, "memory.limit_in_bytes"))
		st.MemoryStat = readKV(filepath.Join(cg, "memory", rel, "memory.stat"))
		st.CPUNanos = readUint(filepath.Join(cg, "cpuacct", rel, "cpuacct.usage"))
		st.Pids = readUint(filepath.Join(cg, "pids", rel, "pids.current"))
	}
	if total := hostMemory(e.cfg.HostRoot.Join("proc/meminfo")); st.MemoryLimit == 0 || st.MemoryLimit > total {
		st.MemoryLimit = total
	}
	return st, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// readUint reads a one-number file; "max" and a missing file are 0.
func readUint(p string) uint64 {
	b, _ := os.ReadFile(p)
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// readKV reads "key value" lines (memory.stat, cpu.stat).
func readKV(p string) map[string]uint64 {
	out := map[string]uint64{}
	b, _ := os.ReadFile(p)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// systemNanos is the first line of /proc/stat (jiffies of every CPU state,
// USER_HZ 100) in nanoseconds, as dockerd's system_cpu_usage.
func systemNanos(p string) uint64 {
	b, _ := os.ReadFile(p)
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var jiffies uint64
	for _, x := range f[1:8] {
		v, _ := strconv.ParseUint(x, 10, 64)
		jiffies += v
	}
	return jiffies * uint64(time.Second/100)
}

// hostMemory is MemTotal of /proc/meminfo in bytes.
func hostMemory(p string) uint64 {
	b, _ := os.ReadFile(p)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
