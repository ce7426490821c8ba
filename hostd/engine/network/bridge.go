package network

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Bridge is the default network: a Linux bridge with the first address of
// Subnet, containers on veth pairs, NAT out through iptables MASQUERADE and
// published ports as DNAT rules (also for connections from the host to
// 127.0.0.1, through route_localnet). Only replies and published ports are
// forwarded into the bridge, and loopback addresses are reachable from the
// host alone.
type Bridge struct {
	Name     string      // bridge device, e.g. hostd0
	Subnet   string      // e.g. 10.88.0.0/16
	StateDir string      // address leases and per-container rules
	NetnsDir string      // network namespace files (on tmpfs: /run/hostd/netns)
	HostRoot fsroot.Root // the host's /, for /proc/sys and resolv.conf
	Runner   run.Runner  // iptables
	// Chain is the iptables chain for published ports (default HOSTD-<NAME>).
	Chain string
	// Tag, a few characters, goes in the names of the veth pairs (one
	// container has a pair on each bridge it is on); "" for the default.
	Tag string

	mu     sync.Mutex
	prefix *net.IPNet
	gw     net.IP
}

var _ engine.Networker = (*Bridge)(nil)

func (b *Bridge) chain() string {
	if b.Chain != "" {
		return b.Chain
	}
	return "HOSTD-" + strings.ToUpper(b.Name)
}

// Init creates the bridge, enables forwarding and adds the NAT rules; doing
// it again changes nothing.
func (b *Bridge) Init(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.init(ctx)
}

func (b *Bridge) init(ctx context.Context) error {
	if b.prefix != nil {
		return nil
	}
	_, prefix, err := net.ParseCIDR(b.Subnet)
	if err != nil {
		return fmt.Errorf("bridge subnet %q: %w", b.Subnet, err)
	}
	gw := nthIP(prefix, 1)
	br, err := netlink.LinkByName(b.Name)
	if err != nil {
		la := netlink.NewLinkAttrs()
		la.Name = b.Name
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating bridge %s: %w", b.Name, err)
		}
		if br, err = netlink.LinkByName(b.Name); err != nil {
			return fmt.Errorf("finding bridge %s: %w", b.Name, err)
		}
	}
	ones, _ := prefix.Mask.Size()
	addr, _ := netlink.ParseAddr(fmt.Sprintf("%s/%d", gw, ones))
	if err := netlink.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("addressing bridge %s: %w", b.Name, err)
	}
	// Pin the bridge's MAC address: otherwise a bridge takes the lowest
	// of its ports', and a container joining with a lower one changes it
	// under the others, whose frames to the gateway then go nowhere until
	// their ARP entries expire.
	if mac := br.Attrs().HardwareAddr; len(mac) > 0 {
		if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("pinning the MAC address of bridge %s: %w", b.Name, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bringing up bridge %s: %w", b.Name, err)
	}
	for p, v := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward": "1",
		// Lets DNAT send connections to 127.0.0.1:port on to a container.
		"/proc/sys/net/ipv4/conf/" + b.Name + "/route_localnet": "1",
	} {
		if err := os.WriteFile(b.HostRoot.Join(p), []byte(v), 0o644); err != nil {
			return fmt.Errorf("setting %s: %w", p, err)
		}
	}
	// The chain for published ports. When it is new (a fresh boot), none of
	// the global rules can be there yet: hostd makes the chain before the
	// rules and Destroy removes it after them. Then one iptables-restore adds
	// them all, instead of a check and an add per rule: each iptables run
	// costs a few hundred milliseconds on a slow (emulated) boot. Otherwise
	// (hostd restarted) each rule is checked and added when missing.
	for _, r := range b.obsoleteRules() {
		for b.iptables(ctx, append([]string{"-t", r.Table, "-D", r.Chain}, r.Args...)...) == nil {
		}
	}
	if b.iptables(ctx, "-t", "nat", "-N", b.chain()) == nil {
		if err := b.appendRules(ctx, b.globalRules()); err != nil {
			return err
		}
	} else {
		for _, r := range b.globalRules() {
			if err := b.ensure(ctx, r); err != nil {
				return err
			}
		}
	}
	b.prefix, b.gw = prefix, gw
	return nil
}

// rule is one iptables rule: table, chain and match/target arguments.
type rule struct {
	Table string   `json:"table"`
	Chain string   `json:"chain"`
	Args  []string `json:"args"`
}

