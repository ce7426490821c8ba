package dockerapi_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulkhead-os/bulkhead/hostd/engine/network/nettest"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// composeProject is a web service serving a page from a named volume and
// a client that reaches it by its service name; {img} is the image.
const composeProject = `version: "3.7"
services:
  web:
    image: {img}
    command: ["sh", "-c", "echo web-started; mkdir -p /data/www && echo hello-from-web > /data/www/index.html && exec httpd -f -p 80 -h /data/www"]
    volumes:
      - data:/data
  client:
    image: {img}
    command: ["sh", "-c", "while true; do sleep 1; done"]
    depends_on:
      - web
volumes:
  data:
`

// compose runs a Compose CLI (compose, a path or a name in PATH) in dir
// against b.
func (b backend) compose(t *testing.T, compose, dir string, args ...string) (string, int) {
	t.Helper()
	return b.client(t, dir, compose, append([]string{"-p", "bulkheadc"}, args...)...)
}

// TestComposeConformance is composeConformance with Debian's
// docker-compose (1.29, an Engine API client in Python).
func TestComposeConformance(t *testing.T) {
	if !testimg.InNetns(t) {
		return
	}
	composeConformance(t, "docker-compose")
}

// TestComposeV2Conformance is composeConformance with Compose v2 (Go,
// github.com/docker/compose, built by `make out/bin/docker-compose-v2`
// from testdata/compose-v2 and named by BULKHEAD_COMPOSE_V2). The
// Makefile runs it in the long tier (make test-long): building Compose
// takes minutes.
func TestComposeV2Conformance(t *testing.T) {
	if !testimg.InNetns(t) {
		return
	}
	bin := os.Getenv("BULKHEAD_COMPOSE_V2")
	if bin == "" {
		t.Fatal("BULKHEAD_COMPOSE_V2 names no Compose v2 binary: run make test-long, which builds it")
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "v5.") {
		t.Fatalf("%s version: %v: %s, want Compose v5", bin, err, out)
	}
	composeConformance(t, bin)
}

// composeConformance brings a two-service project with a named volume up
// with a Compose CLI against hostd (with its networks, in a network
// namespace of the test's own) and against Debian's dockerd, and wants
// the same outcomes from both: the client reaches web by its service
// name, ps, logs and exec work, and down -v leaves no container, network
// or volume behind.
func composeConformance(t *testing.T, compose string) {
	for _, bin := range []string{"docker", compose, "dockerd", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("needs %s (apt-get install docker.io docker-compose): %v", bin, err)
		}
	}
	img := linuxImage(t, v1.Config{Cmd: []string{"sh"}})
	backends := []backend{startHostdOn(t, nettest.Manager(t, nettest.FakeUpstream(t))), startDockerd(t)}
	type step struct {
		compose []string // a docker-compose command, or
		docker  []string // a docker one, after down
		want    string   // exit code and output: "exit 0: text in it", "exit 0, N lines"
	}
	steps := []step{
		{compose: []string{"up", "-d"}, want: "exit 0"},
		{compose: []string{"ps", "-q"}, want: "exit 0, 2 lines"},
		{compose: []string{"ps", "--services"}, want: "exit 0, 2 lines"},
		{compose: []string{"ps"}, want: "exit 0: Up"},
		{compose: []string{"exec", "-T", "client", "busybox", "nslookup", "web"}, want: "exit 0: Address"},
		{compose: []string{"exec", "-T", "client", "sh", "-c", nettest.FetchByName("web")}, want: "exit 0: hello-from-web"},
		{compose: []string{"exec", "-T", "web", "cat", "/data/www/index.html"}, want: "exit 0: hello-from-web"},
		{compose: []string{"logs", "web"}, want: "exit 0: web-started"},
		{compose: []string{"down", "-v"}, want: "exit 0"},
		{docker: []string{"ps", "-aq", "-f", "label=com.docker.compose.project=bulkheadc"}, want: "exit 0, 0 lines"},
		{docker: []string{"network", "ls", "-q", "-f", "name=bulkheadc"}, want: "exit 0, 0 lines"},
		{docker: []string{"volume", "ls", "-q", "-f", "name=bulkheadc"}, want: "exit 0, 0 lines"},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| command | hostd | dockerd |\n|---|---|---|\n")
	dirs := map[string]string{}
	for _, b := range backends {
		testimg.Push(t, b.push+"/busybox:latest", img)
		dir := t.TempDir()
		yml := strings.ReplaceAll(composeProject, "{img}", b.reg+"/busybox:latest")
		if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs[b.name] = dir
		t.Cleanup(func() { b.compose(t, compose, dir, "down", "-v", "-t", "1") })
	}
	for i, s := range steps {
		got := make([]string, len(backends))
		cmd := filepath.Base(compose) + " " + strings.Join(s.compose, " ")
		for j, b := range backends {
			var out string
			var code int
			if s.compose != nil {
				out, code = b.compose(t, compose, dirs[b.name], s.compose...)
			} else {
				cmd = "docker " + strings.Join(s.docker, " ")
				out, code = b.docker(t, s.docker...)
			}
			got[j] = composeOutcome(out, code, s.want)
			if got[j] != s.want {
				t.Errorf("step %d: %s on %s: got %q, want %q\n%s", i, cmd, b.name, got[j], s.want, out)
			}
		}
		fmt.Fprintf(&table, "| %s | %s | %s |\n", cmd, got[0], got[1])
	}
	t.Logf("outcomes:\n%s", table.String())
}

