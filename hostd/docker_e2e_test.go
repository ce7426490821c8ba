package hostd_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// dockerCLI runs the stock docker client against hostd's Docker API.
type dockerCLI struct {
	sock, config string
}

func (d dockerCLI) run(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + d.sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.config, "DOCKER_CLI_HINTS=false")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return string(out), code
}

func (d dockerCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, code := d.run(t, "", args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func TestDockerCLI(t *testing.T) {
	h, d := dockerHost(t)

	if out := d.must(t, "version"); !strings.Contains(out, "Server:") || !strings.Contains(out, "API version:") {
		t.Errorf("version: got %q", out)
	}
	if out := d.must(t, "info"); !strings.Contains(out, "Storage Driver: overlay2") {
		t.Errorf("info: got %q", out)
	}
	d.must(t, "pull", h.ref)
	if out := d.must(t, "images"); !strings.Contains(out, "/busybox") {
		t.Errorf("images: got %q", out)
	}
	if out := d.must(t, "run", "--name", "plain", "-e", "WHO=docker", h.ref, "sh", "-c", "echo hello $WHO"); out != "hello docker\n" {
		t.Errorf("run: got %q, want %q", out, "hello docker\n")
	}
	if out := d.must(t, "run", "--rm", "-e", "WHO=docker", h.ref, "sh", "-c", "echo hello $WHO"); out != "hello docker\n" {
		t.Errorf("run --rm: got %q, want %q", out, "hello docker\n")
	}
	if out, code := d.run(t, "", "run", "--name", "fails", h.ref, "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("run exit 3: got exit %d: %s", code, out)
	}
	id := strings.TrimSpace(d.must(t, "run", "-d", "--name", "web", "--restart", "on-failure:2", "-w", "/tmp", h.ref,
		"sh", "-c", "trap 'exit 0' TERM; echo up; while true; do sleep 1; done"))
	if len(id) != 64 {
		t.Fatalf("run -d: got %q", id)
	}
	if out := d.must(t, "ps"); !strings.Contains(out, "web") || !strings.Contains(out, "Up ") {
		t.Errorf("ps: got %q", out)
	}
	out := ""
	for deadline := time.Now().Add(20 * time.Second); out != "up\n" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out = d.must(t, "logs", "web")
	}
	if out != "up\n" {
		t.Errorf("logs: got %q, want %q", out, "up\n")
	}
	if out := d.must(t, "exec", "web", "sh", "-c", "pwd; echo err >&2"); !strings.Contains(out, "/tmp\n") || !strings.Contains(out, "err\n") {
		t.Errorf("exec: got %q", out)
	}
	if out, _ := d.run(t, "piped\n", "exec", "-i", "web", "cat"); out != "piped\n" {
		t.Errorf("exec -i: got %q", out)
	}
	if out := d.must(t, "exec", "-t", "web", "sh", "-c", "tty; echo $TERM"); out != "/dev/pts/0\r\nxterm\r\n" {
		t.Errorf("exec -t: got %q, want a terminal", out)
	}
	if script, err := exec.LookPath("script"); err == nil {
		// -it needs a terminal on the client side too: script(1) gives one.
		cmd := exec.Command(script, "-q", "-e", "-c", "docker -H unix://"+d.sock+" exec -it web sh -c 'read line; echo got $line'", "/dev/null")
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.config)
		cmd.Stdin = strings.NewReader("typed\n")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "got typed") {
			t.Errorf("exec -it: got %q, %v", out, err)
		}
	}
	if out, code := d.run(t, "", "exec", "web", "sh", "-c", "exit 4"); code != 4 {
		t.Errorf("exec exit 4: got %d: %s", code, out)
	}
	var insp []struct {
		State struct {
			Running bool
			Pid     int
		}
		Name string
	}
	if err := json.Unmarshal([]byte(d.must(t, "inspect", "web")), &insp); err != nil || len(insp) != 1 || !insp[0].State.Running || insp[0].Name != "/web" {
		t.Errorf("inspect: got %+v, %v", insp, err)
	}
	d.must(t, "stop", "web")
	if out := d.must(t, "ps", "-a"); !strings.Contains(out, "Exited (0)") {
		t.Errorf("ps -a: got %q", out)
	}
	d.must(t, "start", "web")
	d.must(t, "kill", "web")
	if out := strings.TrimSpace(d.must(t, "wait", "web")); out != "137" {
		t.Errorf("wait after kill: got %q, want 137", out)
	}
	d.must(t, "rm", "web", "fails", "plain")
	d.must(t, "run", "-d", "--name", "gone", h.ref, "sleep", "60")
	d.must(t, "rm", "-f", "gone")
	d.must(t, "rmi", h.ref)
	if out := d.must(t, "images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images after rmi: got %q", out)
	}
}

// dockerHost is hostd's engine behind a Docker API socket, driven by the
// stock CLI.
func dockerHost(t *testing.T) (*engineHost, dockerCLI) { return dockerHostOn(t, nil) }