func (b *Bridge) globalRules() []rule {
	c := b.chain()
	return []rule{
		{"nat", "POSTROUTING", []string{"-s", b.Subnet, "!", "-o", b.Name, "-j", "MASQUERADE"}},
		// Host-to-container through a published port on 127.0.0.1: the
		// source must not stay a loopback address on the bridge.
		{"nat", "POSTROUTING", []string{"-s", "127.0.0.0/8", "-o", b.Name, "-j", "MASQUERADE"}},
		{"nat", "PREROUTING", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", c}},
		{"nat", "OUTPUT", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", c}},
		// A loopback destination arriving on any other interface is an
		// attack (Docker 28 closed both): a neighbour's SYN to 127.0.0.1
		// would be DNATed to a port published on loopback only, and a
		// container's packet to 127.0.0.53 would reach the host's loopback
		// services through route_localnet on the bridge. raw runs before
		// nat. The comment keeps each bridge's copy its own.
		{"raw", "PREROUTING", []string{"-d", "127.0.0.0/8", "!", "-i", "lo", "-m", "comment", "--comment", "hostd-" + b.Name, "-j", "DROP"}},
		// Into the bridge only replies and published ports (DNATed):
		// a neighbour routing the subnet through the host reaches no
		// unpublished port. Out of it, anything.
		{"filter", "FORWARD", []string{"-o", b.Name, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}},
		{"filter", "FORWARD", []string{"-o", b.Name, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"}},
		{"filter", "FORWARD", []string{"-i", b.Name, "-j", "ACCEPT"}},
		{"filter", "FORWARD", []string{"-o", b.Name, "-j", "DROP"}},
	}
}

// obsoleteRules are global rules older hostd versions added, removed at
// Init: the blanket accept into the bridge let anyone reach unpublished
// ports.
func (b *Bridge) obsoleteRules() []rule {
	return []rule{{"filter", "FORWARD", []string{"-o", b.Name, "-j", "ACCEPT"}}}
}

func (b *Bridge) iptables(ctx context.Context, args ...string) error {
	return iptables(ctx, b.Runner, args...)
}

func iptables(ctx context.Context, r run.Runner, args ...string) error {
	_, err := r.Run(ctx, run.Cmd{Name: "iptables", Args: append([]string{"-w"}, args...)})
	return err
}

// appendRules appends rules in one iptables-restore run, leaving every
// other rule in place (--noflush).
func (b *Bridge) appendRules(ctx context.Context, rules []rule) error {
	var in strings.Builder
	for _, table := range []string{"raw", "nat", "filter"} {
		fmt.Fprintf(&in, "*%s\n", table)
		for _, r := range rules {
			if r.Table == table {
				fmt.Fprintf(&in, "-A %s %s\n", r.Chain, strings.Join(r.Args, " "))
			}
		}
		in.WriteString("COMMIT\n")
	}
	if _, err := b.Runner.Run(ctx, run.Cmd{Name: "iptables-restore", Args: []string{"-w", "--noflush"}, Stdin: strings.NewReader(in.String())}); err != nil {
		return fmt.Errorf("adding the bridge %s NAT and forwarding rules: %w", b.Name, err)
	}
	return nil
}

// ensure adds r unless it is there (its chain is made when missing).
func (b *Bridge) ensure(ctx context.Context, r rule) error { return ensure(ctx, b.Runner, r) }

func ensure(ctx context.Context, runner run.Runner, r rule) error {
	if iptables(ctx, runner, append([]string{"-t", r.Table, "-C", r.Chain}, r.Args...)...) == nil {
		return nil
	}
	if err := iptables(ctx, runner, append([]string{"-t", r.Table, "-A", r.Chain}, r.Args...)...); err != nil {
		return fmt.Errorf("adding %s rule: %w", r.Chain, err)
	}
	return nil
}

// Destroy removes the bridge and its NAT rules (for tests and uninstall;
// containers must be torn down first).
func (b *Bridge) Destroy(ctx context.Context) error {
	var errs []error
	for _, r := range b.globalRules() {
		for b.iptables(ctx, append([]string{"-t", r.Table, "-D", r.Chain}, r.Args...)...) == nil {
		}
	}
	_ = b.iptables(ctx, "-t", "nat", "-F", b.chain())
	_ = b.iptables(ctx, "-t", "nat", "-X", b.chain())
	if l, err := netlink.LinkByName(b.Name); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("deleting bridge %s: %w", b.Name, err))
		}
	}
	b.mu.Lock()
	b.prefix = nil
	b.mu.Unlock()
	return errors.Join(errs...)
}

// lease is a container's network state, kept so Teardown can undo Setup
// after a hostd restart.
type lease struct {
	IP    string `json:"ip"`
	Veth  string `json:"veth"`
	Rules []rule `json:"rules"`
}

func (b *Bridge) leasePath(id string) string { return filepath.Join(b.StateDir, id+".json") }

// NetnsPath is where container id's network namespace is bind-mounted.
func (b *Bridge) NetnsPath(id string) string { return filepath.Join(b.NetnsDir, id) }

// Setup implements engine.Networker for the default network alone: a
// container on a user-defined network needs the Manager.
func (b *Bridge) Setup(ctx context.Context, a engine.Attachment) (string, string, error) {
	if a.Network != "" && a.Network != engine.NetworkBridge {
		return "", "", fmt.Errorf("network %s not found: this bridge is the default network alone", a.Network)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.init(ctx); err != nil {
		return "", "", err
	}
	_ = b.teardown(ctx, a.ID) // a leftover from a crash
	nsPath := b.NetnsPath(a.ID)
	if err := newNetns(nsPath); err != nil {
		return "", "", err
	}
	ip, err := b.join(ctx, a.ID, nsPath, "eth0", true, a.Ports)
	if err != nil {
		return "", "", err
	}
	return nsPath, ip.String(), nil
}

// Join attaches the network namespace at nsPath to the bridge as
// interface ifname with an address of its own, the default route through
// the bridge when route, and the given published ports; Leave undoes it.
func (b *Bridge) Join(ctx context.Context, id, nsPath, ifname string, route bool, ports []engine.Port) (net.IP, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.init(ctx); err != nil {
		return nil, err
	}
	_ = b.leave(ctx, id)
	return b.join(ctx, id, nsPath, ifname, route, ports)
}

func (b *Bridge) join(ctx context.Context, id, nsPath, ifname string, route bool, ports []engine.Port) (net.IP, error) {
	ip, err := b.allocate(id)
	if err != nil {
		return nil, err
	}
	hostEnd, peer := b.vethNames(id)
	l := lease{IP: ip.String(), Veth: hostEnd}
	if err := b.saveLease(id, l); err != nil {
		return nil, err
	}
	if err := b.plumb(id, nsPath, ip, hostEnd, peer, ifname, route); err != nil {
		return nil, err
	}
	for _, p := range ports {
		to := net.JoinHostPort(ip.String(), strconv.Itoa(p.ContainerPort))
		args := []string{"-p", p.Proto, "--dport", strconv.Itoa(p.HostPort), "-j", "DNAT", "--to-destination", to}
		if p.HostIP != "" {
			args = append([]string{"-d", p.HostIP}, args...)
		}
		r := rule{Table: "nat", Chain: b.chain(), Args: args}
		if err := b.ensure(ctx, r); err != nil {
			return nil, err
		}
		l.Rules = append(l.Rules, r)
		if err := b.saveLease(id, l); err != nil {
			return nil, err
		}
	}
	return ip, nil
}

// vethNames are the host end's and the (temporary) container end's names
// of id's veth pair: with the bridge's Tag, so that one container's pairs
// on several bridges differ.
func (b *Bridge) vethNames(id string) (hostEnd, peer string) {
	if b.Tag == "" {
		return "vh" + id[:12], "vc" + id[:12]
	}
	return "vh" + b.Tag + id[:12-len(b.Tag)], "vc" + b.Tag + id[:12-len(b.Tag)]
}

// plumb makes the veth pair: one end on the bridge, the other renamed eth0
// in the container's namespace with its address and a default route.
func (b *Bridge) plumb(id, nsPath string, ip net.IP, vethName, peer, ifname string, route bool) error {
	br, err := netlink.LinkByName(b.Name)
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", b.Name, err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = vethName
	la.MasterIndex = br.Attrs().Index
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
		return fmt.Errorf("creating veth for %s: %w", id[:12], err)
	}
	host, err := netlink.LinkByName(vethName)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bringing up %s: %w", vethName, err)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("opening netns of %s: %w", id[:12], err)
	}
	defer ns.Close()
	pl, err := netlink.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(pl, int(ns)); err != nil {
		return fmt.Errorf("moving %s into the container: %w", peer, err)
	}
	// Only rtnetlink: with no families given, netlink opens XFRM and
	// netfilter sockets too, and fails with EPROTONOSUPPORT on a kernel
	// without xfrm_user loaded (the Bulkhead image does not ship it).
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening rtnetlink in the netns of %s: %w", id[:12], err)
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	cl, err := h.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(cl, ifname); err != nil {
		return fmt.Errorf("naming %s: %w", ifname, err)
	}
	ones, _ := b.prefix.Mask.Size()
	addr, _ := netlink.ParseAddr(fmt.Sprintf("%s/%d", ip, ones))
	if err := h.AddrAdd(cl, addr); err != nil {
		return fmt.Errorf("addressing %s: %w", ifname, err)
	}
	if err := h.LinkSetUp(cl); err != nil {
		return fmt.Errorf("bringing up %s: %w", ifname, err)
	}
	if !route {
		return nil
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: cl.Attrs().Index, Gw: b.gw}); err != nil {
		return fmt.Errorf("adding default route: %w", err)
	}
	return nil
}

