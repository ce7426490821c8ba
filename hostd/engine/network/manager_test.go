package network_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/network"
	"github.com/bulkhead-os/bulkhead/hostd/engine/network/nettest"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// attach sets up a container's namespace (no container in it) on
// network with aliases, removed at the end.
func attach(t *testing.T, m *network.Manager, name, nw string, aliases ...string) (nsPath, ip string) {
	t.Helper()
	id := randomID()
	nsPath, ip, err := m.Setup(context.Background(), engine.Attachment{ID: id, Name: name, Network: nw,
		Networks: map[string]engine.EndpointSpec{nw: {Aliases: aliases}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Teardown(context.Background(), id) })
	return nsPath, ip
}

// lookup asks server for name from the namespace at nsPath (busybox's
// nslookup, which has a resolver of its own).
func lookup(nsPath, name, server string) (string, error) {
	out, err := exec.Command("nsenter", "--net="+nsPath, "busybox", "nslookup", "-timeout=2", "-retry=1", name, server).CombinedOutput()
	return string(out), err
}

// TestResolverAcrossRestart: names on a user-defined network resolve for
// its members, again from a new manager on the same state (a hostd
// restart) with the containers still running; an address on the bridge no
// container has is refused, and another network's members get nothing,
// not even by asking this network's resolver.
func TestResolverAcrossRestart(t *testing.T) {
	if !testimg.InNetns(t) {
		return
	}
	ctx := context.Background()
	m := nettest.Manager(t, nettest.FakeUpstream(t))
	keep, err := m.CreateNetwork(ctx, engine.NetworkSpec{Name: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateNetwork(ctx, engine.NetworkSpec{Name: "far"}); err != nil {
		t.Fatal(err)
	}
	_, webIP := attach(t, m, "web", "keep", "www")
	client, _ := attach(t, m, "client", "keep")
	farNs, _ := attach(t, m, "stranger", "far")
	for _, name := range []string{"web", "www", "WWW"} {
		if out, err := lookup(client, name, keep.Gateway); err != nil || !strings.Contains(out, "Address: "+webIP) {
			t.Errorf("nslookup %s from client: got %v, %q; want %s", name, err, out, webIP)
		}
	}
	if out, err := lookup(client, "upstream.test", keep.Gateway); err != nil || !strings.Contains(out, "192.0.2.7") {
		t.Errorf("nslookup upstream.test (forwarded): got %v, %q", err, out)
	}
	if out, err := lookup(farNs, "web", keep.Gateway); err == nil || strings.Contains(out, webIP) {
		t.Errorf("nslookup web at keep's resolver from far: got %v, %q; want no answer", err, out)
	}

	// A namespace on keep's bridge with an address no container has:
	// whoever it is, it is not one of the network's containers.
	spoof := filepath.Join(t.TempDir(), "spoof")
	sh(t, "", "touch "+spoof+" && unshare --net="+spoof+" true")
	t.Cleanup(func() { _ = exec.Command("umount", spoof).Run() })
	// Its MAC address is the lowest there is: the bridge's own must not
	// follow it (the members' ARP entries for the gateway would go stale).
	macBefore := mac(t, keep.Bridge)
	sh(t, "", fmt.Sprintf("ip link add spfh address 02:00:00:00:00:01 type veth peer name spfc && ip link set spfh master %s up && ip link set spfc netns %s", keep.Bridge, spoof))
	if after := mac(t, keep.Bridge); after != macBefore {
		t.Errorf("keep's bridge changed its MAC address when a port joined: %s to %s", macBefore, after)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "spfh").Run() })
	sh(t, spoof, "ip link set lo up && ip addr add "+strings.TrimSuffix(keep.Subnet, ".0/24")+".200/24 dev spfc && ip link set spfc up")
	if out, err := lookup(spoof, "web", keep.Gateway); err == nil || strings.Contains(out, webIP) || !strings.Contains(out, "REFUSED") {
		t.Errorf("nslookup web from an address no container has: got %v, %q; want REFUSED", err, out)
	}

	// hostd restarts: a new manager on the same state.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := &network.Manager{Default: m.Default, StateDir: m.StateDir, NetnsDir: m.NetnsDir, HostRoot: m.HostRoot, ResolvRoot: m.ResolvRoot, Runner: m.Runner}
	if err := m2.Init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m2.Close() })
	got, err := m2.Network("keep")
	if err != nil || got.ID != keep.ID || got.Subnet != keep.Subnet {
		t.Fatalf("keep after the restart: got %+v, %v; want ID %s, subnet %s", got, err, keep.ID, keep.Subnet)
	}
	if len(got.Endpoints) != 2 {
		t.Errorf("keep's endpoints after the restart: got %d, want 2", len(got.Endpoints))
	}
	if out, err := lookup(client, "www", keep.Gateway); err != nil || !strings.Contains(out, "Address: "+webIP) {
		t.Errorf("nslookup www after the restart: got %v, %q; want %s", err, out, webIP)
	}
}

// mac is the MAC address of link dev (ip, since /sys is the host's).
func mac(t *testing.T, dev string) string {
	t.Helper()
	f := strings.Fields(sh(t, "", "ip -o link show dev "+dev))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC address for %s in %q", dev, f)
	return ""
}

// sh is testimg.NetnsSh.
func sh(t *testing.T, nsPath, cmd string) string { t.Helper(); return testimg.NetnsSh(t, nsPath, cmd) }

// A manager with no user-defined networks and no endpoints keeps no state
// file (storage-setup refuses to mount a volume over an engine root that
// holds data), and the predefined networks keep their IDs without one.
func TestNoStateWithoutNetworks(t *testing.T) {
	if !testimg.InNetns(t) {
		return
	}
	ctx := context.Background()
	up := nettest.FakeUpstream(t)
	m := nettest.Manager(t, up)
	state := filepath.Join(m.StateDir, "state.json")
	_, statErr := os.Stat(state)
	mid, _ := os.ReadFile("/etc/machine-id")
	if derived := len(strings.TrimSpace(string(mid))) > 0; derived != os.IsNotExist(statErr) {
		t.Errorf("machine ID present %v, state file error %v: want a state file only without a machine ID", derived, statErr)
	}
	bridge, err := m.Network("bridge")
	if err != nil {
		t.Fatal(err)
	}
	if other, err := nettest.Manager(t, up).Network("bridge"); len(mid) > 0 && (err != nil || other.ID != bridge.ID) {
		t.Errorf("another manager's bridge is %q (%v), want the same ID %q", other.ID, err, bridge.ID)
	}
	n, err := m.CreateNetwork(ctx, engine.NetworkSpec{Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("a user-defined network is not kept: %v", err)
	}
	if err := m.RemoveNetwork(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); len(mid) > 0 && !os.IsNotExist(err) {
		t.Errorf("the state file outlived the last network: %v", err)
	}
}
