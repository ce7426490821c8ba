package hostd_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/engine/network/nettest"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// TestDockerNetworks drives user-defined networks through the stock docker
// CLI: create, ls with filters, inspect, run --network with aliases, the
// resolver (names, aliases, forwarding), isolation between networks,
// connect and disconnect, rm and prune, and what hostd refuses by name.
func TestDockerNetworks(t *testing.T) {
	if !testimg.InNetns(t) {
		return
	}
	m := nettest.Manager(t, nettest.FakeUpstream(t))
	h, d := dockerHostOn(t, m)
	d.must(t, "pull", h.ref)
	img := h.ref

	want := func(out, sub, what string) {
		t.Helper()
		if !strings.Contains(out, sub) {
			t.Errorf("%s: got %q, want it to contain %q", what, out, sub)
		}
	}
	fails := func(sub string, args ...string) {
		t.Helper()
		out, code := d.run(t, "", args...)
		if code == 0 || !strings.Contains(out, sub) {
			t.Errorf("docker %s: got exit %d, %q; want a failure naming %q", strings.Join(args, " "), code, out, sub)
		}
	}

	d.must(t, "network", "create", "--label", "tier=front", "appnet")
	d.must(t, "network", "create", "--subnet", "10.99.7.0/24", "other")
	if out := d.must(t, "network", "ls", "--format", "{{.Name}} {{.Driver}}"); !sameLines(out, "bridge bridge\nhost host\nnone null\nappnet bridge\nother bridge\n") {
		t.Errorf("network ls: got %q", out)
	}
	want(d.must(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "other"), "10.99.7.0/24 10.99.7.1", "inspect other")
	appSubnet := strings.TrimSpace(d.must(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "appnet"))
	if appSubnet != "10.89.0.0/24" {
		t.Errorf("appnet's subnet: got %q, want the pool's first /24, 10.89.0.0/24", appSubnet)
	}
	for _, c := range []struct{ args, want string }{
		{"-f name=app", "appnet"},
		{"-f driver=bridge", "appnet bridge other"},
		{"-f type=custom", "appnet other"},
		{"-f type=builtin", "bridge host none"},
		{"-f label=tier=front", "appnet"},
		{"-f label=tier=back", ""},
		{"-f dangling=true", "appnet other"},
	} {
		args := append([]string{"network", "ls", "--format", "{{.Name}}"}, strings.Fields(c.args)...)
		if out := d.must(t, args...); !sameLines(out, strings.ReplaceAll(c.want, " ", "\n")) {
			t.Errorf("network ls %s: got %q, want %q", c.args, out, c.want)
		}
	}
	id := strings.TrimSpace(d.must(t, "network", "inspect", "-f", "{{.Id}}", "appnet"))
	if out := d.must(t, "network", "ls", "-q", "-f", "id="+id[:10]); strings.TrimSpace(out) != id[:12] {
		t.Errorf("network ls -f id=%s: got %q", id[:10], out)
	}
	fails("invalid filter 'bogus'", "network", "ls", "-f", "bogus=1")
	fails("Internal (--internal)", "network", "create", "--internal", "inside")
	fails("EnableIPv6 (--ipv6)", "network", "create", "--ipv6", "six")
	fails("com.docker.network.bridge.name", "network", "create", "-o", "com.docker.network.bridge.name=x", "opts")
	fails("overlaps", "network", "create", "--subnet", "10.99.7.128/25", "clash")
	fails("already exists", "network", "create", "appnet")
	fails("not found", "run", "--rm", "--network", "nosuch", img, "true")

	// web serves on appnet, known as web and www there.
	d.must(t, "run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www", img,
		"sh", "-c", "mkdir /www && echo served-by-web > /www/index.html && exec httpd -f -p 80 -h /www")
	webIP := strings.TrimSpace(d.must(t, "inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", "web"))
	if !strings.HasPrefix(webIP, "10.89.0.") {
		t.Fatalf("web's address on appnet: got %q", webIP)
	}
	want(d.must(t, "inspect", "-f", "{{json .NetworkSettings.Networks.appnet.Aliases}}", "web"), `"www"`, "web's aliases")
	want(d.must(t, "network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "appnet"), "web "+webIP+"/24", "appnet's containers")
	if out := d.must(t, "network", "ls", "--format", "{{.Name}}", "-f", "dangling=true"); !sameLines(out, "other") {
		t.Errorf("network ls -f dangling=true with web on appnet: got %q, want other", out)
	}
	if out := d.must(t, "ps", "--format", "{{.Names}}", "-f", "network=appnet"); strings.TrimSpace(out) != "web" {
		t.Errorf("ps -f network=appnet: got %q, want web", out)
	}
	onApp := func(args ...string) string {
		return d.must(t, append([]string{"run", "--rm", "--network", "appnet", img}, args...)...)
	}
	want(onApp("cat", "/etc/resolv.conf"), "nameserver 10.89.0.1", "a container's resolv.conf on appnet")
	want(onApp("busybox", "nslookup", "web"), webIP, "nslookup web")
	want(onApp("busybox", "nslookup", "www"), webIP, "nslookup www (alias)")
	want(onApp("busybox", "nslookup", "upstream.test"), "192.0.2.7", "nslookup upstream.test (forwarded)")
	want(onApp("sh", "-c", nettest.FetchByName("www")), "served-by-web", "wget http://www/")

	// Other networks see neither web's name nor its address, nor the
	// resolver of appnet.
	onOther := func(args ...string) (string, int) {
		return d.run(t, "", append([]string{"run", "--rm", "--network", "other", img}, args...)...)
	}
	if out, code := onOther("busybox", "nslookup", "web"); code == 0 || strings.Contains(out, webIP) {
		t.Errorf("nslookup web on other: got exit %d, %q; want no answer", code, out)
	}
	if out, code := onOther("busybox", "nslookup", "-timeout=2", "web", "10.89.0.1"); code == 0 || strings.Contains(out, webIP) {
		t.Errorf("nslookup web at appnet's resolver from other: got exit %d, %q; want no answer", code, out)
	}
	if out, code := onOther("sh", "-c", nettest.FetchAt(webIP)); code == 0 || strings.Contains(out, "served-by-web") {
		t.Errorf("wget web's address from other: got exit %d, %q; want no connection", code, out)
	}
	if out, code := d.run(t, "", "run", "--rm", img, "sh", "-c", nettest.FetchAt(webIP)); code == 0 || strings.Contains(out, "served-by-web") {
		t.Errorf("wget web's address from the default bridge: got exit %d, %q; want no connection", code, out)
	}

	// connect: lonely, on other, joins appnet and finds web; disconnect
	// cuts it off again.
	d.must(t, "run", "-d", "--name", "lonely", "--network", "other", img,
		"sh", "-c", "mkdir /www && echo served-by-lonely > /www/index.html && exec httpd -f -p 80 -h /www")
	lonelyIP := strings.TrimSpace(d.must(t, "inspect", "-f", "{{.NetworkSettings.Networks.other.IPAddress}}", "lonely"))
	// Nor the other way: appnet (made first) does not reach other's.
	if out, code := d.run(t, "", "run", "--rm", "--network", "appnet", img, "sh", "-c", nettest.FetchAt(lonelyIP)); code == 0 || strings.Contains(out, "served-by-lonely") {
		t.Errorf("fetching lonely's address (other) from appnet: got exit %d, %q; want no connection", code, out)
	}
	d.must(t, "network", "connect", "--alias", "lone", "appnet", "lonely")
	want(d.must(t, "exec", "lonely", "sh", "-c", nettest.FetchByName("web")), "served-by-web", "wget http://web/ from lonely on both")
	want(onApp("busybox", "nslookup", "lone"), "10.89.0.", "nslookup lone (alias given at connect)")
	if out := d.must(t, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "lonely"); !sameLines(strings.ReplaceAll(out, " ", "\n"), "appnet\nother") {
		t.Errorf("lonely's networks: got %q", out)
	}
	fails("already exists", "network", "connect", "appnet", "lonely")
	d.must(t, "network", "disconnect", "appnet", "lonely")
	if out, code := d.run(t, "", "exec", "lonely", "sh", "-c", nettest.FetchAt(webIP)); code == 0 {
		t.Errorf("wget web from lonely after disconnect: got exit 0, %q", out)
	}
	fails("primary network", "network", "disconnect", "other", "lonely")

	// A port published from appnet reaches web from the host.
	d.must(t, "run", "-d", "--name", "pub", "--network", "appnet", "-p", "127.0.0.1:18080:80", img,
		"sh", "-c", "mkdir /www && echo published > /www/index.html && exec httpd -f -p 80 -h /www")
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:18080/")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got = string(b); strings.Contains(got, "published") {
			break
		}
	}
	want(got, "published", "a port published from appnet, from the host")
	fails("IPAMConfig (--ip/--link)", "run", "--rm", "--network", "appnet", "--ip", "10.89.0.50", img, "true")

	fails("active endpoints", "network", "rm", "appnet")
	fails("pre-defined", "network", "rm", "bridge")
	d.must(t, "rm", "-f", "web", "lonely", "pub")
	if out := d.must(t, "network", "prune", "-f", "--filter", "label=tier=front"); !strings.Contains(out, "appnet") || strings.Contains(out, "other") {
		t.Errorf("network prune --filter label=tier=front: got %q, want appnet alone", out)
	}
	d.must(t, "network", "rm", "other")
	if out := d.must(t, "network", "ls", "-q", "-f", "type=custom"); strings.TrimSpace(out) != "" {
		t.Errorf("networks left: %q", out)
	}
	fails("not found", "network", "inspect", "appnet")
}

// sameLines compares the non-empty lines of two outputs as sets.
func sameLines(a, b string) bool {
	set := func(s string) map[string]bool {
		out := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out[l] = true
			}
		}
		return out
	}
	x, y := set(a), set(b)
	if len(x) != len(y) {
		return false
	}
	for k := range x {
		if !y[k] {
			return false
		}
	}
	return true
}
