package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// testEngine is an engine on a temporary root with a busybox image pulled
// from an in-memory registry as "<registry>/busybox:latest".
type testEngine struct {
	*Engine
	cfg Config
	ref string
}

func newTestEngine(t *testing.T) *testEngine {
	t.Helper()
	return newTestEngineAt(t, t.TempDir())
}

// newTestEngineAt is newTestEngine with its root and run dirs under base;
// opts change its configuration.
func newTestEngineAt(t *testing.T, base string, opts ...func(*Config)) *testEngine {
	t.Helper()
	testimg.RequireHost(t)
	host, ref := testimg.BusyboxRegistry(t)
	cfg := Config{
		Root: filepath.Join(base, "lib"), RunDir: filepath.Join(base, "run"),
		Images:      image.Options{Insecure: []string{host}},
		ShimCommand: []string{os.Args[0], "shim"},
		Seccomp:     runtime.SeccompSupported,
		Runtime:     libct.New,
	}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	te := &testEngine{Engine: e, cfg: cfg, ref: ref}
	t.Cleanup(func() { te.removeAll(t) })
	if _, err := e.Images().Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	return te
}

// removeAll kills and removes every container so no process or mount is
// left behind.
func (te *testEngine) removeAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range te.List() {
		if err := te.Remove(ctx, c.ID, true); err != nil {
			t.Errorf("cleanup: removing %s: %v", c.Name, err)
		}
	}
	te.Close()
}

func (te *testEngine) run(t *testing.T, spec ContainerSpec) Container {
	t.Helper()
	if spec.Image == "" {
		spec.Image = te.ref
	}
	ctx := context.Background()
	c, err := te.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := te.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

func (te *testEngine) logText(t *testing.T, id string) string {
	t.Helper()
	var b strings.Builder
	if err := te.Logs(context.Background(), id, LogOptions{}, func(e logs.Entry) error {
		b.WriteString(e.Log)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// eventually polls cond for up to 20 s: a bound on a hang, not a timing
// assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunAndLogs(t *testing.T) {
	te := newTestEngine(t)
	ctx := context.Background()
	c := te.run(t, ContainerSpec{Name: "true", Command: []string{"true"}})
	if code, err := te.Wait(ctx, c.ID); err != nil || code != 0 {
		t.Fatalf("true: code %d, %v", code, err)
	}
	c = te.run(t, ContainerSpec{Name: "hello", Command: []string{"sh", "-c", "echo hello $WHO; echo oops >&2; exit 7"}, Env: Env{"WHO=world"}})
	code, err := te.Wait(ctx, c.ID)
	if err != nil || code != 7 {
		t.Fatalf("got code %d, %v, want 7", code, err)
	}
	var stdout, stderr strings.Builder
	te.Logs(ctx, c.ID, LogOptions{}, func(e logs.Entry) error {
		map[string]*strings.Builder{"stdout": &stdout, "stderr": &stderr}[e.Stream].WriteString(e.Log)
		return nil
	})
	if stdout.String() != "hello world\n" || stderr.String() != "oops\n" {
		t.Errorf("logs: got stdout %q, stderr %q, want %q and %q", stdout.String(), stderr.String(), "hello world\n", "oops\n")
	}
	got, _ := te.Get("hello")
	if got.State != StateExited || got.ExitCode != 7 {
		t.Errorf("got state %s code %d, want exited 7", got.State, got.ExitCode)
	}
	// Restartable: the snapshot keeps its changes across runs.
	c = te.run(t, ContainerSpec{Name: "twice", Command: []string{"sh", "-c", "cat /tmp/mark 2>/dev/null; echo run > /tmp/mark"}})
	te.Wait(ctx, c.ID)
	if err := te.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	te.Wait(ctx, c.ID)
	if got := te.logText(t, c.ID); got != "run\n" {
		t.Errorf("second run: got %q, want the first run's mark %q", got, "run\n")
	}
}

func TestExecAndStop(t *testing.T) {
	te := newTestEngine(t)
	ctx := context.Background()
	c := te.run(t, ContainerSpec{Name: "sleeper", Command: []string{"sh", "-c", "trap 'exit 3' TERM; sleep 300 & wait"}, User: "app", Workdir: "/home/app"})
	var out strings.Builder
	code, err := te.Exec(ctx, c.ID, ExecOptions{Args: []string{"sh", "-c", "id -un; pwd; hostname"}, Stdout: &out, Stderr: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec: code %d, %v: %s", code, err, out.String())
	}
	if want := "app\n/home/app\n" + c.ID[:12] + "\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if err := te.Stop(ctx, c.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got, _ := te.Get(c.ID)
	if got.State != StateExited || got.ExitCode != 3 {
		t.Errorf("after stop: got %s %d, want exited 3 (the TERM trap)", got.State, got.ExitCode)
	}
	if err := te.Remove(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Get(c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after rm: got %v, want ErrNotFound", err)
	}
}

func TestRestartPolicyOnFailure(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "flaky", Command: []string{"sh", "-c", "echo try; exit 1"}, Restart: "on-failure:2"})
	// The count goes up before the restart's start, so wait for the
	// third run's output too (a start takes seconds on a loaded machine).
	eventually(t, "two restarts", func() bool {
		got, _ := te.Get(c.ID)
		return got.RestartCount == 2 && got.State == StateExited && strings.Count(te.logText(t, c.ID), "try\n") == 3
	})
	// And no third: the policy's count is spent.
	time.Sleep(NextBackoff(400*time.Millisecond, 0) + 200*time.Millisecond)
	got, _ := te.Get(c.ID)
	if got.RestartCount != 2 || got.State != StateExited {
		t.Errorf("got %d restarts, state %s, want 2 and exited", got.RestartCount, got.State)
	}
	if logs := te.logText(t, c.ID); strings.Count(logs, "try\n") != 3 {
		t.Errorf("got logs %q, want three runs", logs)
	}
}

// TestRestartCountSurvivesLongRuns: a run longer than the backoff's reset
// resets the backoff, not the count, so on-failure:2 gives up after two
// restarts however long each run was (it restarted forever).
func TestRestartCountSurvivesLongRuns(t *testing.T) {
	saved := backoffReset
	backoffReset = 300 * time.Millisecond
	t.Cleanup(func() { backoffReset = saved })
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "slowfail", Command: []string{"sh", "-c", "echo try; sleep 0.5; exit 1"}, Restart: "on-failure:2"})
	eventually(t, "two restarts", func() bool {
		got, _ := te.Get(c.ID)
		return got.RestartCount == 2 && got.State == StateExited && strings.Count(te.logText(t, c.ID), "try\n") == 3
	})
	time.Sleep(2 * time.Second) // a third would start in 100 ms and echo at once
	got, _ := te.Get(c.ID)
	if n := strings.Count(te.logText(t, c.ID), "try\n"); got.RestartCount != 2 || got.State != StateExited || n != 3 {
		t.Errorf("got %d restarts, state %s, %d runs; want 2, exited, 3", got.RestartCount, got.State, n)
	}
	if got.Backoff != backoffMin {
		t.Errorf("backoff after long runs: got %v, want %v", got.Backoff, backoffMin)
	}
	// A user's start begins the count again.
	if err := te.Start(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two more restarts", func() bool {
		got, _ := te.Get(c.ID)
		return got.RestartCount == 2 && got.State == StateExited && strings.Count(te.logText(t, c.ID), "try\n") == 6
	})
}