// dockerHostOn is dockerHost with a network (nil: none).
func dockerHostOn(t *testing.T, nw engine.Networker) (*engineHost, dockerCLI) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("needs the docker CLI (docker-ce-cli or docker.io)")
	}
	h := startEngineHostOn(t, nw)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := filepath.Join(h.dir, "docker.sock")
	if err := hostd.ServeDockerAPI(ctx, h.e, sock, os.Getuid(), nil); err != nil {
		t.Fatal(err)
	}
	return h, dockerCLI{sock: sock, config: t.TempDir()}
}

// TestDockerRunStdin feeds a container's main process from the client:
// docker run -i, with the input's end closing the container's stdin.
func TestDockerRunStdin(t *testing.T) {
	h, d := dockerHost(t)
	d.must(t, "pull", h.ref)
	if out, code := d.run(t, "hello\n", "run", "-i", "--rm", h.ref, "cat"); code != 0 || out != "hello\n" {
		t.Errorf("echo hello | docker run -i --rm cat: got %q, exit %d, want %q, exit 0", out, code, "hello\n")
	}
	if out, code := d.run(t, "a\nb\nc\n", "run", "-i", "--name", "counted", h.ref, "wc", "-l"); code != 0 || strings.TrimSpace(out) != "3" {
		t.Errorf("docker run -i wc -l: got %q, exit %d, want 3, exit 0", out, code)
	}
	// Without -i the container's stdin is empty, whatever the client has.
	if out, code := d.run(t, "ignored\n", "run", "--rm", h.ref, "cat"); code != 0 || out != "" {
		t.Errorf("docker run cat without -i: got %q, exit %d, want no output, exit 0", out, code)
	}
	if out := d.must(t, "inspect", "-f", "{{.Config.OpenStdin}} {{.Config.StdinOnce}}", "counted"); out != "true true\n" {
		t.Errorf("inspect OpenStdin StdinOnce: got %q, want %q", out, "true true\n")
	}
	// -t: a terminal, whose output comes raw (one stream), with TERM set.
	if out := d.must(t, "run", "-t", "--rm", h.ref, "sh", "-c", "tty; echo $TERM; echo err >&2"); out != "/dev/pts/0\r\nxterm\r\nerr\r\n" {
		t.Errorf("docker run -t: got %q, want %q", out, "/dev/pts/0\r\nxterm\r\nerr\r\n")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("docker run -it needs a terminal on the client side: script(1), apt-get install bsdutils")
	}
	cmd := exec.Command(script, "-q", "-e", "-c", "docker -H unix://"+d.sock+" run -it --rm "+h.ref+" sh -c 'read line; echo got $line'", "/dev/null")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.config)
	cmd.Stdin = strings.NewReader("typed\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "got typed") {
		t.Errorf("docker run -it: got %q, %v, want it to contain %q", out, err, "got typed")
	}
}

// TestDockerRunOptions: volumes (rw and ro), user, workdir and entrypoint
// given to docker run reach the container.
func TestDockerRunOptions(t *testing.T) {
	h, d := dockerHost(t)
	d.must(t, "pull", h.ref)
	vol := t.TempDir()
	if out := d.must(t, "run", "--rm", "-v", vol+":/data", h.ref, "sh", "-c", "echo written > /data/out.txt"); out != "" {
		t.Errorf("run -v: got %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "out.txt")); err != nil || string(b) != "written\n" {
		t.Errorf("file the container wrote to the volume: got %q, %v, want %q", b, err, "written\n")
	}
	out, code := d.run(t, "", "run", "--rm", "-v", vol+":/data:ro", h.ref, "sh", "-c", "cat /data/out.txt; echo refused > /data/ro.txt")
	// Stdout and stderr are separate streams: their order is not kept.
	if code == 0 || !strings.Contains(out, "written\n") || !strings.Contains(out, "Read-only file system") {
		t.Errorf("run -v :ro: got %q, exit %d, want the file read, the write refused (read-only) and a failure", out, code)
	}
	if _, err := os.Stat(filepath.Join(vol, "ro.txt")); !os.IsNotExist(err) {
		t.Errorf("a write through a read-only volume reached the host: %v", err)
	}
	if out := d.must(t, "run", "--rm", "-u", "1000:1000", h.ref, "sh", "-c", "id -u; id -g"); out != "1000\n1000\n" {
		t.Errorf("run -u 1000:1000: got %q, want %q", out, "1000\n1000\n")
	}
	// A missing workdir is made, as Docker does.
	if out := d.must(t, "run", "--rm", "-w", "/srv/new", h.ref, "pwd"); out != "/srv/new\n" {
		t.Errorf("run -w: got %q, want %q", out, "/srv/new\n")
	}
	entRef := strings.TrimSuffix(h.ref, "/busybox:latest") + "/ent:latest"
	testimg.Push(t, entRef, testimg.Image(t, v1.Config{Entrypoint: []string{"echo", "from-image"}}))
	d.must(t, "pull", entRef)
	if out := d.must(t, "run", "--rm", entRef, "arg"); out != "from-image arg\n" {
		t.Errorf("run with the image's entrypoint: got %q, want %q", out, "from-image arg\n")
	}
	if out := d.must(t, "run", "--rm", "--entrypoint", "echo", entRef, "replaced"); out != "replaced\n" {
		t.Errorf("run --entrypoint: got %q, want %q", out, "replaced\n")
	}
}
