package hostd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/network"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
	"github.com/bulkhead-os/bulkhead/hostd/hostctl"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func TestMain(m *testing.M) { testimg.Main(m) }

// engineHost is hostd with an engine on a temporary root, serving on a
// temporary socket, with a busybox image in a loopback registry.
type engineHost struct {
	socket, ref, dir string
	e                *engine.Engine
}

func startEngineHost(t *testing.T) *engineHost { return startEngineHostOn(t, nil) }

// startEngineHostOn is startEngineHost with a network (nil: none).
func startEngineHostOn(t *testing.T, nw engine.Networker) *engineHost {
	t.Helper()
	testimg.RequireHost(t)
	host, ref := testimg.BusyboxRegistry(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "hostd.sock")
	cfg := engine.Config{
		Root: filepath.Join(dir, "lib"), RunDir: filepath.Join(dir, "run"),
		Images:      image.Options{Insecure: []string{host}},
		ShimCommand: []string{os.Args[0], "shim"}, Seccomp: runtime.SeccompSupported, Runtime: libct.New,
	}
	if nw != nil {
		cfg.Network = nw
	}
	e, err := engine.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := hostd.New(hostd.Config{Root: fsroot.Root(dir), Socket: sock, AllowUID: os.Getuid()})
	s.RegisterEngine(e)
	l, err := hostd.Listen(sock, os.Getuid())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() {
		for _, c := range e.List() {
			if err := e.Remove(context.Background(), c.ID, true); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		e.Close()
		cancel()
		<-done
	})
	return &engineHost{socket: sock, ref: ref, dir: dir, e: e}
}

