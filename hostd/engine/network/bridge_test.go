package network

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/dockerapi"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/image"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func TestMain(m *testing.M) { testimg.Main(m) }

func TestDNSDropsLoopbackServers(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 127.0.0.53\nsearch lan\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "run/systemd/resolve"), 0o755)
	os.WriteFile(filepath.Join(root, "run/systemd/resolve/resolv.conf"), []byte("nameserver 192.0.2.1\nnameserver 127.0.0.1\n"), 0o644)
	b := &Bridge{HostRoot: fsroot.Root(root)}
	if got, want := string(b.DNS("")), "nameserver 192.0.2.1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// testBridge is a bridge with a name and subnet of its own, removed with
// its rules when the test ends.
func testBridge(t *testing.T) *Bridge {
	t.Helper()
	testimg.RequireHost(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatal("needs iptables: apt-get install iptables")
	}
	dir := t.TempDir()
	n := os.Getpid() % 200
	b := &Bridge{
		Name: fmt.Sprintf("hdt%d", os.Getpid()%100000), Subnet: fmt.Sprintf("10.213.%d.0/24", n),
		StateDir: filepath.Join(dir, "leases"), NetnsDir: filepath.Join(dir, "netns"),
		HostRoot: "/", Runner: run.Exec{},
	}
	if err := b.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Destroy(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return b
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bridgedEngine is an engine on b with the busybox image pulled.
func bridgedEngine(t *testing.T, b *Bridge) (*engine.Engine, string) {
	t.Helper()
	host, ref := testimg.BusyboxRegistry(t)
	dir := t.TempDir()
	e, err := engine.New(context.Background(), engine.Config{
		Root: filepath.Join(dir, "lib"), RunDir: filepath.Join(dir, "run"),
		Images:      image.Options{Insecure: []string{host}},
		ShimCommand: []string{os.Args[0], "shim"}, Seccomp: runtime.SeccompSupported, Runtime: libct.New,
		Network: b,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range e.List() {
			if err := e.Remove(context.Background(), c.ID, true); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		e.Close()
	})
	if _, err := e.Images().Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	return e, ref
}

// get polls url until it answers (bounded) and returns the body.
func get(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBridgePublishedPort(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	b := testBridge(t)
	e, ref := bridgedEngine(t, b)
	ctx := context.Background()
	port := freePort(t)
	c, err := e.Create(ctx, engine.ContainerSpec{Name: "web", Image: ref, Ports: []string{fmt.Sprintf("%d:80", port)},
		Command: []string{"sh", "-c", "mkdir /www; hostname > /www/index.html; cat /etc/hosts >> /www/index.html; exec busybox httpd -f -p 80 -h /www"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := e.Get(c.ID)
	if !strings.HasPrefix(got.IP, strings.TrimSuffix(b.Subnet, "0/24")) {
		t.Errorf("got IP %q, want one in %s", got.IP, b.Subnet)
	}
	body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	if !strings.HasPrefix(body, c.ID[:12]+"\n") || !strings.Contains(body, got.IP+"\t"+c.ID[:12]) {
		t.Errorf("got %q, want the container's hostname and its /etc/hosts entry", body)
	}
	if err := e.Remove(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("vh" + c.ID[:12]); err == nil {
		t.Errorf("the veth is still there after rm")
	}
	if out, _ := exec.Command("iptables", "-t", "nat", "-S", b.chain()).Output(); strings.Contains(string(out), "DNAT") {
		t.Errorf("DNAT rules left after rm: %s", out)
	}
}

// TestDockerRunPublish drives the bridge through the Docker API with the
// stock CLI: docker run -d -p HOST:80.
func TestDockerRunPublish(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("needs the docker CLI (docker-ce-cli or docker.io)")
	}
	b := testBridge(t)
	e, ref := bridgedEngine(t, b)
	docker := dockerOn(t, e)
	port := freePort(t)
	docker("run", "-d", "--name", "pub", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), ref,
		"sh", "-c", "mkdir /www; echo published > /www/index.html; exec busybox httpd -f -p 80 -h /www")
	if body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); body != "published\n" {
		t.Errorf("got %q, want %q", body, "published\n")
	}
	if out := docker("ps"); !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) {
		t.Errorf("docker ps does not show the published port: %s", out)
	}
}

// dockerOn serves the Docker API for e on a temporary socket and returns a
// function running the stock CLI against it.
func dockerOn(t *testing.T, e *engine.Engine) func(args ...string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: (&dockerapi.API{E: e, Version: "test"}).Handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	config := t.TempDir()
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command("docker", append([]string{"-H", "unix://" + sock}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

// TestDockerRunRandomPorts publishes on host ports hostd picks: -p 80,
// -p 127.0.0.1::80 and -P (the image's EXPOSE), each visible in docker
// port, docker inspect, docker ps and the engine's record, and answering
// over loopback.
func TestDockerRunRandomPorts(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("needs the docker CLI (docker-ce-cli or docker.io)")
	}
	b := testBridge(t)
	e, ref := bridgedEngine(t, b)
	webRef := strings.TrimSuffix(ref, "/busybox:latest") + "/web:latest"
	serve := []string{"sh", "-c", "mkdir /www; hostname > /www/index.html; exec busybox httpd -f -p 80 -h /www"}
	testimg.Push(t, webRef, testimg.Image(t, v1.Config{Cmd: serve, ExposedPorts: map[string]struct{}{"80/tcp": {}}}))
	docker := dockerOn(t, e)
	cases := []struct {
		name   string
		args   []string
		wantIP string
	}{
		{"any", append([]string{"-p", "80", ref}, serve...), "0.0.0.0"},
		{"loopback", append([]string{"-p", "127.0.0.1::80", ref}, serve...), "127.0.0.1"},
		{"all", []string{"-P", webRef}, "0.0.0.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The id is the last line (after the pull's messages).
			out := strings.Fields(docker(append([]string{"run", "-d", "--name", tc.name}, tc.args...)...))
			id := out[len(out)-1]
			got := strings.TrimSpace(docker("port", tc.name, "80"))
			ip, port, err := net.SplitHostPort(got)
			if err != nil || ip != tc.wantIP || port == "0" {
				t.Fatalf("docker port: got %q, want %s:<a port>", got, tc.wantIP)
			}
			if body := get(t, "http://127.0.0.1:"+port+"/"); body != id[:12]+"\n" {
				t.Errorf("GET 127.0.0.1:%s: got %q, want %q", port, body, id[:12]+"\n")
			}
			var insp []struct {
				NetworkSettings struct {
					Ports map[string][]struct{ HostIp, HostPort string }
				}
			}
			if err := json.Unmarshal([]byte(docker("inspect", tc.name)), &insp); err != nil || len(insp) != 1 {
				t.Fatalf("inspect: %v", err)
			}
			if b := insp[0].NetworkSettings.Ports["80/tcp"]; len(b) != 1 || b[0].HostPort != port || b[0].HostIp != tc.wantIP {
				t.Errorf("inspect NetworkSettings.Ports: got %+v, want %s:%s", b, tc.wantIP, port)
			}
			if ps := docker("ps", "--filter", "name="+tc.name); !strings.Contains(ps, tc.wantIP+":"+port+"->80/tcp") {
				t.Errorf("docker ps: got %q, want %s:%s->80/tcp", ps, tc.wantIP, port)
			}
			c, err := e.Get(tc.name)
			if err != nil || len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].HostPort) != port {
				t.Errorf("engine record ports: got %+v, %v, want host port %s", c.Ports, err, port)
			}
		})
	}
}

// Init on a fresh host adds every global rule (in one iptables-restore);
// Init again, as a restarted hostd does, finds them and adds no copies.
func TestInitRulesOnceEach(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	b := testBridge(t)
	count := func() map[string]int {
		n := map[string]int{}
		for _, r := range b.globalRules() {
			out, err := exec.Command("iptables", "-t", r.Table, "-S", r.Chain).Output()
			if err != nil {
				t.Fatal(err)
			}
			want := "-A " + r.Chain + " " + strings.Join(r.Args, " ")
			for _, line := range strings.Split(string(out), "\n") {
				// iptables -S prints "! -o" before "-s" for the first rule.
				if sameWords(line, want) {
					n[want]++
				}
			}
		}
		return n
	}
	check := func(when string) {
		got := count()
		for _, r := range b.globalRules() {
			want := "-A " + r.Chain + " " + strings.Join(r.Args, " ")
			if got[want] != 1 {
				t.Errorf("%s: rule %q present %d times, want once", when, want, got[want])
			}
		}
	}
	check("after a fresh Init")
	restarted := &Bridge{Name: b.Name, Subnet: b.Subnet, StateDir: b.StateDir, NetnsDir: b.NetnsDir, HostRoot: b.HostRoot, Runner: b.Runner}
	if err := restarted.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("after Init by a restarted hostd")
}

// sameWords compares two rule lines as sets of words, since iptables -S
// may print matches in another order than they were given.
func sameWords(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	if len(x) != len(y) {
		return false
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// neighbour is a second network namespace joined to the host by a veth
// pair (host 10.214.N.1/30, neighbour .2), standing for a machine on the
// host's LAN that routes as it likes. It returns the namespace path and
// the host's address on the link.
func neighbour(t *testing.T) (nsPath, hostIP string) {
	t.Helper()
	n := os.Getpid() % 60
	hostIP, nsIP := fmt.Sprintf("10.214.%d.1", n), fmt.Sprintf("10.214.%d.2", n)
	hostEnd, nsEnd := fmt.Sprintf("nbh%d", os.Getpid()%100000), fmt.Sprintf("nbn%d", os.Getpid()%100000)
	nsPath = filepath.Join(t.TempDir(), "neighbour")
	if err := newNetns(nsPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(hostEnd); err == nil {
			_ = netlink.LinkDel(l)
		}
		_ = unix.Unmount(nsPath, unix.MNT_DETACH)
	})
	sh(t, "", fmt.Sprintf("ip link add %s type veth peer name %s && ip addr add %s/30 dev %s && ip link set %s up", hostEnd, nsEnd, hostIP, hostEnd, hostEnd))
	ns, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	l, err := netlink.LinkByName(nsEnd)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(l, int(ns.Fd())); err != nil {
		t.Fatal(err)
	}
	sh(t, nsPath, fmt.Sprintf("ip link set lo up && ip addr add %s/30 dev %s && ip link set %s up && ip route add default via %s", nsIP, nsEnd, nsEnd, hostIP))
	return nsPath, hostIP
}

// sendLoopbackVia makes the namespace at nsPath send packets for the
// loopback address dst out of dev to gw instead of to its own lo, as a
// hostile peer (or a container's raw socket) can.
func sendLoopbackVia(t *testing.T, nsPath, dst, dev, gw string) {
	t.Helper()
	sh(t, nsPath, fmt.Sprintf("ip route del local 127.0.0.0/8 dev lo table local; ip route del local 127.0.0.1 dev lo table local; "+
		"echo 1 > /proc/sys/net/ipv4/conf/%s/route_localnet && echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && ip route add %s/32 via %s dev %s", dev, dst, gw, dev))
}

// sh is testimg.NetnsSh.
func sh(t *testing.T, nsPath, cmd string) string { t.Helper(); return testimg.NetnsSh(t, nsPath, cmd) }

// fetch GETs http://addr/ from the namespace at nsPath with a short
// timeout (busybox nc: the host's static busybox wget crashes resolving);
// ok is false when no HTTP answer came.
func fetch(nsPath, addr string) (string, bool) {
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("nsenter", "--net="+nsPath, "busybox", "nc", "-w", "3", host, port)
	cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
	out, _ := cmd.CombinedOutput()
	_, body, ok := strings.Cut(string(out), "\r\n\r\n")
	return body, ok && strings.HasPrefix(string(out), "HTTP/1.")
}

// serveCmd serves the container's hostname over HTTP on port 80.
var serveCmd = []string{"sh", "-c", "mkdir /www; hostname > /www/index.html; exec busybox httpd -f -p 80 -h /www"}

// A neighbour reaches a port published on all addresses, but not one
// published on 127.0.0.1 (sending SYNs for 127.0.0.1 to the host), nor the
// container's unpublished port by routing the bridge subnet through the
// host. (Linux 6.18, this machine's, already drops the DNATed loopback
// SYN itself; older kernels delivered it, and the raw rule stops it there.
// The same rule is what TestAttackContainerToHostLoopback proves.)
func TestAttackNeighbourReach(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	b := testBridge(t)
	e, ref := bridgedEngine(t, b)
	ctx := context.Background()
	nsPath, hostIP := neighbour(t)
	open, local := freePort(t), freePort(t)
	c, err := e.Create(ctx, engine.ContainerSpec{Name: "web", Image: ref, Command: serveCmd,
		Ports: []string{fmt.Sprintf("%d:80", open), fmt.Sprintf("127.0.0.1:%d:80", local)}, Expose: []string{"8080"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := e.Get(c.ID)
	// The host reaches both; the neighbour the open one (so its path works).
	get(t, fmt.Sprintf("http://127.0.0.1:%d/", local))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if body, ok := fetch(nsPath, net.JoinHostPort(hostIP, strconv.Itoa(open))); ok {
			if body != c.ID[:12]+"\n" {
				t.Fatalf("the published port from the neighbour: got %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the neighbour never reached the published port %s:%d", hostIP, open)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body, ok := fetch(nsPath, net.JoinHostPort(got.IP, "80")); ok {
		t.Errorf("the neighbour routed to the container's unpublished port %s:80: %q", got.IP, body)
	}
	sendLoopbackVia(t, nsPath, "127.0.0.1", fmt.Sprintf("nbn%d", os.Getpid()%100000), hostIP)
	if body, ok := fetch(nsPath, net.JoinHostPort("127.0.0.1", strconv.Itoa(local))); ok {
		t.Errorf("the neighbour reached the port published on 127.0.0.1:%d: %q", local, body)
	}
}

// A container sends a packet for the host's 127.0.0.53 out of its eth0
// (a raw socket can; here its namespace's routes are bent from outside to
// the same effect): the host's loopback service must not see it.
func TestAttackContainerToHostLoopback(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	b := testBridge(t)
	e, ref := bridgedEngine(t, b)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.53:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reached := make(chan struct{}, 1)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
			select {
			case reached <- struct{}{}:
			default:
			}
		}
	}()
	c, err := e.Create(ctx, engine.ContainerSpec{Name: "probe", Image: ref, Command: []string{"sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	gw := nthIP(b.prefix, 1).String()
	sendLoopbackVia(t, b.NetnsPath(c.ID), "127.0.0.53", "eth0", gw)
	port := l.Addr().(*net.TCPAddr).Port
	var out strings.Builder
	code, err := e.Exec(ctx, c.ID, engine.ExecOptions{Args: []string{"sh", "-c", fmt.Sprintf("echo hi | nc -w 3 127.0.0.53 %d && echo CONNECTED", port)}, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
		t.Errorf("the container reached the host's 127.0.0.53:%d (exec code %d: %q)", port, code, out.String())
	case <-time.After(time.Second):
	}
	if strings.Contains(out.String(), "CONNECTED") {
		t.Errorf("the container connected to the host's 127.0.0.53:%d: %q", port, out.String())
	}
}

// -p PORT:80 with PORT taken by a host program (sshd on 22) is refused by
// name, and leaves no rule behind.
func TestTakenHostPortRefused(t *testing.T) {
	// Its bridge and iptables rules live in a network namespace of its own.
	if !testimg.InNetns(t) {
		return
	}
	b := testBridge(t)
	e, ref := bridgedEngine(t, b)
	ctx := context.Background()
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c, err := e.Create(ctx, engine.ContainerSpec{Name: "shadow", Image: ref, Command: serveCmd, Ports: []string{fmt.Sprintf("%d:80", port)}})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start(ctx, c.ID)
	if want := fmt.Sprintf("host port %d/tcp on 0.0.0.0 is in use", port); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("start: got %v, want an error saying %q", err, want)
	}
	if got, _ := e.Get(c.ID); got.State == engine.StateRunning {
		t.Errorf("the container runs after its port was refused")
	}
	if out, _ := exec.Command("iptables", "-t", "nat", "-S", b.chain()).Output(); strings.Contains(string(out), strconv.Itoa(port)) {
		t.Errorf("a DNAT rule for the taken port was added: %s", out)
	}
	// The program keeps its port.
	go func() {
		if conn, err := l.Accept(); err == nil {
			conn.Close()
		}
	}()
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 3*time.Second); err != nil {
		t.Errorf("the host program's port: %v", err)
	} else {
		conn.Close()
	}
}