// Teardown implements engine.Networker.
func (b *Bridge) Teardown(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.teardown(ctx, id)
}

func (b *Bridge) teardown(ctx context.Context, id string) error {
	return errors.Join(b.leave(ctx, id), removeNetns(b.NetnsPath(id)))
}

// removeNetns undoes newNetns; a namespace that is not there is fine.
func removeNetns(p string) error {
	var errs []error
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("unmounting netns %s: %w", p, err))
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Leave undoes Join: the port rules, the veth pair and the lease.
func (b *Bridge) Leave(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leave(ctx, id)
}

func (b *Bridge) leave(ctx context.Context, id string) error {
	var l lease
	data, err := os.ReadFile(b.leasePath(id))
	if err == nil {
		_ = json.Unmarshal(data, &l)
	}
	for _, r := range l.Rules {
		_ = b.iptables(ctx, append([]string{"-t", r.Table, "-D", r.Chain}, r.Args...)...)
	}
	if l.Veth != "" {
		if link, err := netlink.LinkByName(l.Veth); err == nil {
			_ = netlink.LinkDel(link)
		}
	}
	if err := os.Remove(b.leasePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Lease is the address container id has on the bridge ("" for none).
func (b *Bridge) Lease(id string) string {
	var l lease
	data, err := os.ReadFile(b.leasePath(id))
	if err != nil || json.Unmarshal(data, &l) != nil {
		return ""
	}
	return l.IP
}

// Gateway is the bridge's own address and the subnet's prefix length.
func (b *Bridge) Gateway() (net.IP, int, error) {
	_, prefix, err := net.ParseCIDR(b.Subnet)
	if err != nil {
		return nil, 0, fmt.Errorf("bridge subnet %q: %w", b.Subnet, err)
	}
	ones, _ := prefix.Mask.Size()
	return nthIP(prefix, 1), ones, nil
}

func (b *Bridge) saveLease(id string, l lease) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return fsroot.WriteFile(b.leasePath(id), data, 0o600)
}

// allocate picks the lowest free address after the gateway; leases are the
// files in StateDir.
func (b *Bridge) allocate(id string) (net.IP, error) {
	used := map[string]bool{}
	ents, _ := os.ReadDir(b.StateDir)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(b.StateDir, e.Name()))
		if err != nil {
			continue
		}
		var l lease
		if json.Unmarshal(data, &l) == nil {
			used[l.IP] = true
		}
	}
	ones, bits := b.prefix.Mask.Size()
	size := 1 << (bits - ones)
	for i := 2; i < size-1; i++ {
		ip := nthIP(b.prefix, i)
		if !used[ip.String()] {
			return ip, nil
		}
	}
	return nil, fmt.Errorf("allocating an address for %s: %s is full", id[:12], b.Subnet)
}

