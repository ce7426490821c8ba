package hostd_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/client"
	"github.com/bulkhead-os/bulkhead/hostd/engine/dinit"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// buildHostd builds hostd with hostd-shim beside it, as
// the image has them.
func buildHostd(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the hostd binary: not in -short")
	}
	return testimg.BuildHostd(t)
}

// hostdProc runs the hostd binary on a test root whose
// /etc/hostd/containers holds the given workloads (name -> YAML).
type hostdProc struct {
	bin, root, sock, registry string
}

func newHostdProc(t testing.TB, workloads map[string]string) (*hostdProc, string) {
	t.Helper()
	testimg.RequireHost(t)
	h := &hostdProc{bin: buildHostd(t), root: t.TempDir()}
	var ref string
	h.registry, ref = testimg.BusyboxRegistry(t)
	h.sock = filepath.Join(h.root, "hostd.sock")
	wl := filepath.Join(h.root, "etc/hostd/containers")
	os.MkdirAll(wl, 0o755)
	for name, body := range workloads {
		os.WriteFile(filepath.Join(wl, name+".yaml"), []byte("image: "+ref+"\n"+body), 0o644)
	}
	return h, ref
}

func (h *hostdProc) start(t testing.TB) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(h.bin, "--root", h.root, "--socket", h.sock, "--insecure-registry", h.registry, "--bridge", "", "--allow-uid", "0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.New(h.sock).WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func stopHostd(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
}

// TestHostdBinaryRestartKeepsContainers runs the real hostd binary: it
// starts a declared workload (as from cloud-config) under the lean shim
// (hostd-shim, a few MB), is stopped and started again, and the container
// keeps running under its shim with its logs still flowing.
func TestHostdBinaryRestartKeepsContainers(t *testing.T) {
	h, _ := newHostdProc(t, map[string]string{"ticker": "restart: always\ncommand: [sh, -c, \"trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done\"]\n"})
	start := func() *exec.Cmd { return h.start(t) }
	stop := stopHostd
	sock := h.sock
	c := hostd.NewEngineClient(sock)
	ctx := context.Background()
	d := start()
	t.Cleanup(func() {
		// Remove the container through a running hostd, then stop it.
		if d.ProcessState != nil {
			d = start()
		}
		_ = c.Remove(ctx, "ticker", true)
		stop(d)
	})
	var pid int
	deadline := time.Now().Add(30 * time.Second)
	for pid == 0 {
		if ctr, err := c.Inspect(ctx, "ticker"); err == nil && ctr.State == "running" {
			pid = ctr.Pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the declared container never ran")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The container's parent is its shim: hostd-shim, not hostd.
	shimPid := procField(t, pid, "PPid:")
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", shimPid)); err != nil || filepath.Base(exe) != shim.Binary {
		t.Errorf("the container's parent runs %q (%v), want %s", exe, err, shim.Binary)
	}
	// hostd's whole binary as a shim took 23 MB; the lean one takes 2-4.
	if rss := procField(t, shimPid, "VmRSS:"); rss > 10<<10 {
		t.Errorf("the shim's RSS is %d kB, want under 10 MB", rss)
	}
	stop(d)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the container died with hostd: %v", err)
	}
	d = start()
	ctr, err := c.Inspect(ctx, "ticker")
	if err != nil || ctr.State != "running" || ctr.Pid != pid {
		t.Fatalf("after restart: got %+v, %v, want running pid %d", ctr, err, pid)
	}
	count := func() int {
		n := 0
		_ = c.Logs(ctx, "ticker", false, 0, func(e logs.Entry) error {
			n += strings.Count(e.Log, "tick")
			return nil
		})
		return n
	}
	n := count()
	for deadline := time.Now().Add(20 * time.Second); count() <= n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("logs stopped flowing after the restart")
		}
	}
	var health hostd.HealthResponse
	if err := client.New(sock).Do(ctx, http.MethodGet, "/v1/health", nil, &health); err != nil || !health.Healthy {
		t.Errorf("health after restart: %+v, %v", health, err)
	}
}

// procField reads one "Key: N" field of /proc/<pid>/status (kB for sizes).
func procField(t *testing.T, pid int, key string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, err := strconv.Atoi(f[0])
				if err != nil {
					t.Fatalf("/proc/%d/status %s %q: %v", pid, key, v, err)
				}
				return n
			}
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, key)
	return 0
}

// TestHostdBinaryInit runs the real hostd binary with a declared workload
// that asks for an init: hostd finds it (hostd-shim) beside itself, as the
// image installs them, and the container's PID 1 is that init.
func TestHostdBinaryInit(t *testing.T) {
	h, _ := newHostdProc(t, map[string]string{"inited": "init: true\nulimits: [{name: nofile, soft: 50, hard: 60}]\n" +
		"command: [sh, -c, \"cat /proc/1/comm; ulimit -n; trap 'exit 0' TERM; while true; do sleep 0.2; done\"]\n"})
	c := hostd.NewEngineClient(h.sock)
	ctx := context.Background()
	d := h.start(t)
	t.Cleanup(func() {
		_ = c.Remove(ctx, "inited", true)
		stopHostd(d)
	})
	var out string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out, "\n50\n"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the declared container never printed its PID 1 and ulimit: %q", out)
		}
		var b strings.Builder
		_ = c.Logs(ctx, "inited", false, 0, func(e logs.Entry) error {
			b.WriteString(e.Log)
			return nil
		})
		out = b.String()
	}
	if out != dinit.Name+"\n50\n" {
		t.Errorf("got %q, want PID 1 %s and ulimit 50", out, dinit.Name)
	}
}