func TestRestartPolicyAlwaysAndStop(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "always", Command: []string{"sh", "-c", "sleep 0.1"}, Restart: "always"})
	eventually(t, "a restart", func() bool {
		got, _ := te.Get(c.ID)
		return got.RestartCount >= 1 && got.State == StateRunning
	})
	if err := te.Stop(context.Background(), c.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got, _ := te.Get(c.ID); got.State != StateExited {
		t.Errorf("a stopped always-container came back: %s", got.State)
	}
}

func TestShimSurvivesEngineRestart(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "ticker", Command: []string{"sh", "-c", "trap 'exit 42' TERM; while true; do echo tick; sleep 0.1; done"}})
	before, _ := te.Get(c.ID)
	te.Close() // hostd goes away; the shim and container stay

	e2, err := New(context.Background(), te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.Engine = e2
	got, err := e2.Get(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateRunning || got.Pid != before.Pid {
		t.Fatalf("after engine restart: got %s pid %d, want running pid %d", got.State, got.Pid, before.Pid)
	}
	if err := syscall.Kill(got.Pid, 0); err != nil {
		t.Fatalf("container init is gone: %v", err)
	}
	n := strings.Count(te.logText(t, c.ID), "tick")
	eventually(t, "logs to keep flowing", func() bool { return strings.Count(te.logText(t, c.ID), "tick") > n })
	if err := e2.Stop(context.Background(), c.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _ := e2.Get(c.ID); got.ExitCode != 42 {
		t.Errorf("exit code after re-attach: got %d, want 42", got.ExitCode)
	}
}

func TestHealthCheckFeedsGate(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "web", Command: []string{"sleep", "300"},
		Healthcheck: &Healthcheck{Command: Command{"test", "-f", "/tmp/ready"}, Interval: Duration(100 * time.Millisecond), Retries: 1}})
	if _, err := te.update(c.ID, func(x *Container) { x.Managed = true }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unhealthy", func() bool { g, _ := te.Get(c.ID); return g.Health == HealthUnhealthy })
	if err := te.HealthCheck(context.Background()); err == nil || !strings.Contains(err.Error(), "web is unhealthy") {
		t.Errorf("gate: got %v, want web is unhealthy", err)
	}
	if code, err := te.Exec(context.Background(), c.ID, ExecOptions{Args: []string{"touch", "/tmp/ready"}}); err != nil || code != 0 {
		t.Fatalf("exec touch: %d %v", code, err)
	}
	eventually(t, "healthy", func() bool { g, _ := te.Get(c.ID); return g.Health == HealthHealthy })
	if err := te.HealthCheck(context.Background()); err != nil {
		t.Errorf("gate: got %v, want healthy", err)
	}
}

// A declared workload that is not created yet (its image still pulling at
// boot) holds the gate: an empty container list is not a healthy host.
func TestHealthCheckWaitsForDeclared(t *testing.T) {
	te := newTestEngine(t)
	te.SetDeclared([]ContainerSpec{{Name: "web", Image: te.ref}})
	if err := te.HealthCheck(context.Background()); err == nil || !strings.Contains(err.Error(), "web is declared but not created yet") {
		t.Fatalf("gate before the container exists: got %v, want web not created yet", err)
	}
	c := te.run(t, ContainerSpec{Name: "web", Command: []string{"sleep", "300"}})
	if _, err := te.update(c.ID, func(x *Container) { x.Managed = true }); err != nil {
		t.Fatal(err)
	}
	if err := te.HealthCheck(context.Background()); err != nil {
		t.Errorf("gate with the declared container running: got %v, want healthy", err)
	}
}

func TestIsolationWritesStayInRootfs(t *testing.T) {
	te := newTestEngine(t)
	vol := t.TempDir()
	c := te.run(t, ContainerSpec{Name: "iso", Volumes: []string{vol + ":/data"}, Command: []string{"sh", "-c",
		"echo x > /written; echo y > /data/vol; mount -t proc proc /mnt 2>/dev/null && echo MOUNTED; ls /proc | grep -c '^[0-9]'"}})
	te.Wait(context.Background(), c.ID)
	out := te.logText(t, c.ID)
	if strings.Contains(out, "MOUNTED") {
		t.Errorf("the container could mount: %q", out)
	}
	if _, err := os.Stat("/written"); err == nil {
		t.Errorf("a container write reached the host's /")
	}
	if _, err := os.Stat(filepath.Join(te.snaps.Upper(c.ID), "written")); err != nil {
		t.Errorf("the write is not in the container's snapshot: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "vol")); string(b) != "y\n" {
		t.Errorf("volume: got %q, want %q", b, "y\n")
	}
}

func TestConvergeWorkloads(t *testing.T) {
	te := newTestEngine(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The TERM trap makes stops quick: a bare sleep as pid 1 ignores TERM.
	write("web.yaml", "image: "+te.ref+"\ncommand: [sh, -c, \"trap 'exit 0' TERM; sleep 300 & wait\"]\nrestart: always\n")
	write("job.yaml", "image: "+te.ref+"\ncommand: [sh, -c, 'echo done']\n")
	specs, err := LoadWorkloads(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := te.Converge(ctx, specs, true); err != nil {
		t.Fatal(err)
	}
	web, err := te.Get("web")
	if err != nil || web.State != StateRunning || !web.Managed {
		t.Fatalf("web: got %+v, %v, want a running managed container", web, err)
	}
	eventually(t, "the job to finish", func() bool { j, _ := te.Get("job"); return j.State == StateExited })
	if err := te.HealthCheck(ctx); err != nil {
		t.Errorf("gate with web running and the job done: %v", err)
	}
	// Unchanged files: nothing restarts.
	if err := te.Converge(ctx, specs, false); err != nil {
		t.Fatal(err)
	}
	if again, _ := te.Get("web"); again.ID != web.ID || again.Pid != web.Pid {
		t.Errorf("an unchanged workload was replaced")
	}
	// A changed file replaces the container; a removed one removes it.
	write("web.yaml", "image: "+te.ref+"\ncommand: [sh, -c, \"trap 'exit 0' TERM; sleep 301 & wait\"]\nrestart: always\n")
	os.Remove(filepath.Join(dir, "job.yaml"))
	specs, _ = LoadWorkloads(dir)
	if err := te.Converge(ctx, specs, false); err != nil {
		t.Fatal(err)
	}
	if changed, _ := te.Get("web"); changed.ID == web.ID || changed.State != StateRunning || !strings.Contains(changed.Args[2], "301") {
		t.Errorf("web was not replaced: %+v", changed)
	}
	if _, err := te.Get("job"); !errors.Is(err, ErrNotFound) {
		t.Errorf("job still there after its file went: %v", err)
	}
	// A stopped declared container fails the gate.
	if err := te.Stop(ctx, "web", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := te.HealthCheck(ctx); err == nil || !strings.Contains(err.Error(), "web is exited") {
		t.Errorf("gate with web stopped: got %v, want web is exited", err)
	}
}

func TestExitWhileEngineDownIsRecorded(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "brief", Command: []string{"sh", "-c", "sleep 0.3; echo bye; exit 3"}})
	te.Close()
	// The container ends while no engine watches; its shim records it.
	eventually(t, "the shim to record the exit", func() bool {
		_, err := os.Stat(filepath.Join(te.dir(c.ID), "exit.json"))
		return err == nil
	})
	e2, err := New(context.Background(), te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.Engine = e2
	got, err := e2.Get(c.ID)
	if err != nil || got.State != StateExited || got.ExitCode != 3 {
		t.Errorf("after engine start: got %+v, %v, want exited with 3", got, err)
	}
	if logs := te.logText(t, c.ID); logs != "bye\n" {
		t.Errorf("logs: got %q, want %q", logs, "bye\n")
	}
	if e2.snaps.Mounted(c.ID) {
		t.Errorf("the snapshot of an exited container is still mounted")
	}
}

// sendStdin writes in to the container's stdin as one attached client.
func sendStdin(t *testing.T, e *Engine, id, in string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.ForwardStdin(ctx, id, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
}

// TestStdinSurvivesEngineRestart: the shim holds a -i container's stdin,
// so input still reaches it after hostd restarts, and one client's EOF
// does not close it (no StdinOnce).
func TestStdinSurvivesEngineRestart(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "reader", OpenStdin: true, Command: []string{"sh", "-c", "while read l; do echo got $l; done; echo eof; exit 7"}})
	sendStdin(t, te.Engine, c.ID, "one\n")
	eventually(t, "the first line", func() bool { return te.logText(t, c.ID) == "got one\n" })
	te.Close()
	e2, err := New(context.Background(), te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.Engine = e2
	sendStdin(t, e2, c.ID, "two\n")
	eventually(t, "the line sent after the restart", func() bool { return te.logText(t, c.ID) == "got one\ngot two\n" })
	if got, _ := e2.Get(c.ID); got.State != StateRunning {
		t.Errorf("after two clients' EOF: got state %s, want running (stdin stays open)", got.State)
	}
}

// TestStdinOnceClosesAtEOF: with StdinOnce the first client's EOF is the
// container's.
func TestStdinOnceClosesAtEOF(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "once", OpenStdin: true, StdinOnce: true, Command: []string{"sh", "-c", "cat; echo eof; exit 7"}})
	sendStdin(t, te.Engine, c.ID, "only\n")
	if code, err := te.Wait(context.Background(), c.ID); err != nil || code != 7 {
		t.Fatalf("wait: got %d, %v, want 7", code, err)
	}
	if got := te.logText(t, c.ID); got != "only\neof\n" {
		t.Errorf("got %q, want %q", got, "only\neof\n")
	}
	plain := te.run(t, ContainerSpec{Name: "plain", Command: []string{"sleep", "30"}})
	if _, err := te.AttachStdin(context.Background(), plain.ID); !errors.Is(err, ErrNoStdin) {
		t.Errorf("stdin of a container without OpenStdin: got %v, want ErrNoStdin", err)
	}
}

// TestResizeTerminal: a -t container's terminal takes the size a client
// sets (docker run -it then the window's size).
func TestResizeTerminal(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "term", Tty: true, OpenStdin: true, Command: []string{"sh", "-c", "read go; busybox stty size"}})
	if err := te.Resize(c.ID, 40, 100); err != nil {
		t.Fatal(err)
	}
	sendStdin(t, te.Engine, c.ID, "go\n")
	if code, err := te.Wait(context.Background(), c.ID); err != nil || code != 0 {
		t.Fatalf("wait: got %d, %v", code, err)
	}
	// The terminal echoes the input; stty's answer follows.
	if got := te.logText(t, c.ID); !strings.HasSuffix(got, "40 100\r\n") {
		t.Errorf("got %q, want it to end with %q", got, "40 100\r\n")
	}
	plain := te.run(t, ContainerSpec{Name: "plain", Command: []string{"sleep", "30"}})
	if err := te.Resize(plain.ID, 40, 100); !errors.Is(err, ErrNoTerminal) {
		t.Errorf("resize without a terminal: got %v, want ErrNoTerminal", err)
	}
}

