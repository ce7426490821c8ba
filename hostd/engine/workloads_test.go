package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseWorkload(t *testing.T) {
	yml := `
image: nginx:1.25
command: ["nginx", "-g", "daemon off;"]
env:
  B: two
  A: one
ports: ["8080:80", "127.0.0.1:5353:53/udp"]
volumes: ["/srv/web:/usr/share/nginx/html:ro", "cache:/var/cache/nginx"]
workdir: /srv
user: "101:101"
restart: on-failure:5
healthcheck:
  command: wget -q -O- http://localhost/
  interval: 10s
  retries: 2
  timeout: 3s
  startPeriod: 30s
limits: {memory: 256m, cpus: 0.5, pids: 200}
readOnly: true
network: bridge
`
	got, err := ParseWorkload([]byte(yml), "/etc/hostd/containers/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := ContainerSpec{
		Name: "web", Image: "nginx:1.25", Command: []string{"nginx", "-g", "daemon off;"},
		Env:   Env{"A=one", "B=two"},
		Ports: []string{"8080:80", "127.0.0.1:5353:53/udp"}, Volumes: []string{"/srv/web:/usr/share/nginx/html:ro", "cache:/var/cache/nginx"},
		Workdir: "/srv", User: "101:101", Restart: "on-failure:5",
		Healthcheck: &Healthcheck{Command: Command{"/bin/sh", "-c", "wget -q -O- http://localhost/"}, Interval: Duration(10 * time.Second), Retries: 2, Timeout: Duration(3 * time.Second), StartPeriod: Duration(30 * time.Second)},
		Limits:      Limits{Memory: "256m", CPUs: 0.5, Pids: 200}, ReadOnly: true, Network: "bridge",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseWorkloadReportsEveryProblem(t *testing.T) {
	yml := `
name: "bad name"
ports: ["99999:80", "x"]
volumes: ["relative:/x", "/a:b"]
restart: sometimes
limits: {memory: lots, cpus: -1}
network: "-overlay"
`
	_, err := ParseWorkload([]byte(yml), "w.yaml")
	if err == nil {
		t.Fatal("got no error")
	}
	for _, want := range []string{"w.yaml: name:", "w.yaml: image: required", "ports[0]", "ports[1]", "volumes[1]", "restart:", "limits.memory", "limits.cpus", "network:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestParseWorkloadRefusesUnknownFields(t *testing.T) {
	if _, err := ParseWorkload([]byte("image: x\nimagee: y\n"), "w.yaml"); err == nil {
		t.Errorf("an unknown field was accepted")
	}
}

func TestLoadWorkloadsKeepsGoodFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("image: busybox\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("image: busybox\nrestart: always\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("restart: never\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a workload"), 0o644)
	specs, err := LoadWorkloads(dir)
	if err == nil || !strings.Contains(err.Error(), "c.yaml") {
		t.Errorf("got %v, want c.yaml reported", err)
	}
	if len(specs) != 2 || specs[0].Name != "a" || specs[1].Name != "b" {
		t.Errorf("got %+v, want a and b", specs)
	}
}

func FuzzParseWorkload(f *testing.F) {
	f.Add([]byte("image: busybox\nports: ['1:2']\n"))
	f.Add([]byte("env: {A: b}\nhealthcheck: {command: x, interval: 1s}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseWorkload(b, "f.yaml")
	})
}

func TestRestartRules(t *testing.T) {
	cases := []struct {
		policy   string
		code     int
		restarts int
		stopped  bool
		want     bool
	}{
		{"no", 1, 0, false, false},
		{"always", 0, 10, false, true},
		{"always", 0, 0, true, false},
		{"unless-stopped", 0, 0, false, true},
		{"on-failure", 0, 0, false, false},
		{"on-failure", 1, 100, false, true},
		{"on-failure:2", 1, 1, false, true},
		{"on-failure:2", 1, 2, false, false},
	}
	for _, c := range cases {
		p, err := ParseRestart(c.policy)
		if err != nil {
			t.Fatal(err)
		}
		if got := ShouldRestart(p, c.code, c.restarts, c.stopped); got != c.want {
			t.Errorf("%s code %d after %d (stopped %v): got %v, want %v", c.policy, c.code, c.restarts, c.stopped, got, c.want)
		}
	}
	ms := time.Millisecond
	delays := []time.Duration{NextBackoff(0, 0), NextBackoff(100*ms, 0), NextBackoff(400*ms, 9*time.Second),
		NextBackoff(40*time.Second, 0), NextBackoff(time.Minute, time.Second), NextBackoff(800*ms, 10*time.Second), NextBackoff(0, time.Minute)}
	want := []time.Duration{100 * ms, 200 * ms, 800 * ms, time.Minute, time.Minute, 100 * ms, 100 * ms}
	if !reflect.DeepEqual(delays, want) {
		t.Errorf("got delays %v, want %v", delays, want)
	}
}
