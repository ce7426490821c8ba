package nettest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/bulkhead-os/bulkhead/hostd/engine/network"
	"github.com/bulkhead-os/bulkhead/hostd/engine/network/resolver/dnstest"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Manager is a network manager with the default bridge, in the
// test's own network namespace (see InNetns: its /proc/sys/net is
// the namespace's), whose resolv.conf (in a temporary root) names
// upstream; it is destroyed, rules and all, at the end.
func Manager(t *testing.T, upstream string) *network.Manager {
	t.Helper()
	dir := t.TempDir()
	hostRoot := filepath.Join(dir, "host")
	if err := os.MkdirAll(filepath.Join(hostRoot, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostRoot, "etc/resolv.conf"), []byte("nameserver "+upstream+"\nsearch example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	netns := filepath.Join(dir, "netns")
	m := &network.Manager{
		Default: &network.Bridge{Name: "hostd0", Subnet: "10.88.0.0/16", StateDir: filepath.Join(dir, "leases"), NetnsDir: netns,
			HostRoot: "/", Runner: run.Exec{}},
		StateDir: filepath.Join(dir, "networks"), NetnsDir: netns, HostRoot: "/", ResolvRoot: fsroot.Root(hostRoot), Runner: run.Exec{},
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(context.Background()); err != nil {
			t.Errorf("destroying the networks: %v", err)
		}
	})
	return m
}

// FakeUpstream answers upstream.test with 192.0.2.7 and anything else
// with NXDOMAIN, on 127.0.0.1:53 of the test's network namespace: the
// host's resolver that user-defined networks forward to.
func FakeUpstream(t *testing.T) string {
	t.Helper()
	dnstest.Serve(t, "127.0.0.1:53", func(h dnsmessage.Header, q dnsmessage.Question) []dnstest.Reply {
		if !strings.EqualFold(q.Name.String(), "upstream.test.") {
			return []dnstest.Reply{{ID: h.ID, RCode: dnsmessage.RCodeNameError}}
		}
		r := dnstest.Reply{ID: h.ID}
		if q.Type == dnsmessage.TypeA {
			r.A = [][4]byte{{192, 0, 2, 7}}
		}
		return []dnstest.Reply{r}
	})
	return "127.0.0.1"
}

// FetchByName is a shell command that fetches http://name/, the name
// resolved by busybox's nslookup and fetched with nc: the test image's
// busybox is static, and glibc's static resolver crashes its wget.
func FetchByName(name string) string {
	// Backquotes, not $(): the conformance steps expand $(...) themselves.
	return "ip=`busybox nslookup " + name + " | busybox awk '/^Address: /{a=$2} END{print a}'`; " + FetchAt("$ip")
}

// FetchAt is a shell command that fetches http://ip/ (nc, see FetchByName).
func FetchAt(ip string) string {
	return "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 " + ip + " 80"
}
