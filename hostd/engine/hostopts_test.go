package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

func TestHostOptionsValidate(t *testing.T) {
	ok := []ContainerSpec{
		{HostOptions: HostOptions{SecurityOpt: []string{"no-new-privileges", "no-new-privileges=false", "no-new-privileges:true", "seccomp=unconfined"}}},
		{HostOptions: HostOptions{SecurityOpt: []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`}}},
		{HostOptions: HostOptions{Sysctls: map[string]string{"kernel.shmmax": "1", "kernel.msgmax": "1", "fs.mqueue.msg_max": "1", "net.ipv4.ip_forward": "1"}}},
		{HostOptions: HostOptions{Ulimits: []Ulimit{{Name: "nofile", Soft: 10, Hard: 20}}, ShmSize: "1m",
			Devices: []DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/n", CgroupPermissions: "rw"}}}},
		{Limits: Limits{Memory: "64m", MemorySwap: "-1", MemoryReservation: "32m", CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, CpusetCpus: "0-1", CpusetMems: "0"}},
		{Limits: Limits{Memory: "64m", MemorySwap: "128m"}},
	}
	for i, s := range ok {
		s.Image = "busybox"
		if err := s.Validate(); err != nil {
			t.Errorf("ok[%d]: %v", i, err)
		}
	}
	bad := []struct {
		s    ContainerSpec
		want string
	}{
		{ContainerSpec{HostOptions: HostOptions{SecurityOpt: []string{"apparmor=unconfined"}}}, `"apparmor=unconfined"`},
		{ContainerSpec{HostOptions: HostOptions{SecurityOpt: []string{"label=disable"}}}, `"label=disable"`},
		{ContainerSpec{HostOptions: HostOptions{SecurityOpt: []string{"no-new-privileges=maybe"}}}, `"no-new-privileges=maybe"`},
		{ContainerSpec{HostOptions: HostOptions{SecurityOpt: []string{"seccomp=/etc/profile.json"}}}, `"seccomp=/etc/profile.json"`},
		{ContainerSpec{HostOptions: HostOptions{SecurityOpt: []string{"seccomp={bad"}}}, "seccomp profile"},
		{ContainerSpec{HostOptions: HostOptions{Sysctls: map[string]string{"kernel.hostname": "x"}}}, `"kernel.hostname"`},
		{ContainerSpec{HostOptions: HostOptions{Sysctls: map[string]string{"vm.swappiness": "1"}}}, `"vm.swappiness"`},
		{ContainerSpec{Network: runtime.NetworkHost, HostOptions: HostOptions{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}}, `"net.ipv4.ip_forward" is not allowed in the host's network namespace`},
		{ContainerSpec{HostOptions: HostOptions{Ulimits: []Ulimit{{Name: "nofiles", Soft: 1, Hard: 1}}}}, `"nofiles"`},
		{ContainerSpec{HostOptions: HostOptions{Ulimits: []Ulimit{{Name: "nofile", Soft: 2, Hard: 1}}}}, "soft limit 2 is above the hard limit 1"},
		{ContainerSpec{HostOptions: HostOptions{ShmSize: "lots"}}, "shmSize"},
		{ContainerSpec{HostOptions: HostOptions{Devices: []DeviceMapping{{PathOnHost: "dev/null"}}}}, `"dev/null"`},
		{ContainerSpec{HostOptions: HostOptions{Devices: []DeviceMapping{{PathOnHost: "/dev/null", CgroupPermissions: "rwx"}}}}, `permissions "rwx"`},
		{ContainerSpec{Limits: Limits{MemorySwap: "128m"}}, "limits.memorySwap: needs a memory limit"},
		{ContainerSpec{Limits: Limits{Memory: "128m", MemorySwap: "64m"}}, "limits.memorySwap: must be at least the memory limit"},
		{ContainerSpec{Limits: Limits{Memory: "64m", MemoryReservation: "128m"}}, "limits.memoryReservation: must not be above"},
		{ContainerSpec{Limits: Limits{MemoryReservation: "1m"}}, "at least 6MB"},
		{ContainerSpec{Limits: Limits{CPUs: 1, CPUQuota: 50000}}, "not with cpus"},
		{ContainerSpec{Limits: Limits{CPUPeriod: 10}}, "limits.cpuPeriod: 10"},
		{ContainerSpec{Limits: Limits{CPUQuota: 10}}, "limits.cpuQuota: 10"},
		{ContainerSpec{Limits: Limits{CpusetCpus: "1-0"}}, `limits.cpusetCpus: "1-0"`},
	}
	for _, b := range bad {
		b.s.Image = "busybox"
		if err := b.s.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: got %v, want an error with %s", b.s.HostOptions, err, b.want)
		}
	}
	// Against the host: a file that is not a device, a missing one, CPUs
	// the host does not have.
	for _, c := range []struct {
		s    ContainerSpec
		want string
	}{
		{ContainerSpec{HostOptions: HostOptions{Devices: []DeviceMapping{{PathOnHost: "/proc/self/status"}}}}, "device /proc/self/status: not a device node"},
		{ContainerSpec{HostOptions: HostOptions{Devices: []DeviceMapping{{PathOnHost: "/dev/nosuchdevice"}}}}, "device /dev/nosuchdevice"},
		{ContainerSpec{Limits: Limits{CpusetCpus: "0-1000"}}, "cpuset-cpus 0-1000: not available"},
	} {
		if err := c.s.checkHost(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("checkHost %+v: got %v, want %s", c.s, err, c.want)
		}
	}
}

// --init without the init binary beside hostd fails naming it, rather
// than at the mount.
func TestInitWithoutBinary(t *testing.T) {
	var in runtime.SpecInput
	err := HostOptions{Init: true}.apply(&in, "/nonexistent/hostd-shim")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/hostd-shim") {
		t.Errorf("got %v, want an error naming the missing init", err)
	}
}

