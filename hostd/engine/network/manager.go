package network

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/network/resolver"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// DefaultPool is where user-defined networks' subnets come from, a /24
// each, when their creator names none.
const DefaultPool = "10.89.0.0/16"

// isolationChain holds one rule per bridge: new connections into it only
// from itself (and published ports). It comes first in FORWARD, before
// any bridge's own accept rules, so no network reaches another's
// containers.
const isolationChain = "HOSTD-ISOLATION"

// Manager is the engine's Networker with user-defined networks: the
// default bridge, and for each network created a bridge of its own
// (hb-<ID>) with a resolver on its gateway address. Networks and the
// endpoints of running containers are kept in StateDir/state.json, so
// both outlive a hostd restart.
type Manager struct {
	Default  *Bridge // the "bridge" network; nil for none
	StateDir string
	NetnsDir string // network namespace files (tmpfs)
	HostRoot fsroot.Root
	// ResolvRoot is where the host's resolv.conf is read (HostRoot when
	// ""), for the resolvers' upstreams and containers' search domains.
	ResolvRoot fsroot.Root
	Runner     run.Runner
	Pool       string // DefaultPool when ""
	Log        *slog.Logger

	mu    sync.Mutex
	ready bool
	st    state
	// derivedIDs: the predefined networks' IDs come from the machine ID,
	// so a state with no networks and no endpoints need not be kept.
	derivedIDs bool
	nets       map[string]*userNet // by ID
}

var _ engine.UserNetworks = (*Manager)(nil)

// state is what StateDir/state.json keeps.
type state struct {
	// Predefined are the IDs of bridge, host and none, made once.
	Predefined map[string]string    `json:"predefined"`
	Networks   []engine.NetworkInfo `json:"networks"`
	// Endpoints: container ID -> network name -> its endpoint there.
	Endpoints map[string]map[string]*endpoint `json:"endpoints"`
}

type endpoint struct {
	Name    string   `json:"name"`
	IP      string   `json:"ip"`
	Iface   string   `json:"iface"`
	Aliases []string `json:"aliases,omitempty"`
}

type userNet struct {
	info engine.NetworkInfo
	br   *Bridge
	dns  *resolver.Server
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.Default()
	}
	return m.Log
}

func (m *Manager) resolvRoot() fsroot.Root {
	if m.ResolvRoot != "" {
		return m.ResolvRoot
	}
	return m.HostRoot
}

func (m *Manager) statePath() string { return filepath.Join(m.StateDir, "state.json") }

// Init brings up the default bridge and every network kept from before
// (bridge, rules, resolver); doing it again changes nothing.
func (m *Manager) Init(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.init(ctx)
}

func (m *Manager) init(ctx context.Context) error {
	if m.ready {
		return nil
	}
	data, err := os.ReadFile(m.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading the networks: %w", err)
	default:
		if err := json.Unmarshal(data, &m.st); err != nil {
			return fmt.Errorf("reading the networks %s: %w", m.statePath(), err)
		}
	}
	if m.st.Predefined == nil {
		m.st.Predefined = map[string]string{}
	}
	m.derivedIDs = true
	mid, _ := os.ReadFile(m.HostRoot.Join("/etc/machine-id"))
	for _, n := range []string{engine.NetworkBridge, runtime.NetworkHost, runtime.NetworkNone} {
		derived, ok := predefinedID(n, strings.TrimSpace(string(mid)))
		if m.st.Predefined[n] == "" {
			m.st.Predefined[n] = derived
		}
		m.derivedIDs = m.derivedIDs && ok && m.st.Predefined[n] == derived
	}
	if m.st.Endpoints == nil {
		m.st.Endpoints = map[string]map[string]*endpoint{}
	}
	if err := m.save(); err != nil {
		return err
	}
	if iptables(ctx, m.Runner, "-t", "filter", "-N", isolationChain) == nil ||
		iptables(ctx, m.Runner, "-t", "filter", "-C", "FORWARD", "-j", isolationChain) != nil {
		if err := iptables(ctx, m.Runner, "-t", "filter", "-I", "FORWARD", "1", "-j", isolationChain); err != nil {
			return fmt.Errorf("adding the network isolation chain: %w", err)
		}
	}
	if m.Default != nil {
		if err := m.Default.Init(ctx); err != nil {
			return err
		}
		if err := ensure(ctx, m.Runner, isolationRule(m.Default.Name)); err != nil {
			return err
		}
	}
	m.nets = map[string]*userNet{}
	for _, info := range m.st.Networks {
		n := m.userNet(info)
		if err := m.up(ctx, n); err != nil {
			return fmt.Errorf("network %s: %w", info.Name, err)
		}
		m.nets[info.ID] = n
	}
	m.ready = true
	return nil
}

