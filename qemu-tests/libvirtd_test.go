package qemutests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// libvirtd is Debian's libvirtd (the monolithic daemon, qemu:///system)
// started by a test without systemd, dbus or KVM, and without touching
// the host: it runs in a network namespace of its own (the NAT networks
// it makes, their bridges, dnsmasq and iptables rules stay there) and a
// private mount namespace in which the test's temp directories stand in
// for /etc/libvirt, /run and /var (and /etc/passwd and /etc/group), so its sockets, state, logs and
// domains' files are all under the test's temp dir. qemu.conf runs the
// guests as root with no namespaces or cgroups of their own (the test
// runs as root; nothing here delegates cgroups), no security driver, and
// their output straight to files (no virtlogd).
type libvirtd struct {
	Dir    string // the test's stand-in for /etc/libvirt (etc), /run (run), /var (var)
	Socket string // its read-write socket, as the host sees it
	URI    string // qemu:///system through Socket
	NetNS  string // its network namespace, for nsenter --net=
	netns  string // that namespace's identity (net:[INODE]), once libvirtd answers
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

// libvirtdQemuConf is qemu.conf for the test's libvirtd.
const libvirtdQemuConf = `user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
namespaces = [ ]
cgroup_controllers = [ ]
security_driver = "none"
stdio_handler = "file"
`

// libvirtdConf is libvirtd.conf: root only, on its unix socket.
const libvirtdConf = `listen_tcp = 0
listen_tls = 0
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
`

// libvirtdScript runs in the new namespaces: the temp dirs go over the
// daemon's paths, loopback comes up, and libvirtd runs in the foreground.
const libvirtdScript = `set -e
mount --make-rprivate /
mount --bind "$D/etc" /etc/libvirt
mount --bind "$D/passwd" /etc/passwd
mount --bind "$D/group" /etc/group
mount --bind "$D/run" /run
mount --bind "$D/var" /var
ip link set lo up
exec libvirtd
`

// startLibvirtd starts libvirtd and returns once it answers; when the
// test ends its domains are destroyed and every process left in its
// network namespace (libvirtd, qemu, dnsmasq) is killed.
func startLibvirtd(t testing.TB) *libvirtd {
	t.Helper()
	for _, bin := range []string{"libvirtd", "virsh", "qemu-system-x86_64", "dnsmasq", "unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("libvirtd test harness needs %s (make deps installs libvirt-daemon, libvirt-clients, dnsmasq-base): %v", bin, err)
		}
	}
	dir := t.TempDir()
	for _, d := range []string{"etc", "run/libvirt", "var/lib/libvirt", "var/cache/libvirt", "var/log/libvirt", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"qemu.conf": libvirtdQemuConf, "libvirtd.conf": libvirtdConf} {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Debian's libvirtd looks up its build's default guest user and group
	// (libvirt-qemu, which libvirt-daemon-system adds) before it reads
	// qemu.conf: its namespace's passwd and group have them.
	for name, line := range map[string]string{
		"passwd": "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n",
		"group":  "libvirt-qemu:x:64055:\nkvm:x:64056:\n",
	} {
		data, err := os.ReadFile(filepath.Join("/etc", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(data, line...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := &libvirtd{Dir: dir, Socket: filepath.Join(dir, "run/libvirt/libvirt-sock"), log: new(bytes.Buffer)}
	d.URI = "qemu:///system?socket=" + d.Socket
	d.cmd = exec.Command("unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", libvirtdScript)
	d.cmd.Env = append(os.Environ(), "D="+dir)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting libvirtd: %v", err)
	}
	// unshare execs sh, which execs libvirtd: one pid throughout.
	d.NetNS = fmt.Sprintf("/proc/%d/ns/net", d.cmd.Process.Pid)
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { d.stop(t, exited) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, "virsh", "-c", d.URI, "version").CombinedOutput()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("libvirtd exited: %v\n%s", d.cmd.ProcessState, d.log)
		case <-ctx.Done():
			t.Fatalf("libvirtd did not answer on %s: %s\n%s", d.Socket, out, d.log)
		case <-time.After(time.Second):
		}
	}
	// Now libvirtd runs in its own namespace: the one to clean up.
	ns, err := os.Readlink(d.NetNS)
	self, err2 := os.Readlink("/proc/self/ns/net")
	if err != nil || err2 != nil || ns == self {
		t.Fatalf("libvirtd's network namespace: %q (%v), the test's: %q (%v): not its own", ns, err, self, err2)
	}
	d.netns = ns
	return d
}

// Virsh runs virsh against the daemon.
func (d *libvirtd) Virsh(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "virsh", append([]string{"-c", d.URI}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// stop destroys the domains, stops libvirtd, and kills whatever is left
// in its network namespace: the processes it started (qemu, dnsmasq) and
// nothing else, as no other process lives there.
func (d *libvirtd) stop(t testing.TB, exited chan struct{}) {
	if out, err := exec.Command("virsh", "-c", d.URI, "list", "--name").Output(); err == nil {
		for _, dom := range strings.Fields(string(out)) {
			_ = exec.Command("virsh", "-c", d.URI, "destroy", dom).Run()
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-exited
	}
	if d.netns != "" {
		killNetNS(d.netns)
	}
	if t.Failed() {
		t.Logf("libvirtd's log:\n%s", tailString(d.log.String(), 6000))
	}
}

// killNetNS kills every process whose network namespace is ns.
func killNetNS(ns string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns/net")); err == nil && l == ns {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// tailString is the last n bytes of s.
func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
