package dialstdio

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain runs the test binary as `docker` when it is called so, as the
// image's /usr/bin/docker runs hostd-shim.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "docker" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestParse(t *testing.T) {
	cases := []struct {
		args       []string
		dockerHost string
		want, err  string
	}{
		{args: []string{"system", "dial-stdio"}, want: DefaultSocket},
		{args: []string{"system", "dial-stdio"}, dockerHost: "unix:///var/run/other.sock", want: "/var/run/other.sock"},
		{args: []string{"system", "dial-stdio"}, dockerHost: "tcp://1.2.3.4:2375", want: DefaultSocket},
		{args: []string{"--host", "unix:///x.sock", "system", "dial-stdio"}, want: "/x.sock"},
		{args: []string{"-H=unix:///y.sock", "system", "dial-stdio"}, want: "/y.sock"},
		{args: []string{"-H", "tcp://1.2.3.4:2375", "system", "dial-stdio"}, err: `only a unix:// socket`},
		{args: []string{"system", "dial-stdio", "-H"}, err: "needs a value"},
		{args: []string{"ps", "-a"}, err: `"ps -a": this host has no docker CLI`},
		{args: nil, err: "this host has no docker CLI"},
	}
	for _, c := range cases {
		got, err := parse(c.args, c.dockerHost)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parse(%q): got %q, %v; want an error with %q", c.args, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("parse(%q, DOCKER_HOST=%q): got %q, %v; want %q", c.args, c.dockerHost, got, err, c.want)
		}
	}
}

// TestDockerCLIOverSSH drives the stock docker CLI with DOCKER_HOST=ssh://:
// its ssh helper runs `docker system dial-stdio` on the far side, here
// through an ssh stand-in that runs the command locally (the QEMU tests
// go through the image's real sshd), and the CLI talks the Docker API
// over the pipe to a server on a unix socket.
func TestDockerCLIOverSSH(t *testing.T) {
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("needs the docker CLI (apt-get install docker.io): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	serveFakeEngine(t, sock)
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "docker")); err != nil {
		t.Fatal(err)
	}
	// ssh [options] [--] HOST COMMAND...: run COMMAND here, as sshd would
	// through the user's shell. The image's socket is /run/docker.sock;
	// the far side's environment names the test's (DOCKER_HOST_FAR).
	ssh := `#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -l|-p|-o|-i|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
shift
DOCKER_HOST="$DOCKER_HOST_FAR" exec sh -c "$*"
`
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(ssh), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "ps", "--format", "{{.Names}}")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DOCKER_HOST=ssh://core@bulkhead.example",
		"DOCKER_HOST_FAR=unix://"+sock, "DOCKER_CONFIG="+t.TempDir(), "DOCKER_CLI_HINTS=false")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "web" {
		t.Fatalf("docker ps over ssh://: %v: %q, want the one container's name", err, out)
	}
	// On the far side, any other docker command says what to do.
	out, err = exec.Command(filepath.Join(bin, "docker"), "ps").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "DOCKER_HOST=ssh://") {
		t.Errorf("docker ps on the host: %v: %q, want a refusal naming DOCKER_HOST=ssh://", err, out)
	}
}

// serveFakeEngine answers the calls of `docker ps` on a unix socket.
func serveFakeEngine(t *testing.T, sock string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ping := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Ostype", "linux")
		_, _ = w.Write([]byte("OK"))
	}
	mux.HandleFunc("/_ping", ping)
	mux.HandleFunc("/{v}/containers/json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode([]map[string]any{{"Id": strings.Repeat("a", 64), "Names": []string{"/web"}, "Image": "busybox", "State": "running"}})
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}
