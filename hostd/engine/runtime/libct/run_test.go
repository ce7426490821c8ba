package libct_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

var seq atomic.Int64

// runIn runs args in a fresh busybox container and returns its output and
// exit code. mod may change the spec input.
func runIn(t *testing.T, mod func(*runtime.SpecInput), args ...string) (string, int) {
	t.Helper()
	testimg.RequireHost(t)
	base := t.TempDir()
	rootfs := filepath.Join(base, "rootfs")
	testimg.Rootfs(t, rootfs)
	id := fmt.Sprintf("rt-test-%d-%d", os.Getpid(), seq.Add(1))
	in := runtime.SpecInput{ID: id, Rootfs: rootfs, Args: args, Env: []string{"PATH=/bin"}, Hostname: "box", Network: runtime.NetworkNone, Seccomp: runtime.SeccompSupported}
	if mod != nil {
		mod(&in)
	}
	spec, err := runtime.BuildSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	rt := libct.Runtime{StateRoot: filepath.Join(base, "state")}
	var out bytes.Buffer
	r, err := rt.Start(context.Background(), id, spec, runtime.Stdio{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	code, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func TestRunTrueAndOutput(t *testing.T) {
	if out, code := runIn(t, nil, "true"); code != 0 || out != "" {
		t.Errorf("true: got %q, code %d, want no output, code 0", out, code)
	}
	if out, code := runIn(t, nil, "sh", "-c", "echo hello; hostname; exit 3"); code != 3 || out != "hello\nbox\n" {
		t.Errorf("echo: got %q, code %d, want %q, code 3", out, code, "hello\nbox\n")
	}
}

func TestRunUserEnvWorkdir(t *testing.T) {
	out, code := runIn(t, func(in *runtime.SpecInput) {
		in.UID, in.GID = 1000, 1000
		in.Cwd = "/home/app"
		in.Env = append(in.Env, "GREETING=hi")
	}, "sh", "-c", "id -u; pwd; echo $GREETING")
	if want := "1000\n/home/app\nhi\n"; code != 0 || out != want {
		t.Errorf("got %q, code %d, want %q", out, code, want)
	}
}

func TestIsolation(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // the output must contain this
	}{
		{"own pid namespace", []string{"sh", "-c", fmt.Sprintf("test -d /proc/%d && echo SEEN; cat /proc/1/comm; echo end", os.Getpid())}, "sh\n"},
		{"cannot mount", []string{"sh", "-c", "mount -t tmpfs x /tmp && echo MOUNTED || echo refused"}, "refused"},
		{"cannot load modules", []string{"sh", "-c", "insmod /bin/busybox && echo LOADED || echo refused"}, "refused"},
		{"cannot write /proc/sys", []string{"sh", "-c", "echo 1 > /proc/sys/kernel/panic && echo WROTE || echo refused"}, "refused"},
		// Kernel memory: nothing to read (masked, or a kernel without
		// /proc/kcore, as here).
		{"kcore unreadable", []string{"sh", "-c", "echo kcore: $(cat /proc/kcore 2>/dev/null | wc -c) bytes"}, "kcore: 0 bytes"},
		// Masked: /dev/null is bound over it (the real one is a regular
		// file).
		{"timer_list masked", []string{"sh", "-c", "test -c /proc/timer_list && echo masked"}, "masked"},
		{"no raw sysrq", []string{"sh", "-c", "echo h > /proc/sysrq-trigger && echo WROTE || echo refused"}, "refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _ := runIn(t, nil, c.args...)
			if !strings.Contains(out, c.want) || strings.Contains(out, "MOUNTED") || strings.Contains(out, "LOADED") || strings.Contains(out, "WROTE") || strings.Contains(out, "SEEN") {
				t.Errorf("got %q, want it to contain %q", out, c.want)
			}
		})
	}
}

func TestSeccompRefusesNamespaces(t *testing.T) {
	if !runtime.SeccompSupported {
		t.Fatal("needs a build with -tags seccomp (and libseccomp-dev)")
	}
	out, _ := runIn(t, nil, "sh", "-c", "unshare -U true && echo UNSHARED || echo refused")
	if !strings.Contains(out, "refused") || strings.Contains(out, "UNSHARED") {
		t.Errorf("got %q, want unshare refused by the seccomp profile", out)
	}
}

func TestReadOnlyRootfsAndVolumes(t *testing.T) {
	vol := t.TempDir()
	out, _ := runIn(t, func(in *runtime.SpecInput) {
		in.ReadOnly = true
		in.Mounts = []runtime.Mount{{Source: vol, Destination: "/data"}}
	}, "sh", "-c", "touch /file && echo ROOTWRITE; touch /data/ok && echo volwrite")
	if strings.Contains(out, "ROOTWRITE") || !strings.Contains(out, "volwrite") {
		t.Errorf("got %q, want the rootfs read-only and the volume writable", out)
	}
	if _, err := os.Stat(filepath.Join(vol, "ok")); err != nil {
		t.Errorf("volume write not seen on the host: %v", err)
	}
}

func TestPidsLimit(t *testing.T) {
	// Not too low: libcontainer's own init stages count while it starts.
	out, _ := runIn(t, func(in *runtime.SpecInput) { in.Limits.Pids = 12 }, "sh", "-c",
		"for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do sleep 2 & done 2>&1; echo done")
	if !strings.Contains(out, "can't fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Errorf("got %q, want forks refused past the pids limit", out)
	}
}

func TestExec(t *testing.T) {
	testimg.RequireHost(t)
	base := t.TempDir()
	rootfs := filepath.Join(base, "rootfs")
	testimg.Rootfs(t, rootfs)
	id := fmt.Sprintf("rt-exec-%d", os.Getpid())
	spec, err := runtime.BuildSpec(runtime.SpecInput{ID: id, Rootfs: rootfs, Args: []string{"sleep", "30"}, Env: []string{"PATH=/bin"}, Seccomp: runtime.SeccompSupported})
	if err != nil {
		t.Fatal(err)
	}
	rt := libct.Runtime{StateRoot: filepath.Join(base, "state")}
	r, err := rt.Start(context.Background(), id, spec, runtime.Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Signal(id, os.Kill); r.Wait() })
	var out bytes.Buffer
	code, err := rt.Exec(context.Background(), id, &specs.Process{Args: []string{"sh", "-c", "echo in; ps | grep -c sleep"}, Env: []string{"PATH=/bin"}}, runtime.Stdio{Stdout: &out, Stderr: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec: code %d, %v (%s)", code, err, out.String())
	}
	if !strings.HasPrefix(out.String(), "in\n") {
		t.Errorf("got %q, want it to start with %q", out.String(), "in\n")
	}
	pids, err := rt.Pids(id)
	if err != nil || len(pids) != 1 || pids[0] != r.Pid() {
		t.Errorf("pids: got %v, %v, want [%d]", pids, err, r.Pid())
	}
}

func TestLimitsReachCgroup(t *testing.T) {
	// With a cgroup namespace the container sees its own cgroup at the
	// root of /sys/fs/cgroup: v1 (this build host) or v2 (Bulkhead).
	out, _ := runIn(t, func(in *runtime.SpecInput) {
		in.Limits = runtime.Limits{MemoryBytes: 64 << 20, CPUs: 0.5, Pids: 42}
	}, "sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes "+
		"/sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null")
	for _, want := range []string{"67108864", "50000", "42"} {
		if !strings.Contains(out, want) {
			t.Errorf("got %q, want it to contain %s", out, want)
		}
	}
}

func TestNetworkModes(t *testing.T) {
	none, _ := runIn(t, func(in *runtime.SpecInput) { in.Network = runtime.NetworkNone }, "ls", "/sys/class/net")
	if strings.TrimSpace(none) != "lo" {
		t.Errorf("network none: got interfaces %q, want only lo", none)
	}
	// Other packages' tests add and remove veths on the host while this
	// runs, so compare with the interfaces present both before and after.
	before, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := runIn(t, func(in *runtime.SpecInput) { in.Network = runtime.NetworkHost }, "ls", "/sys/class/net")
	after, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range strings.Fields(host) {
		seen[e] = true
	}
	stillThere := map[string]bool{}
	for _, e := range after {
		stillThere[e.Name()] = true
	}
	stable := 0
	for _, e := range before {
		if !stillThere[e.Name()] {
			continue
		}
		stable++
		if !seen[e.Name()] {
			t.Errorf("network host: the container does not see the host's %s (it sees %q)", e.Name(), host)
		}
	}
	if stable < 2 {
		t.Fatalf("the host has %d stable interfaces: nothing to compare beyond lo", stable)
	}
}

// runc's "slice:prefix:name" cgroupsPath selects a systemd scope; a path
// stays with cgroupfs.
func TestConfigCgroupDriver(t *testing.T) {
	for _, tc := range []struct {
		path       string
		systemd    bool
		wantParent string
	}{
		{"hostd.slice:hostd:abc", true, "hostd.slice"},
		{"/hostd/abc", false, ""},
	} {
		s, err := runtime.BuildSpec(runtime.SpecInput{ID: "abc", Rootfs: "/nonexistent", Args: []string{"true"}, CgroupsPath: tc.path})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := libct.Config("abc", s)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		c := cfg.Cgroups
		if c.Systemd != tc.systemd || c.Parent != tc.wantParent {
			t.Errorf("%s: systemd %v parent %q (path %q, scope %s-%s), want systemd %v parent %q", tc.path, c.Systemd, c.Parent, c.Path, c.ScopePrefix, c.Name, tc.systemd, tc.wantParent)
		}
		if tc.systemd && (c.ScopePrefix != "hostd" || c.Name != "abc") {
			t.Errorf("%s: scope %s-%s, want hostd-abc", tc.path, c.ScopePrefix, c.Name)
		}
		if !tc.systemd && c.Path != tc.path {
			t.Errorf("%s: cgroupfs path %q", tc.path, c.Path)
		}
	}
}

// TestSeccompRefusesForeignABI is an attack through the x32 system call
// ABI: a 64-bit program in the container calls unshare(CLONE_NEWUSER) with
// the x32 bit set (testdata/x32unshare.c). The filter must see the call
// and refuse it: EPERM where it covers x32, or SIGSYS (exit 159) as a
// foreign architecture where it leaves x32 out (runtime.DefaultSeccomp,
// on a kernel without x32). Had the call got past the filter, the kernel
// would have run it ("allowed") or, without x32, said ENOSYS.
func TestSeccompRefusesForeignABI(t *testing.T) {
	if !runtime.SeccompSupported {
		t.Fatal("needs a build with -tags seccomp (and libseccomp-dev)")
	}
	if goruntime.GOARCH != "amd64" {
		t.Fatalf("the x32 ABI is amd64's; this test is written for amd64, not %s", goruntime.GOARCH)
	}
	bin := filepath.Join(t.TempDir(), "x32unshare")
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, "testdata/x32unshare.c").CombinedOutput(); err != nil {
		t.Fatalf("building testdata/x32unshare.c: %v\n%s", err, out)
	}
	out, code := runIn(t, func(in *runtime.SpecInput) {
		in.Mounts = append(in.Mounts, runtime.Mount{Source: bin, Destination: "/x32unshare", ReadOnly: true})
	}, "/x32unshare")
	out = strings.TrimSpace(out)
	want := "EPERM"
	if !runtime.X32Enabled() {
		want = "killed by SIGSYS"
	}
	got := out
	if code == 128+int(unix.SIGSYS) && out == "" {
		got = "killed by SIGSYS"
	}
	if got != want {
		t.Errorf("x32 unshare in a container: got %q (exit %d), want %s", got, code, want)
	}
}
