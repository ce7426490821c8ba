package dockerapi_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
	"github.com/bulkhead-os/bulkhead/internal/benchtable"
)

// Benchmark sizes: runs of each timed command per backend, the pulled
// image's layers, and the idle containers whose memory is measured.
const (
	benchRuns       = 9
	benchPulls      = 3
	benchLayers     = 7
	benchLayerBytes = 16 << 20
	benchIdle       = 10
)

// BenchmarkVsDockerd runs the same commands through the same docker CLI
// against the hostd binary (its Docker socket, its shims beside it) and
// Debian's dockerd (in its own network namespace), paired run by run, and
// prints a table: `docker run --rm IMG true`; the pull of a multi-layer
// image from Debian's docker-registry (one on the test's loopback and one
// in dockerd's namespace, on the same data, so both pull the same bytes
// over loopback; a new image each run, so neither has its layers); and the
// memory of each engine with benchIdle idle containers: hostd and its
// shims, dockerd, containerd and their shims. PSS counts the pages the
// shims share (their binary's text) once, RSS counts them in every one.
func BenchmarkVsDockerd(b *testing.B) {
	testimg.RequireHost(b)
	for _, bin := range []string{"docker", "dockerd", "nsenter", "ip", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Fatalf("needs %s (apt-get install docker.io docker-registry): %v", bin, err)
		}
	}
	dockerd := startDockerd(b)
	data := b.TempDir()
	reg := testimg.DistributionRegistry(b, testimg.RegistryOptions{Data: data})
	_, port, _ := strings.Cut(reg, ":")
	p, _ := strconv.Atoi(port)
	testimg.DistributionRegistry(b, testimg.RegistryOptions{Data: data, Netns: dockerd.netns, Port: p})
	dockerd.reg = reg
	hostd, hostdPid := startHostdBinary(b, reg)
	backends := []backend{hostd, dockerd}

	img := "{reg}/busybox:latest"
	testimg.Push(b, reg+"/busybox:latest", linuxImage(b, v1.Config{Cmd: []string{"sh"}}))
	for _, be := range backends {
		mustDocker(b, be, "pull", img)
	}
	times, mem := benchtable.New("ms"), benchtable.New("MB")
	pullRow := fmt.Sprintf("pull %d x %d MiB layers", benchLayers, benchLayerBytes>>20)
	row := func(what string, be backend) string { return what + ": " + be.name }
	for b.Loop() {
		for range benchRuns {
			for _, be := range backends {
				start := time.Now()
				mustDocker(b, be, "run", "--rm", img, "true")
				times.Add(row("run --rm IMG true", be), float64(time.Since(start).Milliseconds()))
			}
		}
		for i := range benchPulls {
			ref := fmt.Sprintf("{reg}/layers:%d", i)
			testimg.Push(b, strings.ReplaceAll(ref, "{reg}", reg), layeredImage(b))
			for _, be := range backends {
				start := time.Now()
				mustDocker(b, be, "pull", ref)
				times.Add(row(pullRow, be), float64(time.Since(start).Milliseconds()))
				mustDocker(b, be, "rmi", ref)
			}
		}
		for _, be := range backends {
			for i := range benchIdle {
				mustDocker(b, be, "run", "-d", "--name", fmt.Sprint("idle", i), img, "sleep", "3600")
			}
		}
		time.Sleep(3 * time.Second) // idle is what is measured
		for range 3 {
			for _, be := range backends {
				daemonPid := 0 // dockerd: found by its socket
				if be.name == hostd.name {
					daemonPid = hostdPid
				}
				daemons, shims := enginePids(b, be, daemonPid)
				var d, s procMem
				for _, pid := range daemons {
					d.add(memOf(pid))
				}
				for _, pid := range shims {
					s.add(memOf(pid))
				}
				mem.Add(row("daemons PSS", be), d.pss)
				mem.Add(row("daemons + shims PSS", be), d.pss+s.pss)
				mem.Add(row("daemons + shims RSS", be), d.rss+s.rss)
				mem.Add(row("one shim PSS", be), s.pss/float64(len(shims)))
				mem.Add(row("one shim RSS", be), s.rss/float64(len(shims)))
			}
			time.Sleep(time.Second)
		}
		for _, be := range backends {
			for i := range benchIdle {
				mustDocker(b, be, "rm", "-f", fmt.Sprint("idle", i))
			}
		}
	}
	ratio := func(what string) float64 { return times.Ratio(row(what, hostd), row(what, dockerd)) }
	b.ReportMetric(ratio("run --rm IMG true"), "run-x")
	b.ReportMetric(times.Ratio(row(pullRow, hostd), row(pullRow, dockerd)), "pull-x")
	b.ReportMetric(mem.Ratio(row("daemons + shims PSS", hostd), row("daemons + shims PSS", dockerd)), "mem-pss-x")
	b.ReportMetric(mem.Ratio(row("daemons + shims RSS", hostd), row("daemons + shims RSS", dockerd)), "mem-rss-x")
	var out strings.Builder
	fmt.Fprintf(&out, "hostd vs dockerd through the same docker CLI, same images (daemons: hostd; dockerd + containerd)\n\n")
	times.Write(&out)
	fmt.Fprintf(&out, "hostd/dockerd medians: run %.2fx, pull %.2fx (targets <= 0.5x)\n\nmemory with %d idle containers:\n",
		ratio("run --rm IMG true"), times.Ratio(row(pullRow, hostd), row(pullRow, dockerd)), benchIdle)
	mem.Write(&out)
	fmt.Fprintf(&out, "hostd/dockerd medians: PSS %.2fx, RSS %.2fx (target <= 0.5x)\n",
		mem.Ratio(row("daemons + shims PSS", hostd), row("daemons + shims PSS", dockerd)),
		mem.Ratio(row("daemons + shims RSS", hostd), row("daemons + shims RSS", dockerd)))
	// Printed, not logged: a benchmark's log is cut after ten lines.
	fmt.Print("\n" + out.String())
}

