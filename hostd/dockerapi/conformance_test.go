package dockerapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/dockerapi"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

func TestMain(m *testing.M) { testimg.Main(m) }

// backend is a Docker API server driven by the stock docker CLI: hostd's,
// or Debian's dockerd as the reference.
type backend struct {
	name   string
	sock   string
	reg    string // host:port of the backend's registry, as it reaches it
	push   string // host:port of the same registry, as the test reaches it
	config string // DOCKER_CONFIG
	netns  string // the network namespace it runs in ("" for the test's)
	auth   string // host:port of a registry with htpasswd auth, for {auth}
	dir    string // a directory for files the commands write, for {dir}
}

// docker runs the CLI against b; $(docker args) inside args is expanded as
// a shell would, into the words of that command's output.
func (b backend) docker(t testing.TB, args ...string) (string, int) {
	t.Helper()
	var expanded []string
	for _, a := range args {
		a = strings.NewReplacer("{reg}", b.reg, "{auth}", b.auth, "{dir}", b.dir).Replace(a)
		start, end := strings.Index(a, "$("), strings.LastIndex(a, ")")
		if start < 0 || end < start {
			expanded = append(expanded, a)
			continue
		}
		out, _ := b.docker(t, strings.Fields(a[start+2:end])...)
		if start == 0 && end == len(a)-1 {
			// A whole word: split into words, as an unquoted $() is.
			expanded = append(expanded, strings.Fields(out)...)
			continue
		}
		expanded = append(expanded, a[:start]+strings.TrimSpace(out)+a[end+1:])
	}
	return b.client(t, "", "docker", append([]string{"-H", "unix://" + b.sock}, expanded...)...)
}

// client runs a Docker API client (docker, docker-compose) against b, in
// dir ("": here), and returns its output and exit code.
func (b backend) client(t testing.TB, dir, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+b.sock, "DOCKER_CONFIG="+b.config, "DOCKER_CLI_HINTS=false", "COMPOSE_INTERACTIVE_NO_CLI=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %s %s: %v", b.name, name, strings.Join(args, " "), err)
	}
	return string(out), 0
}

// outcome kinds: what of a command's result the scenario compares.
const (
	exitOnly = iota // the exit code
	lines           // the exit code and the number of output lines
	words           // the exit code and the sorted output lines
	errText         // the exit code and whether the output has want's text
)

// step is one command of the scenario: the outcome both backends must
// give (hostd, when set, is a documented difference: an option hostd
// refuses), or Go to run before it (push a new image to the registries).
type step struct {
	args    []string
	kind    int
	want    string
	hostd   string
	dockerd string // a documented difference the other way: what dockerd 20.10 lacks
	before  func(t *testing.T, b backend)
}

// outcome reduces a command's result to the comparable string; want is
// the backend's expected outcome, for errText.
func (s step) outcome(out string, code int, want string) string {
	var ls []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	switch s.kind {
	case lines:
		return fmt.Sprintf("exit %d, %d lines", code, len(ls))
	case words:
		sort.Strings(ls)
		return fmt.Sprintf("exit %d: %s", code, strings.Join(ls, ","))
	case errText:
		// want is "exit N: text"; the text is matched without case, as
		// dockerd versions differ in capitals ("Invalid filter").
		_, text, _ := strings.Cut(want, ": ")
		if strings.Contains(strings.ToLower(out), strings.ToLower(text)) {
			return fmt.Sprintf("exit %d: %s", code, text)
		}
		return fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(out))
	}
	return fmt.Sprintf("exit %d", code)
}

const names = "--format={{.Names}}"