// Close stops the resolvers; bridges, rules and containers stay.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, n := range m.nets {
		if n.dns != nil {
			errs = append(errs, n.dns.Close())
			n.dns = nil
		}
	}
	m.ready = false
	return errors.Join(errs...)
}

// Destroy removes every user-defined network's bridge and rules, the
// isolation chain and the default bridge (for tests and uninstall;
// containers must be torn down first).
func (m *Manager) Destroy(ctx context.Context) error {
	errs := []error{m.Close()}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		errs = append(errs, n.br.Destroy(ctx))
	}
	if m.Default != nil {
		errs = append(errs, m.Default.Destroy(ctx))
	}
	for iptables(ctx, m.Runner, "-t", "filter", "-D", "FORWARD", "-j", isolationChain) == nil {
	}
	_ = iptables(ctx, m.Runner, "-t", "filter", "-F", isolationChain)
	_ = iptables(ctx, m.Runner, "-t", "filter", "-X", isolationChain)
	return errors.Join(errs...)
}

func isolationRule(bridge string) rule {
	return rule{"filter", isolationChain, []string{"-o", bridge, "!", "-i", bridge, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP"}}
}

func (m *Manager) userNet(info engine.NetworkInfo) *userNet {
	return &userNet{info: info, br: &Bridge{
		Name: info.Bridge, Subnet: info.Subnet, HostRoot: m.HostRoot, Runner: m.Runner, Tag: info.ID[:3],
		StateDir: filepath.Join(m.StateDir, info.ID), NetnsDir: m.NetnsDir,
	}}
}

// up makes n's bridge, its isolation rule and its resolver.
func (m *Manager) up(ctx context.Context, n *userNet) error {
	if err := n.br.Init(ctx); err != nil {
		return err
	}
	if err := ensure(ctx, m.Runner, isolationRule(n.br.Name)); err != nil {
		return err
	}
	gw, _, err := n.br.Gateway()
	if err != nil {
		return err
	}
	name := n.info.Name
	n.dns = &resolver.Server{Addr: gw, Device: n.br.Name, Log: m.Log, Upstreams: m.upstreams,
		Lookup: func(client net.IP, q string) ([]net.IP, bool) { return m.lookup(name, client, q) }}
	if err := n.dns.Start(); err != nil {
		n.dns = nil
		return err
	}
	return nil
}

// lookup answers the resolver of network for the client at that
// address: the running container there with that address asks, and is
// answered the addresses of the containers whose name, short ID or alias
// is q on the user-defined networks it is on (this one first), as
// dockerd's resolver does. Anyone else is not a member: refused.
func (m *Manager) lookup(network string, client net.IP, q string) ([]net.IP, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	self := ""
	for id, eps := range m.st.Endpoints {
		if ep := eps[network]; ep != nil && net.ParseIP(ep.IP).Equal(client) {
			self = id
		}
	}
	if self == "" {
		return nil, false
	}
	nets := []string{network}
	for _, n := range slices.Sorted(maps.Keys(m.st.Endpoints[self])) {
		if n != network && n != engine.NetworkBridge {
			nets = append(nets, n)
		}
	}
	var ips []net.IP
	for _, n := range nets {
		for _, id := range slices.Sorted(maps.Keys(m.st.Endpoints)) {
			ep := m.st.Endpoints[id][n]
			if ep == nil {
				continue
			}
			if strings.EqualFold(ep.Name, q) || q == id[:12] || slices.ContainsFunc(ep.Aliases, func(a string) bool { return strings.EqualFold(a, q) }) {
				ips = append(ips, net.ParseIP(ep.IP))
			}
		}
		if len(ips) > 0 {
			break
		}
	}
	return ips, true
}

// upstreams are the host's resolvers, loopback ones included: the
// resolvers run in the host's network namespace.
func (m *Manager) upstreams() []string {
	for _, p := range []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"} {
		data, err := os.ReadFile(m.resolvRoot().Join(p))
		if err != nil {
			continue
		}
		var out []string
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "nameserver" && net.ParseIP(f[1]) != nil {
				out = append(out, net.JoinHostPort(f[1], "53"))
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

func (m *Manager) save() error {
	if m.derivedIDs && len(m.st.Networks) == 0 && len(m.st.Endpoints) == 0 {
		// Nothing to keep: no file, so that an engine that never ran a
		// container leaves no data for storage-setup to protect when a
		// volume is later mounted on the engine's root.
		if err := os.Remove(m.statePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(m.st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.StateDir, 0o700); err != nil {
		return err
	}
	return fsroot.WriteFile(m.statePath(), data, 0o600)
}

// predefinedID is the ID of the predefined network name: derived from the
// host's machine ID, so it stays the same without being stored; random
// (and then kept in the state file) on a host without one.
func predefinedID(name, machineID string) (string, bool) {
	if machineID == "" {
		return newID(), false
	}
	sum := sha256.Sum256([]byte("hostd network\x00" + name + "\x00" + machineID))
	return hex.EncodeToString(sum[:]), true
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateNetwork implements engine.UserNetworks.
func (m *Manager) CreateNetwork(ctx context.Context, spec engine.NetworkSpec) (engine.NetworkInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.init(ctx); err != nil {
		return engine.NetworkInfo{}, err
	}
	if !validName(spec.Name) {
		return engine.NetworkInfo{}, fmt.Errorf("%w: network name %q: letters, digits, _ . - only, not starting with a symbol", engine.ErrInvalid, spec.Name)
	}
	if _, err := m.find(spec.Name); err == nil {
		return engine.NetworkInfo{}, fmt.Errorf("%w: network with name %s already exists", engine.ErrConflict, spec.Name)
	}
	if len(spec.Options) > 0 {
		return engine.NetworkInfo{}, fmt.Errorf("%w: network options %v (-o): hostd's bridge driver takes none", engine.ErrInvalid, slices.Sorted(maps.Keys(spec.Options)))
	}
	subnet, err := m.subnet(spec.Subnet)
	if err != nil {
		return engine.NetworkInfo{}, err
	}
	spec.Subnet = subnet.String()
	id := newID()
	info := engine.NetworkInfo{NetworkSpec: spec, ID: id, Driver: "bridge", Created: time.Now().UTC(),
		Gateway: nthIP(subnet, 1).String(), Bridge: "hb-" + id[:12]}
	n := m.userNet(info)
	if err := m.up(ctx, n); err != nil {
		_ = n.br.Destroy(ctx)
		return engine.NetworkInfo{}, fmt.Errorf("creating network %s: %w", spec.Name, err)
	}
	m.nets[id] = n
	m.st.Networks = append(m.st.Networks, info)
	if err := m.save(); err != nil {
		return engine.NetworkInfo{}, err
	}
	m.log().Info("created network", "network", spec.Name, "id", id[:12], "subnet", spec.Subnet)
	return m.infoOf(n), nil
}

// netName is a network name: as a container name.
var netName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func validName(s string) bool { return netName.MatchString(s) }

// subnet checks a requested subnet, or picks the first free /24 of the
// pool: no overlap with another network, the default bridge or a route of
// the host's.
func (m *Manager) subnet(want string) (*net.IPNet, error) {
	taken := m.takenSubnets()
	if want != "" {
		ip, n, err := net.ParseCIDR(want)
		if err != nil || ip.To4() == nil {
			return nil, fmt.Errorf("%w: subnet %q: want an IPv4 CIDR (10.1.2.0/24)", engine.ErrInvalid, want)
		}
		if ones, _ := n.Mask.Size(); ones < 8 || ones > 29 {
			return nil, fmt.Errorf("%w: subnet %s: want a prefix between /8 and /29", engine.ErrInvalid, want)
		}
		for _, t := range taken {
			if overlaps(n, t) {
				return nil, fmt.Errorf("%w: subnet %s: Pool overlaps with other one on this address space (%s)", engine.ErrForbidden, want, t)
			}
		}
		return n, nil
	}
	pool := m.Pool
	if pool == "" {
		pool = DefaultPool
	}
	_, p, err := net.ParseCIDR(pool)
	if err != nil {
		return nil, fmt.Errorf("network pool %q: %w", pool, err)
	}
	ones, bits := p.Mask.Size()
	base := binary.BigEndian.Uint32(p.IP.To4())
	for i := 0; i < 1<<(24-ones) && ones <= 24; i++ {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, base+uint32(i)<<8)
		cand := &net.IPNet{IP: ip, Mask: net.CIDRMask(24, bits)}
		if !slices.ContainsFunc(taken, func(t *net.IPNet) bool { return overlaps(cand, t) }) {
			return cand, nil
		}
	}
	return nil, fmt.Errorf("%w: no free /24 left in the network pool %s", engine.ErrForbidden, pool)
}

func (m *Manager) takenSubnets() []*net.IPNet {
	var out []*net.IPNet
	add := func(s string) {
		if _, n, err := net.ParseCIDR(s); err == nil {
			out = append(out, n)
		}
	}
	if m.Default != nil {
		add(m.Default.Subnet)
	}
	for _, n := range m.nets {
		add(n.info.Subnet)
	}
	routes, _ := netlink.RouteList(nil, unix.AF_INET)
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP.To4() != nil && !r.Dst.IP.IsLoopback() {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 {
				out = append(out, r.Dst)
			}
		}
	}
	return out
}

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// find is a network by exact name, exact ID or unique ID prefix; nil
// *userNet for a predefined one.
func (m *Manager) find(ref string) (engine.NetworkInfo, error) {
	all := m.all()
	for _, n := range all {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	var found []engine.NetworkInfo
	for _, n := range all {
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return engine.NetworkInfo{}, fmt.Errorf("%w: network %s not found", engine.ErrNoNetwork, ref)
	}
	return engine.NetworkInfo{}, fmt.Errorf("%w: network %s is ambiguous (%d matches found on name)", engine.ErrConflict, ref, len(found))
}

// all is every network: bridge (when there is a default bridge), host,
// none, then the user-defined ones by name.
func (m *Manager) all() []engine.NetworkInfo {
	var out []engine.NetworkInfo
	pre := func(name, driver string) engine.NetworkInfo {
		return engine.NetworkInfo{NetworkSpec: engine.NetworkSpec{Name: name}, ID: m.st.Predefined[name], Driver: driver, Predefined: true,
			Endpoints: map[string]engine.EndpointInfo{}}
	}
	if m.Default != nil {
		b := pre(engine.NetworkBridge, "bridge")
		b.Subnet, b.Bridge = m.Default.Subnet, m.Default.Name
		if gw, ones, err := m.Default.Gateway(); err == nil {
			b.Gateway = gw.String()
			for id, eps := range m.st.Endpoints {
				if ep := eps[engine.NetworkBridge]; ep != nil {
					b.Endpoints[id] = engine.EndpointInfo{Name: ep.Name, IP: ep.IP, PrefixLen: ones}
				}
			}
		}
		out = append(out, b)
	}
	out = append(out, pre(runtime.NetworkHost, "host"), pre(runtime.NetworkNone, "null"))
	var user []engine.NetworkInfo
	for _, n := range m.nets {
		user = append(user, m.infoOf(n))
	}
	slices.SortFunc(user, func(a, b engine.NetworkInfo) int { return strings.Compare(a.Name, b.Name) })
	return append(out, user...)
}

func (m *Manager) infoOf(n *userNet) engine.NetworkInfo {
	info := n.info
	info.Endpoints = map[string]engine.EndpointInfo{}
	_, ones, _ := n.br.Gateway()
	for id, eps := range m.st.Endpoints {
		if ep := eps[info.Name]; ep != nil {
			info.Endpoints[id] = engine.EndpointInfo{Name: ep.Name, IP: ep.IP, PrefixLen: ones, Aliases: ep.Aliases}
		}
	}
	return info
}

// Networks implements engine.UserNetworks.
func (m *Manager) Networks() []engine.NetworkInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.all()
}

// Network implements engine.UserNetworks.
func (m *Manager) Network(ref string) (engine.NetworkInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.find(ref)
}

// RemoveNetwork implements engine.UserNetworks: a network with running
// containers, or a predefined one, stays.
func (m *Manager) RemoveNetwork(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	info, err := m.find(ref)
	if err != nil {
		return err
	}
	if info.Predefined {
		return fmt.Errorf("%w: %s is a pre-defined network and cannot be removed", engine.ErrForbidden, info.Name)
	}
	n := m.nets[info.ID]
	if eps := m.infoOf(n).Endpoints; len(eps) > 0 {
		return fmt.Errorf("%w: error while removing network: network %s id %s has active endpoints", engine.ErrForbidden, info.Name, info.ID)
	}
	if n.dns != nil {
		_ = n.dns.Close()
	}
	var errs []error
	errs = append(errs, n.br.Destroy(ctx))
	r := isolationRule(n.br.Name)
	for iptables(ctx, m.Runner, append([]string{"-t", r.Table, "-D", r.Chain}, r.Args...)...) == nil {
	}
	delete(m.nets, info.ID)
	m.st.Networks = slices.DeleteFunc(m.st.Networks, func(x engine.NetworkInfo) bool { return x.ID == info.ID })
	errs = append(errs, os.RemoveAll(filepath.Join(m.StateDir, info.ID)), m.save())
	m.log().Info("removed network", "network", info.Name)
	return errors.Join(errs...)
}

func (m *Manager) netnsPath(id string) string { return filepath.Join(m.NetnsDir, id) }

// bridgeOf is the bridge of network name: the default's for bridge.
func (m *Manager) bridgeOf(name string) (*Bridge, error) {
	if name == engine.NetworkBridge || name == "" {
		if m.Default == nil {
			return nil, fmt.Errorf("%w: network bridge not found: this host has no default bridge", engine.ErrNoNetwork)
		}
		return m.Default, nil
	}
	info, err := m.find(name)
	if err != nil {
		return nil, err
	}
	n := m.nets[info.ID]
	if n == nil {
		return nil, fmt.Errorf("%w: network %s: containers join it with --network host or none, not by connecting", engine.ErrForbidden, name)
	}
	return n.br, nil
}

// Setup implements engine.Networker: a namespace on the primary network
// (eth0, the default route), then on each other network (eth1, ...).
func (m *Manager) Setup(ctx context.Context, a engine.Attachment) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.init(ctx); err != nil {
		return "", "", err
	}
	_ = m.teardown(ctx, a.ID) // a leftover from a crash
	nsPath := m.netnsPath(a.ID)
	if err := newNetns(nsPath); err != nil {
		return "", "", err
	}
	primary := a.Network
	if primary == "" {
		primary = engine.NetworkBridge
	}
	ip, err := m.join(ctx, a, primary, "eth0", true, a.Ports)
	if err == nil {
		i := 1
		for _, n := range slices.Sorted(maps.Keys(a.Networks)) {
			if n == primary {
				continue
			}
			if _, err = m.join(ctx, a, n, fmt.Sprintf("eth%d", i), false, nil); err != nil {
				break
			}
			i++
		}
	}
	if err != nil {
		_ = m.teardown(ctx, a.ID)
		return "", "", err
	}
	return nsPath, ip, nil
}

// join attaches a's namespace to network as ifname and records it.
func (m *Manager) join(ctx context.Context, a engine.Attachment, network, ifname string, route bool, ports []engine.Port) (string, error) {
	br, err := m.bridgeOf(network)
	if err != nil {
		return "", err
	}
	ip, err := br.Join(ctx, a.ID, m.netnsPath(a.ID), ifname, route, ports)
	if err != nil {
		return "", fmt.Errorf("joining network %s: %w", network, err)
	}
	if m.st.Endpoints[a.ID] == nil {
		m.st.Endpoints[a.ID] = map[string]*endpoint{}
	}
	ep := &endpoint{Name: a.Name, IP: ip.String(), Iface: ifname}
	if network != engine.NetworkBridge {
		ep.Aliases = a.Networks[network].Aliases
	}
	m.st.Endpoints[a.ID][network] = ep
	return ip.String(), m.save()
}

// Teardown implements engine.Networker.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.teardown(ctx, id)
}

func (m *Manager) teardown(ctx context.Context, id string) error {
	var errs []error
	for network := range m.st.Endpoints[id] {
		if br, err := m.bridgeOf(network); err == nil {
			errs = append(errs, br.Leave(ctx, id))
		}
	}
	if m.Default != nil {
		errs = append(errs, m.Default.Leave(ctx, id)) // a lease from before the manager
	}
	if len(m.st.Endpoints[id]) > 0 {
		delete(m.st.Endpoints, id)
		errs = append(errs, m.save())
	}
	errs = append(errs, removeNetns(m.netnsPath(id)))
	return errors.Join(errs...)
}

// Connect implements engine.UserNetworks: one more interface in the
// running container's namespace, the next free ethN.
func (m *Manager) Connect(ctx context.Context, a engine.Attachment, network string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := os.Stat(m.netnsPath(a.ID)); err != nil {
		return fmt.Errorf("container %s has no network namespace: %w", a.Name, err)
	}
	used := map[string]bool{}
	for _, ep := range m.st.Endpoints[a.ID] {
		used[ep.Iface] = true
	}
	i := 0
	for used[fmt.Sprintf("eth%d", i)] {
		i++
	}
	_, err := m.join(ctx, a, network, fmt.Sprintf("eth%d", i), false, nil)
	return err
}

// Disconnect implements engine.UserNetworks.
func (m *Manager) Disconnect(ctx context.Context, id, network string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Endpoints[id][network] == nil {
		return nil
	}
	br, err := m.bridgeOf(network)
	if err != nil {
		return err
	}
	err = br.Leave(ctx, id)
	delete(m.st.Endpoints[id], network)
	return errors.Join(err, m.save())
}

// Endpoints is container id's endpoints, by network name.
func (m *Manager) Endpoints(id string) map[string]engine.EndpointInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]engine.EndpointInfo{}
	for network, ep := range m.st.Endpoints[id] {
		br, err := m.bridgeOf(network)
		if err != nil {
			continue
		}
		_, ones, _ := br.Gateway()
		out[network] = engine.EndpointInfo{Name: ep.Name, IP: ep.IP, PrefixLen: ones, Aliases: ep.Aliases}
	}
	return out
}

// DNS implements engine.Networker: on a user-defined network the
// container asks the network's resolver (its gateway), with the host's
// search domains and options; on the default bridge the host's servers.
func (m *Manager) DNS(network string) []byte {
	if network == engine.NetworkBridge || network == "" {
		return hostDNS(m.resolvRoot())
	}
	m.mu.Lock()
	info, err := m.find(network)
	m.mu.Unlock()
	if err != nil || info.Gateway == "" {
		return hostDNS(m.resolvRoot())
	}
	out := "nameserver " + info.Gateway + "\n"
	for _, line := range strings.Split(string(hostDNS(m.resolvRoot())), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			out += line + "\n"
		}
	}
	return []byte(out)
}
