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

	"github.com/bulkhead-os/bulkhead/hostd"
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
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("needs the docker CLI (docker-ce-cli or docker.io)")
	}
	h := startEngineHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := filepath.Join(h.dir, "docker.sock")
	if err := hostd.ServeDockerAPI(ctx, h.e, sock, os.Getuid(), nil); err != nil {
		t.Fatal(err)
	}
	d := dockerCLI{sock: sock, config: t.TempDir()}

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