// scenario is the everyday-command list both backends run, in order.
// Containers, oldest first: web, db (running), done0, done3 (exited),
// vol (named volume), port80 (exposes 80), fresh (created). dockerd
// wants names of two characters at least.
func scenario(img2, volImg v1.Image) []step {
	run := func(args ...string) []string { return append([]string{"run", "--network", "none"}, args...) }
	return []step{
		{args: []string{"pull", "{reg}/busybox:latest"}, want: "exit 0"},
		{args: []string{"pull", "{reg}/busybox:old"}, want: "exit 0"},
		{args: run("-d", "--name", "web", "--label", "app=web", "{reg}/busybox", "sleep", "300"), want: "exit 0"},
		{args: run("-d", "--name", "db", "--label", "app=db", "{reg}/busybox", "sleep", "300"), want: "exit 0"},
		{args: run("--name", "done0", "{reg}/busybox", "true"), want: "exit 0"},
		{args: run("--name", "done3", "{reg}/busybox", "sh", "-c", "exit 3"), want: "exit 3"},
		{args: run("--name", "vol", "-v", "bulkheadvol:/data", "{reg}/busybox", "true"), want: "exit 0"},
		{args: []string{"create", "--network", "none", "--name", "port80", "--expose", "80", "{reg}/busybox", "true"}, want: "exit 0"},
		{args: []string{"create", "--network", "none", "--name", "fresh", "{reg}/busybox", "true"}, want: "exit 0"},

		{args: []string{"ps", names}, kind: words, want: "exit 0: db,web"},
		{args: []string{"ps", "-a", names}, kind: words, want: "exit 0: db,done0,done3,fresh,port80,vol,web"},
		{args: []string{"ps", "-a", "-f", "name=web", names}, kind: words, want: "exit 0: web"},
		{args: []string{"ps", "-a", "-f", "name=done", names}, kind: words, want: "exit 0: done0,done3"},
		{args: []string{"ps", "-a", "-f", "name=^/done0$", names}, kind: words, want: "exit 0: done0"},
		{args: []string{"ps", "-a", "-f", "name=^done0$", names}, kind: words, want: "exit 0: done0"},
		{args: []string{"ps", "-a", "-f", "id=$(ps -aq -f name=^fresh$)", names}, kind: words, want: "exit 0: fresh"},
		{args: []string{"ps", "-f", "label=app=web", names}, kind: words, want: "exit 0: web"},
		{args: []string{"ps", "-f", "label=app", names}, kind: words, want: "exit 0: db,web"},
		{args: []string{"ps", "-f", "label=app", "-f", "label=app=db", names}, kind: words, want: "exit 0: db"},
		{args: []string{"ps", "-a", "-f", "status=exited", names}, kind: words, want: "exit 0: done0,done3,vol"},
		{args: []string{"ps", "-f", "status=exited", names}, kind: words, want: "exit 0: done0,done3,vol"},
		{args: []string{"ps", "-a", "-f", "status=created", names}, kind: words, want: "exit 0: fresh,port80"},
		{args: []string{"ps", "-f", "status=running", "-f", "status=created", names}, kind: words, want: "exit 0: db,fresh,port80,web"},
		{args: []string{"ps", "-a", "-f", "exited=3", names}, kind: words, want: "exit 0: done3"},
		{args: []string{"ps", "-a", "-f", "exited=0", names}, kind: words, want: "exit 0: done0,vol"},
		{args: []string{"ps", "-n", "1", names}, kind: words, want: "exit 0: fresh"},
		{args: []string{"ps", "-n", "2", names}, kind: words, want: "exit 0: fresh,port80"},
		{args: []string{"ps", "-l", names}, kind: words, want: "exit 0: fresh"},
		{args: []string{"ps", "-a", "-f", "before=done3", names}, kind: words, want: "exit 0: db,done0,web"},
		{args: []string{"ps", "-a", "-f", "since=vol", names}, kind: words, want: "exit 0: fresh,port80"},
		{args: []string{"ps", "-a", "-f", "ancestor={reg}/busybox", names}, kind: words, want: "exit 0: db,done0,done3,fresh,port80,vol,web"},
		{args: []string{"ps", "-a", "-f", "ancestor={reg}/busybox:old", names}, kind: words, want: "exit 0: "},
		{args: []string{"ps", "-a", "-f", "ancestor=nosuch", names}, kind: words, want: "exit 0: "},
		{args: []string{"ps", "-a", "-f", "health=none", names}, kind: words, want: "exit 0: db,done0,done3,fresh,port80,vol,web"},
		{args: []string{"ps", "-a", "-f", "health=healthy", names}, kind: words, want: "exit 0: "},
		{args: []string{"ps", "-a", "-f", "network=none", names}, kind: words, want: "exit 0: db,done0,done3,fresh,port80,vol,web"},
		{args: []string{"ps", "-a", "-f", "network=bridge", names}, kind: words, want: "exit 0: "},
		{args: []string{"ps", "-a", "-f", "volume=bulkheadvol", names}, kind: words, want: "exit 0: vol"},
		{args: []string{"ps", "-a", "-f", "volume=/data", names}, kind: words, want: "exit 0: vol"},
		// Only a running container's ports match, as with dockerd.
		{args: []string{"ps", "-a", "-f", "expose=80", names}, kind: words, want: "exit 0: "},
		{args: []string{"ps", "-a", "-f", "expose=81-90/tcp", names}, kind: words, want: "exit 0: "},
		{args: []string{"ps", "-a", "-f", "is-task=true", names}, kind: words, want: "exit 0: "},
		{args: []string{"ps", "-a", "-f", "is-task=false", "-f", "name=web", names}, kind: words, want: "exit 0: web"},
		{args: []string{"ps", "-s", names}, kind: words, want: "exit 0: db,web"},
		{args: []string{"ps", "-a", "-f", "nosuch=1"}, kind: errText, want: "exit 1: invalid filter 'nosuch'"},
		{args: []string{"ps", "-a", "-f", "status=bogus"}, kind: errText, want: "exit 1: invalid filter 'status=bogus'"},
		{args: []string{"ps", "-a", "-f", "health=bogus"}, kind: errText, want: "exit 1: unrecognised filter value for health: bogus"},
		{args: []string{"ps", "-a", "-f", "before=nosuch"}, kind: errText, want: "exit 1: no such container"},
		{args: []string{"ps", "-a", "-f", "exited=x"}, kind: exitOnly, want: "exit 1"},

		// docker stop $(docker ps -q -f name=web) stops web, not every
		// container.
		{args: []string{"stop", "-t", "1", "$(ps -q -f name=web)"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"ps", names}, kind: words, want: "exit 0: db"},

		{args: []string{"images", "-q", "-f", "dangling=true"}, kind: lines, want: "exit 0, 0 lines"},
		{args: []string{"images", "-f", "reference=*/busybox:old", "--format={{.Tag}}"}, kind: words, want: "exit 0: old"},
		{args: []string{"images", "-f", "reference=*/busybox", "--format={{.Tag}}"}, kind: words, want: "exit 0: latest,old"},
		{args: []string{"images", "-f", "reference=alpine", "--format={{.Tag}}"}, kind: words, want: "exit 0: "},
		{args: []string{"images", "-q", "-f", "label=nosuch"}, kind: lines, want: "exit 0, 0 lines"},
		{args: []string{"images", "-f", "nosuch=1"}, kind: errText, want: "exit 1: invalid filter 'nosuch'"},
		{args: []string{"images", "-f", "dangling=maybe"}, kind: errText, want: "exit 1: invalid filter 'dangling=[maybe]'"},
		// The old tag moves to a new image: the one it left is dangling.
		{args: []string{"pull", "{reg}/busybox:old"}, want: "exit 0", before: func(t *testing.T, b backend) {
			testimg.Push(t, b.push+"/busybox:old", img2)
		}},
		{args: []string{"images", "-q", "-f", "dangling=true"}, kind: lines, want: "exit 0, 1 lines"},
		// dockerd lists an untagged image that still has a digest as not
		// dangling too.
		{args: []string{"images", "-q", "-f", "dangling=false"}, kind: lines, want: "exit 0, 3 lines"},
		// docker rmi $(docker images -qf dangling=true) removes only it.
		{args: []string{"rmi", "$(images -q -f dangling=true)"}, kind: exitOnly, want: "exit 0"},
		{args: []string{"images", "--format={{.Tag}}"}, kind: words, want: "exit 0: latest,old"},

		// Labels are kept and returned.
		{args: []string{"inspect", "-f", "{{.Config.Labels.app}}", "web"}, kind: words, want: "exit 0: web"},
		// Options hostd does not implement are refused by name, not dropped.
		{args: run("--rm", "--log-driver", "none", "{reg}/busybox", "true"), kind: errText, want: "exit 0: ",
			hostd: `exit 125: HostConfig.LogConfig.Type "none" (--log-driver`},
		{args: run("--rm", "--log-opt", "labels=app", "--log-opt", "max-size=1m", "{reg}/busybox", "true"), kind: errText, want: "exit 0: ",
			hostd: "exit 125: HostConfig.LogConfig.Config.labels (--log-opt labels)"},
		{args: run("--rm", "--pid", "host", "{reg}/busybox", "true"), kind: errText, want: "exit 0: ",
			hostd: "exit 125: HostConfig.PidMode (--pid)"},
		{args: run("--rm", "--gpus", "all", "{reg}/busybox", "true"), kind: errText, want: "exit 125: could not select device driver",
			hostd: "exit 125: HostConfig.DeviceRequests (--gpus)"},
		{args: run("--rm", "--security-opt", "apparmor=unconfined", "{reg}/busybox", "true"), kind: errText, want: "exit 0: ",
			hostd: "exit 125: security option \"apparmor=unconfined\""},
		{args: run("--rm", "--security-opt", "label=disable", "{reg}/busybox", "true"), kind: errText, want: "exit 0: ",
			hostd: "exit 125: security option \"label=disable\""},

		// Options implemented: capabilities, resolver, hosts, stop signal
		// and timeout.
		{args: run("--rm", "--cap-drop", "ALL", "{reg}/busybox", "grep", "CapEff", "/proc/self/status"), kind: words,
			want: "exit 0: CapEff:\t0000000000000000"},
		{args: run("--rm", "--cap-add", "net_admin", "{reg}/busybox", "grep", "CapEff", "/proc/self/status"), kind: words,
			want: "exit 0: CapEff:\t00000000a80435fb"},
		// Root without CAP_DAC_OVERRIDE cannot write to another user's
		// directory.
		{args: run("--rm", "--cap-drop", "DAC_OVERRIDE", "{reg}/busybox", "touch", "/home/app/x"), want: "exit 1"},
		{args: run("--rm", "{reg}/busybox", "touch", "/home/app/x"), want: "exit 0"},
		// A command that is not there: an error, and the --rm container
		// gone, not a CLI waiting for ever.
		{args: run("--rm", "--name", "nocmd", "{reg}/busybox", "nosuchcommand"), want: "exit 127"},
		{args: []string{"ps", "-a", "-f", "name=nocmd", names}, kind: words, want: "exit 0: "},
		{args: run("--rm", "--cap-add", "bogus", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		{args: run("--rm", "--dns", "10.1.2.3", "--dns-search", "example.com", "{reg}/busybox", "grep", "-E", "^(nameserver|search)", "/etc/resolv.conf"),
			kind: words, want: "exit 0: nameserver 10.1.2.3,search example.com"},
		{args: run("--rm", "--add-host", "db.local:10.9.8.7", "{reg}/busybox", "grep", "db.local", "/etc/hosts"), kind: words,
			want: "exit 0: 10.9.8.7\tdb.local"},
		{args: run("-d", "--name", "sig", "--stop-signal", "USR1", "--stop-timeout", "30", "{reg}/busybox", "sh", "-c",
			"trap 'exit 7' USR1; while true; do sleep 0.1; done"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.Config.StopSignal}} {{.Config.StopTimeout}}", "sig"}, kind: words, want: "exit 0: USR1 30"},
		{args: []string{"stop", "sig"}, kind: words, want: "exit 0: sig"},
		{args: []string{"inspect", "-f", "{{.State.ExitCode}}", "sig"}, kind: words, want: "exit 0: 7"},

		// --ulimit, --shm-size, --sysctl, --device.
		{args: run("--rm", "--ulimit", "nofile=100:200", "{reg}/busybox", "sh", "-c", "ulimit -n; ulimit -Hn"), kind: words, want: "exit 0: 100,200"},
		{args: run("--rm", "--shm-size", "1m", "{reg}/busybox", "sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'"), kind: words, want: "exit 0: 1024"},
		{args: run("--rm", "{reg}/busybox", "sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'"), kind: words, want: "exit 0: 65536"},
		{args: run("--rm", "--sysctl", "kernel.shmmax=1000000", "--sysctl", "net.core.somaxconn=1234", "{reg}/busybox",
			"cat", "/proc/sys/kernel/shmmax", "/proc/sys/net/core/somaxconn"), kind: words, want: "exit 0: 1000000,1234"},
		{args: run("--rm", "--sysctl", "kernel.hostname=x", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		{args: []string{"run", "--rm", "--network", "host", "--sysctl", "net.core.somaxconn=1", "{reg}/busybox", "true"}, kind: exitOnly, want: "exit 125"},
		{args: run("--rm", "--device", "/dev/null:/dev/mynull", "{reg}/busybox", "sh", "-c", "echo x > /dev/mynull && ls -l /dev/mynull | cut -c1"),
			kind: words, want: "exit 0: c"},
		{args: run("--rm", "--device", "/proc/self/status:/dev/x", "{reg}/busybox", "true"), kind: errText, want: "exit 125: not a device node"},
		// --privileged: mount, every device; not without it.
		// dockerd grants every capability the kernel knows, and fails where
		// its own bounding set lacks one (this sandbox's lacks
		// CAP_SYS_RESOURCE); hostd grants those it has.
		{args: run("--rm", "--privileged", "{reg}/busybox", "sh", "-c", "mkdir /m && mount -t tmpfs none /m && ls /dev/loop0"), kind: errText,
			want: "exit 0: /dev/loop0", dockerd: privilegedDockerd()},
		{args: run("--rm", "{reg}/busybox", "sh", "-c", "mkdir /m && mount -t tmpfs none /m"), kind: exitOnly, want: "exit 1"},
		{args: run("--rm", "{reg}/busybox", "ls", "/dev/loop0"), kind: exitOnly, want: "exit 1"},
		// --security-opt: seccomp=unconfined, a profile of one's own (the
		// CLI sends the file's content), no-new-privileges.
		{args: run("--rm", "{reg}/busybox", "unshare", "-U", "true"), kind: exitOnly, want: "exit 1"},
		{args: run("--rm", "--security-opt", "seccomp=unconfined", "{reg}/busybox", "unshare", "-U", "true"), kind: exitOnly, want: "exit 0"},
		{args: run("--rm", "--security-opt", "seccomp=/tmp/"+seccompFile, "{reg}/busybox", "mkdir", "/x"), kind: exitOnly, want: "exit 1",
			before: hostFile(seccompFile, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`)},
		{args: run("--rm", "{reg}/busybox", "mkdir", "/x"), kind: exitOnly, want: "exit 0"},
		{args: run("--rm", "{reg}/busybox", "grep", "NoNewPrivs", "/proc/self/status"), kind: words, want: "exit 0: NoNewPrivs:\t0"},
		{args: run("--rm", "--security-opt", "no-new-privileges", "{reg}/busybox", "grep", "NoNewPrivs", "/proc/self/status"), kind: words, want: "exit 0: NoNewPrivs:\t1"},
		{args: run("--rm", "--security-opt", "no-new-privileges=false", "{reg}/busybox", "grep", "NoNewPrivs", "/proc/self/status"), kind: words, want: "exit 0: NoNewPrivs:\t0"},
		// --init: PID 1 is docker-init, which passes the exit code and a
		// stop's SIGTERM to the command.
		{args: run("--rm", "--init", "{reg}/busybox", "cat", "/proc/1/comm"), kind: words, want: "exit 0: docker-init"},
		{args: run("--rm", "--init", "{reg}/busybox", "sh", "-c", "exit 3"), want: "exit 3"},
		{args: run("-d", "--name", "initsig", "--init", "{reg}/busybox", "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"stop", "initsig"}, kind: words, want: "exit 0: initsig"},
		{args: []string{"inspect", "-f", "{{.State.ExitCode}}", "initsig"}, kind: words, want: "exit 0: 7"},
		{args: []string{"rm", "initsig"}, want: "exit 0"},
		// CPU and memory options, in the container's cgroup, and their
		// checks.
		{args: run("--rm", "--cpu-shares", "512", "--cpu-quota", "50000", "--cpu-period", "200000", "--cpuset-cpus", "0", "{reg}/busybox", "cat",
			"/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/cpuset/cpuset.cpus"),
			kind: words, want: "exit 0: 0,200000,50000,512"},
		{args: run("--rm", "--memory", "64m", "--memory-swap", "96m", "--memory-reservation", "32m", "{reg}/busybox", "cat",
			"/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes"),
			kind: words, want: "exit 0: 100663296,33554432"},
		{args: run("--rm", "--memory", "64m", "--memory-swap", "32m", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		{args: run("--rm", "--memory-swap", "96m", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		{args: run("--rm", "--memory", "32m", "--memory-reservation", "64m", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		{args: run("--rm", "--cpus", "1", "--cpu-period", "100000", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		{args: run("--rm", "--cpu-period", "10", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		{args: run("--rm", "--cpuset-cpus", "0-1000", "{reg}/busybox", "true"), kind: exitOnly, want: "exit 125"},
		// inspect reports what was set.
		{args: []string{"create", "--network", "none", "--name", "hopts", "--privileged", "--ulimit", "nofile=100:200", "--sysctl", "kernel.shmmax=1000000",
			"--shm-size", "1m", "--device", "/dev/null:/dev/mynull", "--security-opt", "no-new-privileges", "--init", "--cpu-shares", "512",
			"--cpuset-cpus", "0", "--memory", "64m", "--memory-swap", "96m", "--memory-reservation", "32m", "{reg}/busybox", "true"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.HostConfig.Privileged}} {{json .HostConfig.Ulimits}} {{.HostConfig.Sysctls}} {{.HostConfig.ShmSize}} " +
			"{{.HostConfig.Devices}} {{.HostConfig.SecurityOpt}} {{json .HostConfig.Init}} {{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}} " +
			"{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}}", "hopts"}, kind: words,
			want: `exit 0: true [{"Hard":200,"Name":"nofile","Soft":100}] map[kernel.shmmax:1000000] 1048576 [map[CgroupPermissions:rwm PathInContainer:/dev/mynull PathOnHost:/dev/null]] [no-new-privileges label=disable] true 512 0 67108864 100663296 33554432`,
			// dockerd adds label=disable (SELinux) to a privileged
			// container's options; hostd has no SELinux labels.
			hostd: `exit 0: true [{"Hard":200,"Name":"nofile","Soft":100}] map[kernel.shmmax:1000000] 1048576 [map[CgroupPermissions:rwm PathInContainer:/dev/mynull PathOnHost:/dev/null]] [no-new-privileges] true 512 0 67108864 100663296 33554432`},
		{args: []string{"rm", "hopts"}, want: "exit 0"},

		// top lists the processes of a running container.
		{args: []string{"top", "db"}, kind: lines, want: "exit 0, 2 lines"},
		{args: []string{"top", "web"}, want: "exit 1"},
		// stats: one sample from the cgroup.
		{args: []string{"stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "db"}, kind: words, want: "exit 0: db 1"},
		{args: []string{"stats", "--no-stream", "--format", "{{.Name}}"}, kind: words, want: "exit 0: db"},
		// pause freezes the processes; stop still works on a paused one.
		{args: []string{"pause", "db"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"ps", "-f", "status=paused", names}, kind: words, want: "exit 0: db"},
		{args: []string{"inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "db"}, kind: words, want: "exit 0: paused true"},
		{args: []string{"pause", "db"}, want: "exit 1"},
		{args: []string{"unpause", "db"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"ps", "-f", "status=running", names}, kind: words, want: "exit 0: db"},
		{args: []string{"unpause", "db"}, want: "exit 1"},
		{args: []string{"pause", "web"}, want: "exit 1"},
		// rename, tag, prune.
		{args: []string{"rename", "fresh", "fresh2"}, want: "exit 0"},
		{args: []string{"ps", "-a", "-f", "name=fresh", names}, kind: words, want: "exit 0: fresh2"},
		{args: []string{"rename", "fresh2", "db"}, want: "exit 1"},
		{args: []string{"rename", "nosuch", "other"}, want: "exit 1"},
		{args: []string{"tag", "{reg}/busybox:latest", "{reg}/busybox:copy"}, want: "exit 0"},
		{args: []string{"images", "--format={{.Tag}}"}, kind: words, want: "exit 0: copy,latest,old"},
		{args: []string{"inspect", "-f", "{{.Id}}", "{reg}/busybox:copy"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"rmi", "{reg}/busybox:copy"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"images", "--format={{.Tag}}"}, kind: words, want: "exit 0: latest,old"},
		{args: []string{"container", "prune", "-f", "--filter", "nosuch=1"}, kind: errText, want: "exit 1: invalid filter 'nosuch'"},
		{args: []string{"container", "prune", "-f", "--filter", "label=app=web"}, want: "exit 0"},
		{args: []string{"ps", "-a", names}, kind: words, want: "exit 0: db,done0,done3,fresh2,port80,sig,vol"},
		{args: []string{"container", "prune", "-f"}, want: "exit 0"},
		{args: []string{"ps", "-a", names}, kind: words, want: "exit 0: db"},
		{args: []string{"image", "prune", "-f"}, want: "exit 0"},
		{args: []string{"images", "--format={{.Tag}}"}, kind: words, want: "exit 0: latest,old"},
		{args: []string{"image", "prune", "-a", "-f"}, want: "exit 0"},
		{args: []string{"images", "--format={{.Tag}}"}, kind: words, want: "exit 0: latest"},

		// Named volumes: created, mounted, kept, listed, removed.
		{args: []string{"volume", "create", "bulkheadv2"}, kind: words, want: "exit 0: bulkheadv2"},
		{args: []string{"volume", "ls", "--format={{.Name}}"}, kind: words, want: "exit 0: bulkheadv2,bulkheadvol"},
		{args: []string{"volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "bulkheadv2"}, kind: words, want: "exit 0: bulkheadv2 local"},
		{args: run("--rm", "-v", "bulkheadv2:/d", "{reg}/busybox", "sh", "-c", "echo kept > /d/f"), want: "exit 0"},
		{args: run("--rm", "-v", "bulkheadv2:/d", "{reg}/busybox", "cat", "/d/f"), kind: words, want: "exit 0: kept"},
		{args: []string{"create", "--network", "none", "--name", "holder", "-v", "bulkheadv3:/d", "{reg}/busybox", "true"}, want: "exit 0"},
		{args: []string{"volume", "ls", "-f", "dangling=false", "--format={{.Name}}"}, kind: words, want: "exit 0: bulkheadv3"},
		{args: []string{"volume", "ls", "-f", "name=v2", "--format={{.Name}}"}, kind: words, want: "exit 0: bulkheadv2"},
		{args: []string{"volume", "rm", "bulkheadv3"}, want: "exit 1"},
		{args: []string{"rm", "holder"}, want: "exit 0"},
		{args: []string{"volume", "rm", "bulkheadv2", "bulkheadv3"}, kind: words, want: "exit 0: bulkheadv2,bulkheadv3"},
		{args: []string{"volume", "rm", "nosuch"}, want: "exit 1"},
		{args: []string{"volume", "ls", "-f", "bogus=1"}, kind: errText, want: "exit 1: invalid filter 'bogus'"},
		{args: []string{"volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "bulkheadtmp"}, kind: errText, want: "exit 0: ",
			hostd: "exit 1: driver options [device type] (-o): unsupported"},
		{args: []string{"volume", "rm", "-f", "bulkheadtmp"}, want: "exit 0"},

		// --mount: data written lands in the volume, not the rootfs.
		{args: run("--rm", "--mount", "type=volume,src=bulkheadmv,dst=/m", "{reg}/busybox", "sh", "-c", "echo x > /m/f"), want: "exit 0"},
		{args: run("--rm", "-v", "bulkheadmv:/m", "{reg}/busybox", "cat", "/m/f"), kind: words, want: "exit 0: x"},
		{args: run("--rm", "--mount", "type=volume,src=bulkheadmv,dst=/m,readonly", "{reg}/busybox", "sh", "-c", "echo y > /m/f"), want: "exit 1"},
		{args: []string{"volume", "rm", "bulkheadmv"}, kind: words, want: "exit 0: bulkheadmv"},
		{args: run("--rm", "--mount", "type=bind,src={dir},dst=/m", "{reg}/busybox", "sh", "-c", "echo b > /m/bound; cat /m/bound"), kind: words, want: "exit 0: b"},
		{args: run("--rm", "--mount", "type=bind,src={dir}/nosuch,dst=/m", "{reg}/busybox", "true"), kind: errText,
			want: "exit 125: bind source path does not exist"},
		{args: run("--rm", "--mount", "type=bind,src={dir},dst=/m,bind-propagation=rprivate", "{reg}/busybox", "true"), kind: errText, want: "exit 0: ",
			hostd: "exit 125: HostConfig.Mounts[0].BindOptions.Propagation (--mount bind-propagation)"},
		{args: run("--rm", "--mount", "type=volume,src=bulkheadmo,dst=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs", "{reg}/busybox", "true"), kind: errText, want: "exit 0: ",
			hostd: "exit 125: VolumeOptions.DriverConfig.Options (--mount volume-opt)"},
		{args: []string{"volume", "rm", "-f", "bulkheadmo"}, want: "exit 0"},
		// tmpfs: size, mode, Docker's default options.
		{args: run("--rm", "--tmpfs", "/t:size=1m", "{reg}/busybox", "sh", "-c", "busybox df -k /t | busybox tail -n 1 | busybox awk '{print $2}'"), kind: words,
			want: "exit 0: 1024"},
		{args: run("--rm", "--tmpfs", "/t:mode=1770", "{reg}/busybox", "sh", "-c", "busybox stat -c %a /t; grep ' /t ' /proc/mounts | grep -c nosuid,nodev,noexec"), kind: words,
			want: "exit 0: 1,1770"},
		{args: run("--rm", "--tmpfs", "/t:exec", "{reg}/busybox", "sh", "-c", "grep ' /t ' /proc/mounts | grep -c noexec"), kind: words, want: "exit 1: 0"},
		{args: run("--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=1700", "{reg}/busybox", "sh", "-c", "busybox df -k /t | busybox tail -n 1 | busybox awk '{print $2}'; busybox stat -c %a /t"), kind: words,
			want: "exit 0: 1700,2048"},
		{args: run("--rm", "--read-only", "--tmpfs", "/t", "{reg}/busybox", "sh", "-c", "echo x > /t/f && cat /t/f"), kind: words, want: "exit 0: x"},
		{args: []string{"create", "--name", "tmpfsi", "--tmpfs", "/t:size=1m", "--mount", "type=tmpfs,dst=/u", "{reg}/busybox"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.HostConfig.Tmpfs}} {{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}}{{end}}", "tmpfsi"}, kind: words,
			want: "exit 0: map[/t:size=1m] tmpfs:/u:true"},
		{args: []string{"rm", "tmpfsi"}, want: "exit 0"},
		// Anonymous volumes: -v /path makes one, rm -v removes it.
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 1 lines"},
		{args: run("--name", "anon", "-v", "/data", "{reg}/busybox", "sh", "-c", "echo a > /data/f"), want: "exit 0"},
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 2 lines"},
		{args: []string{"inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Destination}} {{len .Name}}{{end}}", "anon"}, kind: words, want: "exit 0: volume /data 64"},
		{args: []string{"rm", "-v", "anon"}, kind: words, want: "exit 0: anon"},
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 1 lines"},
		{args: run("--rm", "-v", "/data", "--mount", "type=volume,dst=/more", "{reg}/busybox", "true"), want: "exit 0"},
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 1 lines"},
		// Copy-up: a new volume gets the image's content at its path,
		// unless volume-nocopy; the image's VOLUME gets a volume.
		{args: run("--rm", "-v", "bulkheadcu:/home", "{reg}/busybox", "true"), want: "exit 0"},
		{args: run("--rm", "-v", "bulkheadcu:/x", "{reg}/busybox", "ls", "/x"), kind: words, want: "exit 0: app"},
		{args: run("--rm", "--mount", "type=volume,src=bulkheadcu2,dst=/home,volume-nocopy", "{reg}/busybox", "ls", "/home"), kind: words, want: "exit 0: "},
		{args: run("--rm", "--mount", "type=volume,src=bulkheadcu3,dst=/home", "{reg}/busybox", "sh", "-c", "ls -ln /home | grep -c ' 1000 *1000 '"), kind: words, want: "exit 0: 1"},
		{args: []string{"volume", "rm", "bulkheadcu", "bulkheadcu2", "bulkheadcu3"}, kind: lines, want: "exit 0, 3 lines"},
		{args: []string{"pull", "{reg}/volimg"}, kind: exitOnly, want: "exit 0", before: func(t *testing.T, b backend) {
			testimg.Push(t, b.push+"/volimg:latest", volImg)
		}},
		{args: run("--name", "imgvol", "{reg}/volimg", "ls", "/home"), kind: words, want: "exit 0: app"},
		{args: []string{"inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}", "imgvol"}, kind: words, want: "exit 0: volume /home"},
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 2 lines"},
		{args: []string{"rm", "-v", "imgvol"}, kind: words, want: "exit 0: imgvol"},
		{args: run("--rm", "-v", "bulkheadvi:/home", "{reg}/volimg", "ls", "/home"), kind: words, want: "exit 0: app"},
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 2 lines"},
		{args: []string{"volume", "rm", "bulkheadvi"}, kind: words, want: "exit 0: bulkheadvi"},
		{args: []string{"rmi", "{reg}/volimg"}, kind: exitOnly, want: "exit 0"},
		// volume prune: unused anonymous volumes go; dockerd 20.10 (API
		// 1.41) removes unused named ones too, hostd keeps them (1.42+).
		{args: run("--name", "anonp", "-v", "/data", "{reg}/busybox", "true"), want: "exit 0"},
		{args: []string{"rm", "anonp"}, want: "exit 0"},
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 2 lines"},
		{args: []string{"volume", "prune", "-f"}, kind: exitOnly, want: "exit 0"},
		{args: []string{"volume", "ls", "-q"}, kind: lines, want: "exit 0, 1 lines", dockerd: "exit 0, 0 lines"},
		// Log rotation options are kept and shown.
		{args: []string{"create", "--name", "logr", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "{reg}/busybox"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"inspect", "-f", "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}}", "logr"}, kind: words,
			want: "exit 0: json-file 1k 2"},
		{args: []string{"rm", "logr"}, want: "exit 0"},
		{args: []string{"system", "df"}, kind: lines, want: "exit 0, 5 lines"},

		// diff: what a container changed against its image.
		{args: run("--name", "chg", "{reg}/busybox", "sh", "-c", "touch /tmp/new /etc/passwd; rm /etc/group; mkdir -p /home/app/d"), want: "exit 0"},
		{args: []string{"diff", "chg"}, kind: words, want: "exit 0: A /home/app/d,A /tmp/new,C /etc,C /etc/passwd,C /home,C /home/app,C /tmp,D /etc/group"},
		{args: []string{"rm", "chg"}, want: "exit 0"},

		// docker cp both ways, into a running and a stopped container. The
		// container's /escape -> / leads to its own root, never the host's:
		// the host's /tmp files are not read, nor written.
		{args: run("-d", "--name", "cpr", "{reg}/busybox", "sleep", "300"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"exec", "cpr", "sh", "-c", "ln -s / /escape && echo inside > /marker && ln -s /escape/marker /link && mkdir /dst"}, want: "exit 0"},
		{args: []string{"cp", "cpr:/marker", "-"}, kind: errText, want: "exit 0: inside"},
		{args: []string{"cp", "cpr:/escape/marker", "-"}, kind: errText, want: "exit 0: inside"},
		{args: []string{"cp", "-L", "cpr:/link", "-"}, kind: errText, want: "exit 0: inside"},
		{args: []string{"cp", "-L", "cpr:/escape", "-"}, kind: errText, want: "exit 0: inside"},
		{args: []string{"cp", "cpr:/link", "-"}, kind: errText, want: "exit 0: /escape/marker"},
		{args: []string{"cp", "cpr:/escape/tmp/" + cpSecret, "-"}, kind: errText, want: "exit 1: could not find the file",
			before: hostFile(cpSecret, "host secret")},
		{args: []string{"cp", "cpr:/nosuch", "-"}, kind: errText, want: "exit 1: could not find the file"},
		{args: []string{"cp", "/tmp/" + cpSrc, "cpr:/escape/tmp/" + cpWritten}, want: "exit 0", before: hostFile(cpSrc, "from host")},
		{args: []string{"exec", "cpr", "cat", "/tmp/" + cpWritten}, kind: words, want: "exit 0: from host", before: noHostFile(cpWritten)},
		{args: []string{"cp", "/tmp/" + cpSrc, "cpr:/dst"}, want: "exit 0"},
		{args: []string{"exec", "cpr", "cat", "/dst/" + cpSrc}, kind: words, want: "exit 0: from host"},
		{args: []string{"cp", "/tmp/" + cpSrc, "cpr:/dst/renamed"}, want: "exit 0"},
		{args: []string{"exec", "cpr", "ls", "-ln", "/dst/renamed"}, kind: errText, want: "exit 0: 0        0"},
		{args: []string{"cp", "/tmp/" + cpSrc, "cpr:/nosuchdir/x"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"cp", "cpr:/dst", "-"}, kind: errText, want: "exit 0: from host"},
		// The CLI asks not to replace a directory by a file nor a file by
		// a directory.
		{args: []string{"cp", "/tmp/" + cpDirs + "/marker", "cpr:/"}, kind: errText, want: "exit 1: cannot overwrite non-directory",
			before: hostFile(cpDirs+"/marker/f", "x")},
		{args: []string{"cp", "/tmp/" + cpDirs + "/d/dst", "cpr:/"}, kind: errText, want: "exit 1: cannot overwrite directory",
			before: hostFile(cpDirs+"/d/dst", "x")},
		{args: []string{"exec", "cpr", "cat", "/marker"}, kind: words, want: "exit 0: inside"},
		{args: []string{"stop", "-t", "1", "cpr"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"cp", "cpr:/escape/dst/renamed", "-"}, kind: errText, want: "exit 0: from host"},
		{args: []string{"cp", "cpr:/escape/tmp/" + cpSecret, "-"}, kind: errText, want: "exit 1: could not find the file"},
		{args: []string{"cp", "/tmp/" + cpSrc, "cpr:/escape/tmp/" + cpWritten + "2"}, want: "exit 0"},
		{args: []string{"cp", "cpr:/tmp/" + cpWritten + "2", "-"}, kind: errText, want: "exit 0: from host", before: noHostFile(cpWritten + "2")},
		// A stopped container's volume: dockerd mounts it for the copy;
		// hostd refuses rather than copy into the rootfs beneath it.
		{args: []string{"create", "--network", "none", "--name", "cpv", "-v", "bulkheadcpv:/data", "{reg}/busybox", "true"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"cp", "/tmp/" + cpSrc, "cpv:/data"}, kind: errText, want: "exit 0: ",
			hostd: "exit 1: hostd copies volume contents only while the container runs"},
		{args: []string{"cp", "cpv:/data", "-"}, kind: errText, want: "exit 0: ",
			hostd: "exit 1: hostd copies volume contents only while the container runs"},
		{args: []string{"rm", "-v", "cpv"}, want: "exit 0"},
		{args: []string{"volume", "rm", "bulkheadcpv"}, kind: exitOnly, want: "exit 0"},
		// docker export: the container's filesystem as a tar.
		{args: []string{"export", "cpr"}, kind: errText, want: "exit 0: inside"},
		{args: []string{"export", "nosuch"}, kind: exitOnly, want: "exit 1"},
		{args: []string{"rm", "cpr"}, want: "exit 0"},

		// docker events: the kept lifecycle events of containers (dockerd
		// also reports attach and kill, left out by the event filters).
		{args: run("--name", "evx", "{reg}/busybox", "sh", "-c", "exit 3"), want: "exit 3"},
		{args: run("-d", "--name", "evs", "{reg}/busybox", "sleep", "300"), kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"stop", "-t", "1", "evs"}, kind: lines, want: "exit 0, 1 lines"},
		{args: []string{"rm", "evx", "evs"}, kind: lines, want: "exit 0, 2 lines"},
		{args: events("-f", "container=evs", "-f", "event=create", "-f", "event=start", "-f", "event=die", "-f", "event=stop", "-f", "event=destroy"),
			kind: words, want: "exit 0: create,destroy,die,start,stop", before: nextSecond},
		{args: events("-f", "container=evx", "-f", "event=start", "-f", "event=die"), kind: words, want: "exit 0: die,start"},
		{args: []string{"events", "--since", "10m", "--until", "0s", "-f", "container=evx", "-f", "event=die", "--format", "{{.Actor.Attributes.exitCode}}"},
			kind: words, want: "exit 0: 3"},
		{args: events("-f", "type=container", "-f", "event=destroy", "-f", "container=ev"), kind: words, want: "exit 0: destroy,destroy"},
		{args: events("-f", "type=volume", "-f", "container=evs"), kind: words, want: "exit 0: "},
		{args: events("-f", "label=app=nosuch", "-f", "container=evs"), kind: words, want: "exit 0: "},
		// dockerd 20.10 ignores an unknown events filter; hostd refuses it,
		// as it does for ps and images.
		{args: events("-f", "nosuch=1"), kind: errText, want: "exit 0: ", hostd: "exit 1: invalid filter 'nosuch'"},
	}
}

// privilegedDockerd is what docker run --privileged gives on dockerd here:
// "" (the common outcome) when this process's bounding set has every
// capability, else dockerd's failure to grant the missing ones.
func privilegedDockerd() string {
	status, err := os.ReadFile("/proc/self/status")
	last, err2 := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil || err2 != nil {
		return ""
	}
	_, bnd, _ := strings.Cut(string(status), "CapBnd:\t")
	bnd, _, _ = strings.Cut(bnd, "\n")
	var n int
	fmt.Sscan(strings.TrimSpace(string(last)), &n)
	if bnd == fmt.Sprintf("%016x", uint64(1)<<(n+1)-1) {
		return ""
	}
	return "exit 125: unable to apply caps"
}

// events is docker events over the kept events of the last ten minutes,
// their actions only.
func events(args ...string) []string {
	return append([]string{"events", "--since", "10m", "--until", "0s", "--format", "{{.Action}}"}, args...)
}

// nextSecond waits into the next second: the CLI sends --until in whole
// seconds, so events of the current one would be left out.
func nextSecond(t *testing.T, b backend) {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
}

// Host files the docker cp steps plant in /tmp, and look for there.
const (
	cpSecret  = "bulkhead-cp-secret"
	cpSrc     = "bulkhead-cp-src"
	cpWritten = "bulkhead-cp-written"
	cpDirs    = "bulkhead-cp-dirs"
	// seccompFile is a seccomp profile refusing mkdir, for --security-opt.
	seccompFile = "bulkhead-seccomp-nomkdir.json"
)

// hostFile writes /tmp/name (and its directories) on the host, removed when the test ends.
func hostFile(name, content string) func(t *testing.T, b backend) {
	return func(t *testing.T, b backend) {
		p := filepath.Join("/tmp", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		top, _, _ := strings.Cut(name, "/")
		t.Cleanup(func() { _ = os.RemoveAll(filepath.Join("/tmp", top)) })
	}
}

// noHostFile fails the test if a docker cp wrote /tmp/name on the host.
func noHostFile(name string) func(t *testing.T, b backend) {
	return func(t *testing.T, b backend) {
		p := filepath.Join("/tmp", name)
		if _, err := os.Lstat(p); err == nil {
			_ = os.Remove(p)
			t.Errorf("%s: docker cp into a container wrote the host's %s", b.name, p)
		}
	}
}

// TestDockerConformance runs the scenario through the docker CLI against
// hostd and against Debian's dockerd, and wants the outcomes the table
// gives from both, command by command.
func TestDockerConformance(t *testing.T) {
	testimg.RequireHost(t)
	for _, bin := range []string{"docker", "dockerd", "nsenter", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("needs %s (apt-get install docker.io): %v", bin, err)
		}
	}
	img := linuxImage(t, v1.Config{Cmd: []string{"sh"}})
	img2 := linuxImage(t, v1.Config{Cmd: []string{"sh"}, Env: []string{"V=2"}})
	backends := []backend{startHostd(t), startDockerd(t)}
	for i := range backends {
		backends[i].dir = t.TempDir() // for --mount type=bind
	}
	img1 := linuxImage(t, v1.Config{Cmd: []string{"sh"}, Env: []string{"V=1"}})
	for _, b := range backends {
		testimg.Push(t, b.push+"/busybox:latest", img)
		testimg.Push(t, b.push+"/busybox:old", img1)
	}
	volImg := linuxImage(t, v1.Config{Cmd: []string{"sh"}, Volumes: map[string]struct{}{"/home": {}}})
	runScenario(t, backends, append(scenario(img2, volImg), updateScenario()...))
}

// runScenario runs steps on every backend in turn, wants each step's
// outcome from each, and logs the table of outcomes.
func runScenario(t *testing.T, backends []backend, steps []step) {
	t.Helper()
	var table strings.Builder
	fmt.Fprintf(&table, "| command | hostd | dockerd |\n|---|---|---|\n")
	for i, s := range steps {
		got := make([]string, len(backends))
		for j, b := range backends {
			if s.before != nil {
				s.before(t, b)
			}
			out, code := b.docker(t, s.args...)
			want := s.want
			if b.name == "hostd" && s.hostd != "" {
				want = s.hostd
			}
			if b.name == "dockerd" && s.dockerd != "" {
				want = s.dockerd
			}
			got[j] = s.outcome(out, code, want)
			if got[j] != want {
				t.Errorf("step %d: docker %s on %s: got %q, want %q\n%s", i, strings.Join(s.args, " "), b.name, got[j], want, out)
			}
		}
		fmt.Fprintf(&table, "| docker %s | %s | %s |\n", strings.Join(s.args, " "), got[0], got[1])
	}
	t.Logf("outcomes:\n%s", table.String())
}

// linuxImage is the test busybox image with its platform set, so dockerd
// does not warn that it may not run here.
func linuxImage(t testing.TB, cfg v1.Config, extra ...v1.Layer) v1.Image {
	t.Helper()
	img := testimg.Image(t, cfg, extra...)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// startHostd serves hostd's engine on a Docker API socket, with its own
// registry on loopback.
func startHostd(t testing.TB, insecure ...string) backend { return startHostdOn(t, nil, insecure...) }

// startHostdOn is startHostd with a network (nil: none).
func startHostdOn(t testing.TB, nw engine.Networker, insecure ...string) backend {
	t.Helper()
	dir := t.TempDir()
	reg := testimg.Registry(t)
	cfg := engine.Config{
		Root: filepath.Join(dir, "lib"), RunDir: filepath.Join(dir, "run"),
		Images:      image.Options{Insecure: append([]string{reg}, insecure...)},
		ShimCommand: []string{os.Args[0], "shim"}, Seccomp: runtime.SeccompSupported, Runtime: libct.New,
		InitBinary: testimg.BuildInit(t),
	}
	if nw != nil {
		cfg.Network = nw
	}
	e, err := engine.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	api := &dockerapi.API{E: e, Version: "test"}
	srv := &http.Server{Handler: api.Handler()}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		for _, c := range e.List() {
			if err := e.Remove(context.Background(), c.ID, true); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		_ = srv.Close()
		e.Close()
	})
	return backend{name: "hostd", sock: sock, reg: reg, push: reg, config: t.TempDir()}
}

// startDockerd starts Debian's dockerd in a network namespace of its own
// (entered with nsenter --net), with its own data root, exec root, pid
// file and socket, and a registry listening inside that namespace. It is
// stopped, and its state removed, when the test ends.
func startDockerd(t testing.TB) backend {
	t.Helper()
	ns := fmt.Sprintf("bulkhead-dockerd-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	nsPath := "/run/netns/" + ns
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", ns, err, out)
	}
	// Short paths: containerd's sockets live under the exec root.
	dir, err := os.MkdirTemp("", "dockerd")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+nsPath, "dockerd",
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "-H", "unix://"+sock,
		"--bridge", "none", "--iptables=false", "--ip-masq=false",
		// Apart from a system dockerd's, should it share the host's
		// containerd (/run/containerd/containerd.sock) with one.
		"--containerd-namespace", "bulkhead-test", "--containerd-plugins-namespace", "bulkhead-test-plugins")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := backend{name: "dockerd", sock: sock, config: t.TempDir(), netns: nsPath}
	t.Cleanup(func() { stopDockerd(t, b, cmd, dir) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, code := b.docker(t, "version"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd did not answer within 60s:\n%s", logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.reg, b.push = registryIn(t, nsPath)
	return b
}

// stopDockerd removes the scenario's containers, stops dockerd (and the
// containerd it started) and removes its state.
func stopDockerd(t testing.TB, b backend, cmd *exec.Cmd, dir string) {
	if out, _ := b.docker(t, "ps", "-aq"); strings.TrimSpace(out) != "" {
		b.docker(t, append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...)
	}
	b.docker(t, "volume", "prune", "-f")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	unmountUnder(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("removing dockerd's state: %v", err)
	}
}

// unmountUnder unmounts what dockerd left mounted beneath dir, deepest
// first.
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Error(err)
		return
	}
	var mnts []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mnts = append(mnts, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mnts)))
	for _, m := range mnts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", m, err)
		}
	}
}

// registryIn serves an in-memory registry on loopback inside the network
// namespace at nsPath (the socket is made there, then served from here)
// and on the test's loopback, and returns both host:port: inside, for
// dockerd to pull from, and outside, for the test to push to.
func registryIn(t testing.TB, nsPath string) (inside, outside string) {
	t.Helper()
	l, err := listenIn(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	out := httptest.NewServer(h)
	t.Cleanup(out.Close)
	return l.Addr().String(), strings.TrimPrefix(out.URL, "http://")
}

func listenIn(nsPath string) (net.Listener, error) {
	goruntime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		goruntime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		goruntime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		goruntime.UnlockOSThread()
		return nil, fmt.Errorf("entering %s: %w", nsPath, err)
	}
	l, lerr := net.Listen("tcp", "127.0.0.1:0")
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so it ends with the goroutine
		// instead of serving others in the wrong namespace.
		return nil, fmt.Errorf("leaving %s: %w", nsPath, err)
	}
	goruntime.UnlockOSThread()
	return l, lerr
}
