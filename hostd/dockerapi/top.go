package dockerapi

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// top is GET /containers/{id}/top: the container's processes in the
// columns of ps -ef (what dockerd runs without ps_args).
func (a *API) top(w http.ResponseWriter, r *http.Request) {
	if args := r.URL.Query().Get("ps_args"); args != "" && args != "-ef" {
		apiError(w, badRequest("top: ps_args %q: hostd lists the ps -ef columns only", args))
		return
	}
	pids, err := a.E.Pids(r.PathValue("id"))
	if err != nil {
		apiError(w, err)
		return
	}
	proc := a.E.ProcRoot()
	boot := bootTime(proc)
	procs := [][]string{}
	for _, pid := range pids {
		if row, err := psRow(proc, pid, boot); err == nil {
			procs = append(procs, row)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"Titles":    []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"},
		"Processes": procs,
	})
}

// bootTime is /proc/stat's btime.
func bootTime(proc string) time.Time {
	b, _ := os.ReadFile(filepath.Join(proc, "stat"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			s, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(s, 0)
		}
	}
	return time.Time{}
}

// psRow reads one process's ps -ef columns from /proc/<pid>.
func psRow(proc string, pid int, boot time.Time) ([]string, error) {
	dir := filepath.Join(proc, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return nil, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing one (proc(5)).
	end := strings.LastIndexByte(string(stat), ')')
	if end < 0 {
		return nil, fmt.Errorf("parsing %s/stat", dir)
	}
	comm := string(stat[strings.IndexByte(string(stat), '(')+1 : end])
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 20 {
		return nil, fmt.Errorf("parsing %s/stat: %d fields", dir, len(f))
	}
	ppid := f[1]
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	start, _ := strconv.ParseInt(f[19], 10, 64)
	cpu := time.Duration(utime+stime) * time.Second / clockTicks
	started := boot.Add(time.Duration(start) * time.Second / clockTicks)
	uid := "?"
	if st, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "Uid:"); ok && len(strings.Fields(v)) > 0 {
				uid = strings.Fields(v)[0]
			}
		}
	}
	if uid == "0" {
		uid = "root"
	}
	cmd := comm
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(b) > 0 {
		cmd = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	}
	h := int(cpu.Hours())
	return []string{uid, strconv.Itoa(pid), ppid, "0", started.Format("15:04"), "?",
		fmt.Sprintf("%02d:%02d:%02d", h, int(cpu.Minutes())%60, int(cpu.Seconds())%60), cmd}, nil
}
