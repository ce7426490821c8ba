package qemutests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit"
)

// qemuMAC is the MAC QEMU gives the harness's virtio-net NIC (QemuArgs sets
// none, so QEMU's default applies).
const qemuMAC = "52:54:00:12:34:56"

// staticNetworkConfig gives the user-mode NIC (slirp: 10.0.2.0/24, gateway
// and host 10.0.2.2, DNS 10.0.2.3) a static address. slirp's DHCP would
// hand out the same 10.0.2.15, so the test checks the address is static
// (no "dynamic" flag, infinite lifetime), not just present.
const staticNetworkConfig = `version: 2
ethernets:
  nic0:
    match:
      macaddress: "` + qemuMAC + `"
    dhcp4: false
    addresses: [10.0.2.15/24]
    gateway4: 10.0.2.2
    nameservers:
      addresses: [10.0.2.3]
`

// ipAddr is the part of `ip -j addr` the test reads.
type ipAddr struct {
	IfName   string `json:"ifname"`
	Address  string `json:"address"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
		Dynamic   bool   `json:"dynamic"`
		ValidLft  uint64 `json:"valid_life_time"`
	} `json:"addr_info"`
}

// staticIPv4 returns the NIC's name and a description of its IPv4
// addresses; ok when 10.0.2.15/24 is there, static, and alone.
func staticIPv4(t *testing.T, vm *VM) (ifname, desc string, ok bool) {
	t.Helper()
	var links []ipAddr
	out := sh(t, vm, "ip -j -4 addr show")
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("decoding ip -j addr: %v: %s", err, out)
	}
	for _, l := range links {
		if l.Address != "" && !strings.EqualFold(l.Address, qemuMAC) {
			continue
		}
		if l.IfName == "lo" {
			continue
		}
		var addrs []string
		good := 0
		for _, a := range l.AddrInfo {
			addrs = append(addrs, fmt.Sprintf("%s/%d dynamic=%v valid=%d", a.Local, a.PrefixLen, a.Dynamic, a.ValidLft))
			if a.Local == "10.0.2.15" && a.PrefixLen == 24 && !a.Dynamic && a.ValidLft == 0xffffffff {
				good++
			}
		}
		return l.IfName, strings.Join(addrs, "; "), good == 1 && len(l.AddrInfo) == 1
	}
	return "", "no link with MAC " + qemuMAC, false
}

// hostEcho listens on the host's loopback; slirp forwards the guest's
// connections to 10.0.2.2 there. It answers each connection with a line.
func hostEcho(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w := bufio.NewWriter(c)
			fmt.Fprintln(w, "hello-from-host")
			w.Flush()
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestCloudInitNetworkConfig boots once with a `builder seed` ISO carrying
// a version 2 network-config that configures the NIC statically, and
// checks the rendered networkd file, the address, the default route, DNS
// and that the host is reachable through the gateway.
func TestCloudInitNetworkConfig(t *testing.T) {
	dir := t.TempDir()
	ncFile := filepath.Join(dir, "network-config")
	if err := os.WriteFile(ncFile, []byte(staticNetworkConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := makeSeed(t, "#cloud-config\nhostname: ci-net\n", "-i", "iid-net", "-N", ncFile)
	port := hostEcho(t)
	start := time.Now()
	vm := bootVM(t, BootOpts{Extra: []Disk{{File: seed, Bus: "sata", CDROM: true}}})
	r := waitProvisioned(t, vm)
	t.Logf("booted and provisioned in %s", time.Since(start).Round(time.Second))
	checkReport(t, r, "nocloud:", "iid-net", true, map[string]cloudinit.Status{
		"network_config": cloudinit.StatusRan, "hostname": cloudinit.StatusRan,
	})
	// How networkd was found when the files were written (running and
	// reloaded, restarted, or not started yet): logged for the record.
	lines := sh(t, vm, "journalctl -b -o cat -u bulkhead-provision --no-pager | grep 'network-config:' || true")
	t.Logf("provisioning said:\n%s", lines)
	if !strings.Contains(lines, "network-config: wrote 10-cloud-init-nic0.network") {
		t.Errorf("got provisioning output %q, want a network-config: wrote 10-cloud-init-nic0.network line", lines)
	}

	const file = "/etc/systemd/network/10-cloud-init-nic0.network"
	if got := sh(t, vm, "cat "+file); !strings.Contains(got, "Address=10.0.2.15/24") || !strings.Contains(got, "MACAddress="+qemuMAC) {
		t.Errorf("%s: got %q, want the rendered static config", file, got)
	}

	// networkd applies the file asynchronously after a reload or restart:
	// poll for the end state, bounded by the boot timeout.
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	var ifname, desc string
	for {
		var ok bool
		ifname, desc, ok = staticIPv4(t, vm)
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("got IPv4 addresses %s, want only 10.0.2.15/24 static\n%s", desc,
				sh(t, vm, "networkctl status --no-pager -a; journalctl -b -u systemd-networkd --no-pager | tail -30"))
		case <-time.After(2 * time.Second):
		}
	}
	t.Logf("%s: %s", ifname, desc)

	st := sh(t, vm, "networkctl status --no-pager "+ifname)
	if !strings.Contains(st, "Network File: "+file) {
		t.Errorf("networkctl status %s: got %q, want Network File: %s", ifname, st, file)
	}
	if got := sh(t, vm, "ip -4 route show default"); !strings.Contains(got, "via 10.0.2.2 dev "+ifname) || !strings.Contains(got, "proto static") {
		t.Errorf("default route: got %q, want via 10.0.2.2 dev %s proto static", got, ifname)
	}
	if got := sh(t, vm, "resolvectl dns "+ifname); !strings.Contains(got, "10.0.2.3") {
		t.Errorf("resolvectl dns %s: got %q, want 10.0.2.3", ifname, got)
	}
	// The host, through slirp's gateway address: a TCP connection that
	// only succeeds if the guest routes to 10.0.2.2.
	script := fmt.Sprintf("exec 3<>/dev/tcp/10.0.2.2/%d && head -n1 <&3", port)
	if got := sh(t, vm, "timeout 30 bash -c '"+script+"'"); got != "hello-from-host" {
		t.Errorf("guest to host via 10.0.2.2:%d: got %q, want %q", port, got, "hello-from-host")
	}
	// The guest agent still answers (it is how all of the above ran, but
	// say so once the network has been reconfigured).
	if got := sh(t, vm, "echo agent-ok"); got != "agent-ok" {
		t.Errorf("guest agent: got %q, want agent-ok", got)
	}
	t.Logf("test done in %s", time.Since(start).Round(time.Second))
}