func nthIP(n *net.IPNet, i int) net.IP {
	base := binary.BigEndian.Uint32(n.IP.To4())
	out := make(net.IP, 4)
	binary.BigEndian.PutUint32(out, base+uint32(i))
	return out
}

// newNetns makes a network namespace and keeps it alive by bind-mounting
// it at path, as `ip netns add` does. It runs on a locked thread that is
// then thrown away, so no other goroutine ever runs in the new namespace.
func newNetns(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
	if err != nil {
		return fmt.Errorf("making netns file %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// No UnlockOSThread: the thread dies with the goroutine.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		errc <- unix.Mount(src, path, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return fmt.Errorf("making netns %s: %w", path, err)
	}
	return nil
}

// DNS implements engine.Networker: the host's resolv.conf without
// loopback nameservers (a stub resolver on the host's 127.0.0.53 is not
// reachable from a container), falling back to systemd-resolved's upstream
// list.
func (b *Bridge) DNS(string) []byte { return hostDNS(b.HostRoot) }

// hostDNS is the host's resolv.conf (root's) without loopback
// nameservers, or systemd-resolved's upstream list; nil when neither
// names a server.
func hostDNS(root fsroot.Root) []byte {
	for _, p := range []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"} {
		data, err := os.ReadFile(root.Join(p))
		if err != nil {
			continue
		}
		var out bytes.Buffer
		ns := 0
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "nameserver" {
				if ip := net.ParseIP(f[1]); ip == nil || ip.IsLoopback() {
					continue
				}
				ns++
			}
			out.WriteString(line + "\n")
		}
		if ns > 0 {
			return append(bytes.TrimRight(out.Bytes(), "\n"), '\n')
		}
	}
	return nil
}