// composeOutcome reduces a command's result to the form of want: the
// exit code, with the number of output lines or whether a text is there.
func composeOutcome(out string, code int, want string) string {
	switch _, text, found := strings.Cut(want, ": "); {
	case found:
		if strings.Contains(out, text) {
			return fmt.Sprintf("exit %d: %s", code, text)
		}
		return fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(out))
	case strings.Contains(want, " lines"):
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.TrimSpace(l) != "" {
				n++
			}
		}
		return fmt.Sprintf("exit %d, %d lines", code, n)
	}
	return fmt.Sprintf("exit %d", code)
}

// networkScenario is docker network through the CLI: both backends give
// the same outcomes, but where hostd refuses an option dockerd has
// (--internal). dockerd runs with --bridge none: it has no "bridge".
func networkScenario() []step {
	const img = "{reg}/busybox"
	return []step{
		{args: []string{"pull", img}, want: "exit 0"},
		{args: []string{"network", "create", "bulkn1"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"network", "create", "--label", "tier=front", "bulkn2"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"network", "create", "bulkn1"}, kind: errText, want: "exit 1: already exists"},
		{args: []string{"network", "ls", "--format", "{{.Name}}", "-f", "name=bulkn"}, kind: words, want: "exit 0: bulkn1,bulkn2"},
		{args: []string{"network", "ls", "--format", "{{.Name}}", "-f", "label=tier=front"}, kind: words, want: "exit 0: bulkn2"},
		{args: []string{"network", "ls", "--format", "{{.Name}}", "-f", "type=custom"}, kind: words, want: "exit 0: bulkn1,bulkn2"},
		{args: []string{"network", "ls", "--format", "{{.Name}}", "-f", "driver=bridge", "-f", "type=custom"}, kind: words, want: "exit 0: bulkn1,bulkn2"},
		{args: []string{"network", "ls", "--format", "{{.Name}}", "-f", "dangling=true"}, kind: words, want: "exit 0: bulkn1,bulkn2"},
		{args: []string{"network", "ls", "--format", "{{.Name}}", "-f", "id=$(network inspect -f {{.Id}} bulkn2)"}, kind: words, want: "exit 0: bulkn2"},
		{args: []string{"network", "ls", "-f", "bogus=1"}, kind: errText, want: "exit 1: invalid filter 'bogus'"},
		{args: []string{"network", "ls", "-f", "type=odd"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"network", "inspect", "-f", "{{.Driver}} {{.Scope}} {{.Labels.tier}}", "bulkn2"}, kind: words, want: "exit 0: bridge local front"},
		{args: []string{"network", "inspect", "nosuch"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"run", "-d", "--name", "nweb", "--network", "bulkn1", "--network-alias", "www", img,
			"sh", "-c", "mkdir /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"run", "--rm", "--network", "bulkn1", img, "busybox", "nslookup", "www"}, kind: errText, want: "exit 0: Name:\twww"},
		{args: []string{"run", "--rm", "--network", "bulkn1", img, "busybox", "nslookup", "nweb"}, kind: errText, want: "exit 0: Name:\tnweb"},
		{args: []string{"run", "--rm", "--network", "bulkn1", img, "sh", "-c", nettest.FetchByName("www")}, kind: errText, want: "exit 0: hi"},
		{args: []string{"run", "--rm", "--network", "bulkn2", img, "busybox", "nslookup", "-timeout=2", "www"}, kind: exitOnly, want: "exit 1"},
		// dockerd 20.10 still lists bulkn1, which nweb is on, as
		// dangling; hostd answers what the filter is documented to.
		{args: []string{"network", "ls", "--format", "{{.Name}}", "-f", "dangling=true"}, kind: words, want: "exit 0: bulkn1,bulkn2",
			hostd: "exit 0: bulkn2"},
		{args: []string{"ps", "--format", "{{.Names}}", "-f", "network=bulkn1"}, kind: words, want: "exit 0: nweb"},
		{args: []string{"network", "connect", "--alias", "second", "bulkn2", "nweb"}, want: "exit 0"},
		{args: []string{"network", "connect", "bulkn2", "nweb"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"inspect", "-f", "{{len .NetworkSettings.Networks}}", "nweb"}, kind: words, want: "exit 0: 2"},
		{args: []string{"run", "--rm", "--network", "bulkn2", img, "busybox", "nslookup", "second"}, kind: errText, want: "exit 0: Name:\tsecond"},
		{args: []string{"network", "disconnect", "bulkn2", "nweb"}, want: "exit 0"},
		{args: []string{"inspect", "-f", "{{len .NetworkSettings.Networks}}", "nweb"}, kind: words, want: "exit 0: 1"},
		{args: []string{"network", "rm", "bulkn1"}, kind: errText, want: "exit 1: active endpoints"},
		{args: []string{"rm", "-f", "nweb"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"network", "prune", "-f", "--filter", "label=tier=front"}, kind: words, want: "exit 0: Deleted Networks:,bulkn2"},
		{args: []string{"network", "rm", "bulkn1"}, kind: words, want: "exit 0: bulkn1"},
		{args: []string{"network", "ls", "-q", "-f", "type=custom"}, kind: lines, want: "exit 0, 0 lines"},
		{args: []string{"network", "rm", "host"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"network", "create", "--internal", "bulkint"}, kind: errText, want: "exit 0: ", hostd: "exit 1: Internal (--internal)"},
		{args: []string{"network", "rm", "bulkint"}, kind: exitOnly, want: "exit 0", hostd: "exit 1"},
	}
}

// TestNetworkConformance runs networkScenario against hostd (with its
// networks, in a network namespace of the test's own) and dockerd.
func TestNetworkConformance(t *testing.T) {
	if !testimg.InNetns(t) {
		return
	}
	img := linuxImage(t, v1.Config{Cmd: []string{"sh"}})
	backends := []backend{startHostdOn(t, nettest.Manager(t, nettest.FakeUpstream(t))), startDockerd(t)}
	for _, b := range backends {
		testimg.Push(t, b.push+"/busybox:latest", img)
	}
	runScenario(t, backends, networkScenario())
}