// runOut runs spec to its end and returns its output, failing on an exit
// code other than want.
func (te *testEngine) runOut(t *testing.T, spec ContainerSpec, want int) string {
	t.Helper()
	c := te.run(t, spec)
	code, err := te.Wait(context.Background(), c.ID)
	out := te.logText(t, c.ID)
	if err != nil || code != want {
		t.Fatalf("%s: code %d, %v, want %d: %s", spec.Name, code, err, want, out)
	}
	return out
}

// Each option takes effect in the container: ulimit, /dev/shm's size,
// sysctls, a device under another name, cgroup CPU and memory settings.
func TestHostOptionsInContainer(t *testing.T) {
	te := newTestEngine(t)
	spec := ContainerSpec{Name: "opts", Network: runtime.NetworkNone,
		Command: []string{"sh", "-c", `ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1 | awk '{print "shm " $2}'
cat /proc/sys/kernel/shmmax /proc/sys/net/core/somaxconn
echo data > /dev/mynull && wc -c < /dev/mynull && ls -l /dev/mynull | cut -c1
cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us
cat /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/memory/memory.soft_limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes`},
		HostOptions: HostOptions{
			Ulimits: []Ulimit{{Name: "nofile", Soft: 100, Hard: 200}}, ShmSize: "1m",
			Sysctls: map[string]string{"kernel.shmmax": "1000000", "net.core.somaxconn": "1234"},
			Devices: []DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/mynull"}},
		},
		Limits: Limits{Memory: "64m", MemorySwap: "96m", MemoryReservation: "32m", CPUShares: 512, CPUQuota: 50000, CPUPeriod: 200000, CpusetCpus: "0"},
	}
	out := te.runOut(t, spec, 0)
	want := "100\n200\nshm 1024\n1000000\n1234\n0\nc\n512\n50000\n200000\n0\n33554432\n100663296\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	// Without the options: the defaults, and no /dev/mynull.
	out = te.runOut(t, ContainerSpec{Name: "defaults", Network: runtime.NetworkNone,
		Command: []string{"sh", "-c", `df -k /dev/shm | tail -1 | awk '{print "shm " $2}'; ls /dev/mynull 2>/dev/null; cat /proc/sys/net/core/somaxconn`}}, 0)
	if out == "" || strings.Contains(out, "mynull") || strings.Contains(out, "1234") || !strings.HasPrefix(out, "shm 65536\n") {
		t.Errorf("defaults: got %q", out)
	}
	// The device cgroup holds to the permissions asked for, and to the
	// devices given: a device given read-only opens for reading only, and
	// a node the container makes itself (it has CAP_MKNOD) of a device it
	// was not given does not open. (/dev/null and the like are always
	// allowed, as with Docker: loop-control is not.)
	out = te.runOut(t, ContainerSpec{Name: "devperm", Network: runtime.NetworkNone,
		HostOptions: HostOptions{Devices: []DeviceMapping{{PathOnHost: "/dev/loop-control", PathInContainer: "/dev/lc", CgroupPermissions: "r"}}},
		Command: []string{"sh", "-c", `dd if=/dev/lc count=0 2>/dev/null && echo read; dd of=/dev/lc count=0 2>/dev/null || echo denied
mknod /dev/k c 1 11 && { dd if=/dev/k count=0 2>/dev/null || echo kdenied; }`}}, 0)
	if out != "read\ndenied\nkdenied\n" {
		t.Errorf("device permissions: got %q, want read, denied, kdenied", out)
	}
	// A file that is not a device is refused when the container is made.
	_, err := te.Create(context.Background(), ContainerSpec{Name: "notdev", Image: te.ref, HostOptions: HostOptions{
		Devices: []DeviceMapping{{PathOnHost: "/proc/self/status", PathInContainer: "/dev/x"}}}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "/proc/self/status: not a device node") {
		t.Errorf("a file as a device: got %v", err)
	}
}

// --privileged gives what a container otherwise cannot have: mount, every
// capability, host devices, a writable /sys. An unprivileged container
// still has none of it.
func TestPrivileged(t *testing.T) {
	te := newTestEngine(t)
	probe := `mkdir -p /m && mount -t tmpfs none /m && echo mounted; ip link set lo down && echo link; grep CapEff /proc/self/status
ls /dev/loop0 2>/dev/null; grep -E ' /sys (sysfs|tmpfs) ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; cat /proc/sys/kernel/ostype`
	out := te.runOut(t, ContainerSpec{Name: "priv", Network: runtime.NetworkNone, Command: []string{"sh", "-c", probe},
		HostOptions: HostOptions{Privileged: true}}, 0)
	// Every capability this test has.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, bnd, _ := strings.Cut(string(status), "CapBnd:\t")
	bnd, _, _ = strings.Cut(bnd, "\n")
	if !strings.Contains(out, "mounted\n") || !strings.Contains(out, "link\n") || !strings.Contains(out, "/dev/loop0\n") ||
		!strings.Contains(out, "CapEff:\t"+bnd+"\n") || !strings.Contains(out, "rw\n") {
		t.Errorf("privileged: got %q, want mounted, link, every capability, /dev/loop0, /sys rw", out)
	}
	// Exec into it has the same capabilities.
	if !strings.Contains(out, "Linux") {
		t.Errorf("privileged: /proc/sys not readable: %q", out)
	}
	out = te.runOut(t, ContainerSpec{Name: "unpriv", Network: runtime.NetworkNone, Command: []string{"sh", "-c", probe}}, 0)
	if strings.Contains(out, "mounted") || strings.Contains(out, "link\n") || strings.Contains(out, "/dev/loop0") ||
		!strings.Contains(out, "CapEff:\t00000000a80425fb") || !strings.Contains(out, "ro\n") {
		t.Errorf("unprivileged: got %q, want no mount, no link, default capabilities, no loop device, /sys ro", out)
	}
	// A device asked for wins over the host's of the same path.
	if out := te.runOut(t, ContainerSpec{Name: "privdev", Network: runtime.NetworkNone, Command: []string{"sh", "-c", "head -c 3 /dev/zero | wc -c"},
		HostOptions: HostOptions{Privileged: true, Devices: []DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/zero"}}}}, 0); strings.TrimSpace(out) != "0" {
		t.Errorf("privileged with /dev/null as /dev/zero: read %q bytes, want 0", out)
	}
	// A privileged container's exec gets its capabilities too.
	c := te.run(t, ContainerSpec{Name: "privexec", Network: runtime.NetworkNone, Command: []string{"sleep", "60"}, HostOptions: HostOptions{Privileged: true}})
	var b strings.Builder
	code, err := te.Exec(context.Background(), c.ID, ExecOptions{Args: []string{"sh", "-c", "mkdir -p /m2 && mount -t tmpfs none /m2 && echo mounted"}, Stdout: &b, Stderr: &b})
	if err != nil || code != 0 || b.String() != "mounted\n" {
		t.Errorf("exec in a privileged container: code %d, %v: %q", code, err, b.String())
	}
}

// seccomp=unconfined lets through what the default profile refuses; a
// profile of one's own refuses what it lists; no-new-privileges.
func TestSecurityOpt(t *testing.T) {
	if !runtime.SeccompSupported {
		t.Fatal("this test needs a build with -tags seccomp")
	}
	te := newTestEngine(t)
	unshare := []string{"sh", "-c", "unshare -U true && echo unshared"}
	if out := te.runOut(t, ContainerSpec{Name: "confined", Network: runtime.NetworkNone, Command: unshare}, 1); strings.Contains(out, "unshared") {
		t.Errorf("default profile: unshare -U worked: %q", out)
	}
	out := te.runOut(t, ContainerSpec{Name: "unconfined", Network: runtime.NetworkNone, Command: unshare,
		HostOptions: HostOptions{SecurityOpt: []string{"seccomp=unconfined"}}}, 0)
	if out != "unshared\n" {
		t.Errorf("seccomp=unconfined: got %q", out)
	}
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`
	mkdir := []string{"sh", "-c", "mkdir /x && echo made"}
	if out := te.runOut(t, ContainerSpec{Name: "nomkdir", Network: runtime.NetworkNone, Command: mkdir,
		HostOptions: HostOptions{SecurityOpt: []string{"seccomp=" + profile}}}, 1); strings.Contains(out, "made") {
		t.Errorf("a profile refusing mkdir: got %q", out)
	}
	if out := te.runOut(t, ContainerSpec{Name: "mkdir", Network: runtime.NetworkNone, Command: mkdir}, 0); out != "made\n" {
		t.Errorf("default profile: mkdir: got %q", out)
	}
	nnp := []string{"sh", "-c", "grep NoNewPrivs /proc/self/status"}
	for _, c := range []struct {
		name string
		o    HostOptions
		want string
	}{
		{"nnp-declared", HostOptions{}, "1"}, // a declared workload's default
		{"nnp-docker", HostOptions{AllowNewPrivileges: true}, "0"},
		{"nnp-asked", HostOptions{AllowNewPrivileges: true, SecurityOpt: []string{"no-new-privileges"}}, "1"},
		{"nnp-off", HostOptions{SecurityOpt: []string{"no-new-privileges=false"}}, "0"},
	} {
		if out := te.runOut(t, ContainerSpec{Name: c.name, Network: runtime.NetworkNone, Command: nnp, HostOptions: c.o}, 0); out != "NoNewPrivs:\t"+c.want+"\n" {
			t.Errorf("%s: got %q, want NoNewPrivs %s", c.name, out, c.want)
		}
	}
}

// --init: the init is PID 1, reaps an orphan the command leaves, passes a
// stop's SIGTERM to the command, and exits with its code.
func TestInit(t *testing.T) {
	initBin := testimg.BuildInit(t)
	te := newTestEngineAt(t, t.TempDir(), func(c *Config) { c.InitBinary = initBin })
	ctx := context.Background()
	zombies := func(init bool) (string, string) {
		t.Helper()
		// The orphan (sleep 0.2, whose parent exits at once) is
		// reparented to PID 1; the command then becomes sleep, which
		// reaps nothing.
		c := te.run(t, ContainerSpec{Name: fmt.Sprintf("zombie-%v", init), Network: runtime.NetworkNone, HostOptions: HostOptions{Init: init},
			Command: []string{"sh", "-c", "sh -c 'sleep 0.2 &'; exec sleep 30"}})
		time.Sleep(time.Second) // the orphan ends
		var pid1, zs strings.Builder
		if _, err := te.Exec(ctx, c.ID, ExecOptions{Args: []string{"cat", "/proc/1/cmdline"}, Stdout: &pid1}); err != nil {
			t.Fatal(err)
		}
		if _, err := te.Exec(ctx, c.ID, ExecOptions{Args: []string{"sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status"}, Stdout: &zs}); err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(pid1.String(), "\x00", " "), zs.String()
	}
	pid1, zs := zombies(true)
	if pid1 != "/sbin/docker-init -- sh -c sh -c 'sleep 0.2 &'; exec sleep 30 " || zs != "" {
		t.Errorf("with init: PID 1 %q, zombies %q; want the init and none", pid1, zs)
	}
	// Without it the orphan stays a zombie (else the above proves nothing).
	if pid1, zs := zombies(false); !strings.HasPrefix(pid1, "sleep") || zs == "" {
		t.Errorf("without init: PID 1 %q, zombies %q; want sleep and a zombie", pid1, zs)
	}
	// (On a read-only rootfs too: the init's mount point is made first.)
	if out := te.runOut(t, ContainerSpec{Name: "code", Network: runtime.NetworkNone, ReadOnly: true, HostOptions: HostOptions{Init: true},
		Command: []string{"sh", "-c", "echo hi; exit 3"}}, 3); out != "hi\n" {
		t.Errorf("init: output %q", out)
	}
	// With a terminal the command runs in its foreground.
	if out := te.runOut(t, ContainerSpec{Name: "tty", Network: runtime.NetworkNone, Tty: true, HostOptions: HostOptions{Init: true},
		Command: []string{"sh", "-c", `tty; set -- $(cat /proc/$$/stat); [ "$5" = "$8" ] && echo foreground; exit 4`}}, 4); out != "/dev/pts/0\r\nforeground\r\n" {
		t.Errorf("init with a terminal: got %q", out)
	}
	c := te.run(t, ContainerSpec{Name: "trap", Network: runtime.NetworkNone, HostOptions: HostOptions{Init: true},
		Command: []string{"sh", "-c", "trap 'echo got TERM; exit 42' TERM; while true; do sleep 0.1; done"}})
	eventually(t, "the trap to be set", func() bool {
		got, _ := te.Get(c.ID)
		return got.State == StateRunning
	})
	time.Sleep(300 * time.Millisecond) // the shell sets its trap
	if err := te.Stop(ctx, c.ID, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := te.Get(c.ID)
	if err != nil || got.ExitCode != 42 || !strings.Contains(te.logText(t, c.ID), "got TERM") {
		t.Errorf("stop with init: exit %d, %v, log %q; want 42 and the trap's line", got.ExitCode, err, te.logText(t, c.ID))
	}
}

// --privileged gives every capability hostd has, less --cap-drop, as
// dockerd; without it, nil (Docker's defaults) unless caps are changed.
func TestPrivilegedCaps(t *testing.T) {
	caps, err := ContainerSpec{HostOptions: HostOptions{Privileged: true}, ProcessOptions: ProcessOptions{CapDrop: []string{"net_admin"}}}.caps()
	if err != nil || slices.Contains(caps, "CAP_NET_ADMIN") || !slices.Contains(caps, "CAP_SYS_ADMIN") || !slices.Contains(caps, "CAP_SYS_MODULE") {
		t.Errorf("privileged less NET_ADMIN: got %v, %v", caps, err)
	}
	if caps, err := (ContainerSpec{}).caps(); err != nil || caps != nil {
		t.Errorf("defaults: got %v, %v, want nil", caps, err)
	}
}