// /info reports seccomp only when containers really get a filter.
func TestSecurityOptionsTellTheTruth(t *testing.T) {
	off := (&Engine{cfg: Config{Seccomp: false}}).SecurityOptions()
	if strings.Join(off, ",") != "" {
		t.Errorf("seccomp off: /info says %v", off)
	}
	on := (&Engine{cfg: Config{Seccomp: true}}).SecurityOptions()
	want := ""
	if runtime.SeccompSupported {
		want = "name=seccomp,profile=builtin"
	}
	if strings.Join(on, ",") != want {
		t.Errorf("seccomp on (build supports it: %v): /info says %v, want %s", runtime.SeccompSupported, on, want)
	}
}

// TestContainerSignalsStartDefault: the container's init starts with no
// signal ignored (neither the shim's own signal handling nor what hostd
// was started with is inherited), so a shell's TERM trap runs on a stop
// and its HUP trap on a kill -s HUP.
func TestContainerSignalsStartDefault(t *testing.T) {
	// A shim started with a signal ignored (hostd under systemd has
	// SIGPIPE ignored; under make, signal 32, which a Go program keeps
	// ignored) must not hand that to the container: the shim is started
	// here through a wrapper that ignores 32 and SIGPIPE.
	// (glibc refuses to set 32: the wrapper calls rt_sigaction itself.)
	wrap := []string{"python3", "-c", "import ctypes, os, signal, struct, sys\n" +
		"act = ctypes.create_string_buffer(struct.pack('QQQQ', 1, 0, 0, 0))\n" +
		"assert ctypes.CDLL(None, use_errno=True).syscall(13, 32, act, None, 8) == 0\n" +
		"signal.signal(signal.SIGPIPE, signal.SIG_IGN)\n" +
		"os.execv(sys.argv[1], sys.argv[1:])"}
	te := newTestEngineAt(t, t.TempDir(), func(c *Config) { c.ShimCommand = append(wrap, c.ShimCommand...) })
	c := te.run(t, ContainerSpec{Name: "traps", Command: []string{"sh", "-c",
		"grep SigIgn /proc/self/status; trap 'echo hup' HUP; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"}})
	eventually(t, "the traps set", func() bool { return strings.Contains(te.logText(t, c.ID), "SigIgn") })
	if logs := te.logText(t, c.ID); !strings.Contains(logs, "SigIgn:\t0000000000000000") {
		t.Errorf("container init's ignored signals: %q, want none", logs)
	}
	if err := te.Kill(context.Background(), c.ID, "HUP"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the HUP trap", func() bool { return strings.Contains(te.logText(t, c.ID), "hup\n") })
	if got, _ := te.Get(c.ID); got.Stopped || got.State != StateRunning {
		t.Errorf("after kill -s HUP: state %s, stopped %v; want running and not stopped by a user", got.State, got.Stopped)
	}
	if err := te.Stop(context.Background(), c.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, _ := te.Get(c.ID)
	if got.ExitCode != 0 || !strings.Contains(te.logText(t, c.ID), "bye\n") {
		t.Errorf("stop: exit %d, logs %q; want the TERM trap's exit 0 and bye", got.ExitCode, te.logText(t, c.ID))
	}
}

// TestRestartingIsLive: between a policy's restarts the container is
// restarting (docker ps and inspect say so), and a user's stop ends that.
func TestRestartingIsLive(t *testing.T) {
	te := newTestEngine(t)
	c := te.run(t, ContainerSpec{Name: "bouncy", Command: []string{"sh", "-c", "exit 1"}, Restart: "always"})
	eventually(t, "a pending restart", func() bool { return te.Live(c.ID).Restarting })
	if err := te.Stop(context.Background(), c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if te.Live(c.ID).Restarting {
		t.Errorf("still restarting after a user's stop")
	}
}
