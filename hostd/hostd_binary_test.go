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
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// buildHostd builds hostd and hostd-shim beside it, as the image has them.
func buildHostd(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the hostd binary: not in -short")
	}
	return testimg.BuildHostd(t)
}

// TestHostdBinaryRestartKeepsContainers runs the real hostd binary: it
// starts a declared workload (as from cloud-config), is stopped and started
// again, and the container keeps running under its shim with its logs
// still flowing.
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

// BenchmarkHostdIdleRSS10 runs the hostd binary with 10 declared idle
// containers and reports its memory and its shims' (PSS counts the pages
// the shims share, the binary's text, once).
func BenchmarkHostdIdleRSS10(b *testing.B) {
	wl := map[string]string{}
	for i := range 10 {
		wl[fmt.Sprintf("idle%d", i)] = "command: [sleep, '3600']\n"
	}
	h, _ := newHostdProc(b, wl)
	d := h.start(b)
	c := hostd.NewEngineClient(h.sock)
	ctx := context.Background()
	b.Cleanup(func() {
		for i := range 10 {
			_ = c.Remove(ctx, fmt.Sprintf("idle%d", i), true)
		}
		stopHostd(d)
	})
	var ctrs []engine.Container
	for deadline := time.Now().Add(60 * time.Second); len(ctrs) < 10; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of 10 containers run", len(ctrs))
		}
		ctrs, _ = c.List(ctx, false)
	}
	time.Sleep(2 * time.Second) // let it settle: idle is what is measured
	for b.Loop() {
		var shimRSS, shimPSS int64
		for _, ctr := range ctrs {
			shimRSS += procKB(ctr.ShimPid, "status", "VmRSS:")
			shimPSS += procKB(ctr.ShimPid, "smaps_rollup", "Pss:")
		}
		b.ReportMetric(float64(procKB(d.Process.Pid, "status", "VmRSS:"))/1024, "hostd-rss-MB")
		b.ReportMetric(float64(procKB(d.Process.Pid, "smaps_rollup", "Pss:"))/1024, "hostd-pss-MB")
		b.ReportMetric(float64(shimRSS)/1024/10, "shim-rss-MB/ctr")
		b.ReportMetric(float64(shimPSS)/1024/10, "shim-pss-MB/ctr")
	}
}

// procKB reads one "Key: N kB" line of /proc/<pid>/<file>.
func procKB(pid int, file, key string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