// mustDocker runs the docker CLI against be and fails on a non-zero exit.
func mustDocker(t testing.TB, be backend, args ...string) string {
	t.Helper()
	out, code := be.docker(t, args...)
	if code != 0 {
		t.Fatalf("%s: docker %s: exit %d: %s", be.name, strings.Join(args, " "), code, out)
	}
	return out
}

// layeredImage is a new image of benchLayers random layers.
func layeredImage(t testing.TB) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for range benchLayers {
		l, err := random.Layer(benchLayerBytes, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	return linuxImage(t, v1.Config{Cmd: []string{"sh"}}, layers...)
}

// startHostdBinary runs the hostd binary (with hostd-shim beside it, as
// in the image) serving the Docker API, without a bridge (as dockerd runs
// with --bridge none), until the benchmark ends; it returns hostd's pid too.
func startHostdBinary(t testing.TB, insecure string) (backend, int) {
	t.Helper()
	bin := testimg.BuildHostd(t)
	root := t.TempDir()
	logf, err := os.Create(filepath.Join(root, "hostd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--root", root, "--socket", filepath.Join(root, "hostd.sock"), "--docker-socket", "/docker.sock",
		"--insecure-registry", insecure, "--bridge", "", "--allow-uid", "0", "--update-checks=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	be := backend{name: "hostd", sock: filepath.Join(root, "docker.sock"), reg: insecure, push: insecure, config: t.TempDir()}
	t.Cleanup(func() {
		if out, _ := be.docker(t, "ps", "-aq"); strings.TrimSpace(out) != "" {
			be.docker(t, append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, code := be.docker(t, "version"); code == 0 {
			return be, cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(logf.Name())
			t.Fatalf("hostd did not answer within 30s:\n%s", logs)
		}
	}
}

// enginePids finds be's daemons (daemon, or when 0 the process whose
// command line names be's socket; and that one's containerd) and its
// containers' shims (the parents of the running containers' inits).
func enginePids(t testing.TB, be backend, daemon int) (daemons, shims []int) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	if daemon != 0 {
		daemons = append(daemons, daemon)
	}
	for _, p := range procs {
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if daemon == 0 && strings.Contains(string(cmdline), be.sock+"\x00") {
			pid, _ := strconv.Atoi(filepath.Base(p))
			daemons = append(daemons, pid)
		}
	}
	if len(daemons) != 1 {
		t.Fatalf("%s: %d processes serve %s, want 1", be.name, len(daemons), be.sock)
	}
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if ppid(pid) == daemons[0] && procName(pid) == "containerd" {
			daemons = append(daemons, pid)
		}
	}
	for _, id := range strings.Fields(mustDocker(t, be, "ps", "-q")) {
		pid, err := strconv.Atoi(strings.TrimSpace(mustDocker(t, be, "inspect", "-f", "{{.State.Pid}}", id)))
		if err != nil || pid <= 0 {
			t.Fatalf("%s: container %s has no pid: %v", be.name, id, err)
		}
		shims = append(shims, ppid(pid))
	}
	if len(shims) == 0 {
		t.Fatalf("%s: no running containers", be.name)
	}
	return daemons, shims
}

// procMem is memory in MB.
type procMem struct{ pss, rss float64 }

func (m *procMem) add(o procMem) { m.pss, m.rss = m.pss+o.pss, m.rss+o.rss }

// memOf reads pid's PSS and RSS from /proc/<pid>/smaps_rollup.
func memOf(pid int) procMem {
	var m procMem
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "Pss:":
			m.pss = kb / 1024
		case "Rss:":
			m.rss = kb / 1024
		}
	}
	return m
}

// ppid is pid's parent, from /proc/<pid>/stat (after the parenthesised
// name, which may hold spaces).
func ppid(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func procName(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