// hostctl runs a hostctl command in-process and returns its output.
func (h *engineHost) hostctl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := hostctl.NewRootCmd(hostctl.Deps{Stdout: &out, Stderr: &out, Root: fsroot.Root(h.dir), Socket: h.socket})
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func (h *engineHost) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.hostctl(t, "", args...)
	if err != nil {
		t.Fatalf("hostctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// waitLogs polls `hostctl logs` until it prints want: a line comes when the
// container's shell gets to it. Bounded, not a timing assertion.
func (h *engineHost) waitLogs(t *testing.T, ref, want string) {
	t.Helper()
	out := ""
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out = h.must(t, "logs", ref); out == want {
			return
		}
	}
	t.Errorf("logs %s: got %q, want %q", ref, out, want)
}

func TestHostctlContainerVerbs(t *testing.T) {
	h := startEngineHost(t)
	if out := h.must(t, "pull", h.ref); !strings.Contains(out, "pulled sha256:") {
		t.Errorf("pull: got %q", out)
	}
	if out := h.must(t, "images"); !strings.Contains(out, "/busybox") || !strings.Contains(out, "latest") {
		t.Errorf("images: got %q", out)
	}
	if out := h.must(t, "run", "--rm", "-e", "WHO=there", h.ref, "sh", "-c", "echo hi $WHO"); out != "hi there\n" {
		t.Errorf("run: got %q, want %q", out, "hi there\n")
	}
	// --rm: the output and the code survive the container's removal.
	out, err := h.hostctl(t, "", "run", "--rm", h.ref, "sh", "-c", "echo bye; exit 6")
	if ee, ok := err.(*hostctl.ExitError); !ok || ee.Code != 6 || out != "bye\n" {
		t.Errorf("run --rm exit 6: got %v, %q, want ExitError 6 and %q", err, out, "bye\n")
	}
	out, err = h.hostctl(t, "", "run", h.ref, "sh", "-c", "exit 5")
	if ee, ok := err.(*hostctl.ExitError); !ok || ee.Code != 5 {
		t.Errorf("run exit 5: got %v (%q), want ExitError 5", err, out)
	}
	id := strings.TrimSpace(h.must(t, "run", "-d", "--name", "web", h.ref, "sh", "-c", "trap 'exit 0' TERM; echo started; while true; do sleep 1; done"))
	if len(id) != 64 {
		t.Fatalf("run -d: got %q, want an id", id)
	}
	if out := h.must(t, "ps"); !strings.Contains(out, "web") || !strings.Contains(out, "Up ") {
		t.Errorf("ps: got %q", out)
	}
	if out := h.must(t, "exec", "web", "sh", "-c", "echo from exec; echo to-err >&2"); !strings.Contains(out, "from exec\n") || !strings.Contains(out, "to-err\n") {
		t.Errorf("exec: got %q", out)
	}
	if out, _ := h.hostctl(t, "piped\n", "exec", "-i", "web", "cat"); out != "piped\n" {
		t.Errorf("exec -i: got %q, want %q", out, "piped\n")
	}
	h.waitLogs(t, "web", "started\n")
	if out := h.must(t, "inspect", "web"); !strings.Contains(out, `"state": "running"`) {
		t.Errorf("inspect: got %q", out)
	}
	h.must(t, "stop", "web")
	if out := h.must(t, "ps", "-a"); !strings.Contains(out, "Exited (0)") {
		t.Errorf("ps -a after stop: got %q", out)
	}
	h.must(t, "start", "web")
	h.waitLogs(t, "web", "started\nstarted\n")
	if _, err := h.hostctl(t, "", "rm", "web"); err == nil {
		t.Errorf("rm of a running container succeeded")
	}
	h.must(t, "rm", "-f", "web")
	lines := strings.Split(h.must(t, "ps", "-a"), "\n")
	h.must(t, "rm", "-f", strings.Fields(lines[1])[0])
	h.must(t, "rmi", h.ref)
	if out := h.must(t, "images", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("images after rmi: got %q", out)
	}
}

func TestLogsFollow(t *testing.T) {
	h := startEngineHost(t)
	h.must(t, "run", "-d", "--name", "counter", h.ref, "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done")
	// -f returns once the container has exited and its log is read.
	if out := h.must(t, "logs", "-f", "counter"); out != "1\n2\n3\n" {
		t.Errorf("logs -f: got %q, want %q", out, "1\n2\n3\n")
	}
}

// TestHostctlRunInteractive: hostctl run -i feeds its stdin to the
// container's main process, and the input's end ends `cat`.
func TestHostctlRunInteractive(t *testing.T) {
	h := startEngineHost(t)
	if out, err := h.hostctl(t, "hello\n", "run", "-i", "--rm", h.ref, "cat"); err != nil || out != "hello\n" {
		t.Errorf("hostctl run -i --rm cat: got %q, %v, want %q", out, err, "hello\n")
	}
	if out, err := h.hostctl(t, "ignored\n", "run", "--rm", h.ref, "cat"); err != nil || out != "" {
		t.Errorf("hostctl run cat without -i: got %q, %v, want no output", out, err)
	}
	// A container that exits on its own ends the run even while the input
	// is still open (a terminal nobody types on).
	pr, pw := io.Pipe()
	defer pw.Close()
	var out bytes.Buffer
	cmd := hostctl.NewRootCmd(hostctl.Deps{Stdout: &out, Stderr: &out, Root: fsroot.Root(h.dir), Socket: h.socket})
	cmd.SetArgs([]string{"run", "-i", "--rm", h.ref, "echo", "done"})
	cmd.SetIn(pr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil || out.String() != "done\n" {
		t.Errorf("hostctl run -i with open input: got %q, %v, want %q", out.String(), err, "done\n")
	}
}

// TestHostctlRandomPort: hostctl run -p 127.0.0.1::80 publishes on a port
// hostd picks, shown by hostctl inspect and ps, answering over loopback.
func TestHostctlRandomPort(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatal("needs iptables: apt-get install iptables")
	}
	dir := t.TempDir()
	// A bridge and subnet of the test's own, removed with its rules.
	br := &network.Bridge{
		Name: fmt.Sprintf("hdc%d", os.Getpid()%100000), Subnet: fmt.Sprintf("10.214.%d.0/24", os.Getpid()%200),
		StateDir: filepath.Join(dir, "leases"), NetnsDir: filepath.Join(dir, "netns"), HostRoot: "/", Runner: run.Exec{},
	}
	t.Cleanup(func() {
		if err := br.Destroy(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	h := startEngineHostOn(t, br)
	h.must(t, "run", "-d", "--name", "web", "-p", "127.0.0.1::80", h.ref,
		"sh", "-c", "mkdir /www; echo random > /www/index.html; exec busybox httpd -f -p 80 -h /www")
	var insp []engine.Container
	if err := json.Unmarshal([]byte(h.must(t, "inspect", "web")), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	ports := insp[0].Ports
	if len(ports) != 1 || ports[0].HostPort == 0 || ports[0].HostIP != "127.0.0.1" || ports[0].ContainerPort != 80 {
		t.Fatalf("inspect ports: got %+v, want 127.0.0.1:<a port> -> 80/tcp", ports)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0].HostPort)
	if ps := h.must(t, "ps"); !strings.Contains(ps, addr+"->80/tcp") {
		t.Errorf("ps: got %q, want %s->80/tcp", ps, addr)
	}
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
	}
	if body != "random\n" {
		t.Errorf("GET %s: got %q, want %q", addr, body, "random\n")
	}
	// -P publishes what --expose adds (and the image's EXPOSE).
	h.must(t, "run", "-d", "--name", "all", "-P", "--expose", "80", "--expose", "53/udp", h.ref, "sleep", "60")
	var all []engine.Container
	if err := json.Unmarshal([]byte(h.must(t, "inspect", "all")), &all); err != nil || len(all) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	got := map[string]bool{}
	for _, p := range all[0].Ports {
		got[fmt.Sprintf("%d/%s", p.ContainerPort, p.Proto)] = p.HostPort != 0 && p.HostPort != ports[0].HostPort && p.HostIP == ""
	}
	if len(got) != 2 || !got["80/tcp"] || !got["53/udp"] {
		t.Errorf("-P ports: got %+v, want 80/tcp and 53/udp each on a new host port, all addresses", all[0].Ports)
	}
}
