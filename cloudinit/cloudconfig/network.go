package cloudconfig

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NetworkConfig is a network-config document (cloud-init's "Networking
// config Version 1" or "Version 2", the netplan subset) reduced to the
// links to configure, physical and virtual. Package networkd renders it.
type NetworkConfig struct {
	Version int
	// Interfaces names the configured interfaces (v2 ids, v1 names), sorted.
	Interfaces []string
	// Disabled is `config: disabled`: leave the network to the image.
	Disabled bool
	Links    []NetLink
}

// NetLink is one interface's configuration, whichever version it came from.
type NetLink struct {
	// ID is the v2 id or the v1 name; it names the rendered files.
	ID string
	// Key is where it was in the document (ethernets.eth0, config[0]).
	Key     string
	Match   NetMatch
	SetName string // rename the matched interface (a .link file)
	// WakeOnLan enables wake on magic packet (a .link file).
	WakeOnLan bool
	MTU       int
	// Optional links do not hold up network-online.target.
	Optional     bool
	DHCP4, DHCP6 bool
	AcceptRA     *bool
	// LinkLocal is networkd's LinkLocalAddressing= (empty: its default).
	LinkLocal string
	// DHCPIdentifier "mac" makes the DHCPv4 client id the MAC address.
	DHCPIdentifier string
	Addresses      []string // CIDR
	Gateways       []string
	Routes         []NetRoute
	DNS, Domains   []string
	// DHCP4Overrides and DHCP6Overrides are networkd [DHCPv4]/[DHCPv6]
	// keys and values, from netplan's dhcp4-overrides/dhcp6-overrides.
	DHCP4Overrides, DHCP6Overrides map[string]string

	// Virtual devices (bonds, bridges, vlans), rendered as .netdev files.
	Kind     string              // "" (physical), bond, bridge or vlan
	MAC      string              // the MAC address to give a virtual device
	Members  []string            // bond and bridge member ids
	Params   []string            // the .netdev's [Bond]/[Bridge]/[VLAN] Key=Value lines
	Primary  string              // bond: the primary member's id
	Ports    map[string][]string // bridge: member id -> its [Bridge] lines
	VLANLink string              // vlan: the parent's id

	// Set on members and parents from the devices above.
	Master, MasterKind string   // the bond or bridge this link is in
	IsPrimary          bool     // the bond's primary member
	PortSettings       []string // [Bridge] lines for this bridge port
	VLANs              []string // VLAN devices on this link
}

// NetMatch selects interfaces: all the fields given must match.
type NetMatch struct {
	Name   string // a name or glob
	MAC    string // lower-case, colon separated
	Driver string // a driver name or glob
}

// NetRoute is a static route; To is a prefix (default is spelled out).
type NetRoute struct {
	To, Via string
	Metric  int // 0: networkd's default
	OnLink  bool
}

// ParseNetworkConfig decodes a network-config document (optionally wrapped
// in `network:`), version 1 or 2 as cloud-init documents them. Every problem
// is returned at once, one error per line, each naming its key.
// Ethernets, bonds, bridges and VLANs are read (v1 physical, bond, bridge,
// vlan, nameserver and route); wifis, tunnels and the like are refused
// by name.
func ParseNetworkConfig(data []byte) (NetworkConfig, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return NetworkConfig{}, fmt.Errorf("network-config: malformed YAML: %s", yamlMsg(err))
	}
	return NetworkConfigFromMap(raw)
}

// NetworkConfigFromMap is ParseNetworkConfig for a document already
// decoded, such as a `network:` key inside other YAML.
func NetworkConfigFromMap(raw map[string]any) (NetworkConfig, error) {
	if inner, ok := raw["network"].(map[string]any); ok && len(raw) == 1 {
		raw = inner // the file may wrap everything in network:
	}
	var nc NetworkConfig
	if raw["config"] == "disabled" {
		nc.Disabled = true
		return nc, nil
	}
	w := &walker{}
	switch v := raw["version"].(type) {
	case int:
		nc.Version = v
	default:
		return nc, fmt.Errorf("network-config: version: want 1 or 2")
	}
	switch nc.Version {
	case 1:
		parseV1(w, raw, &nc)
	case 2:
		parseV2(w, raw, &nc)
	default:
		return nc, fmt.Errorf("network-config: version: got %d, want 1 or 2", nc.Version)
	}
	seen := map[string]string{}
	for _, l := range nc.Links {
		nc.Interfaces = append(nc.Interfaces, l.ID)
		if prev, dup := seen[l.ID]; dup {
			w.add(l.Key, "name %q is also used by %s", l.ID, prev)
		}
		seen[l.ID] = l.Key
	}
	sort.Strings(nc.Interfaces)
	if len(w.probs) > 0 {
		errs := make([]error, len(w.probs))
		for i, p := range w.probs {
			errs[i] = fmt.Errorf("network-config: %w", p)
		}
		return nc, errors.Join(errs...)
	}
	return nc, nil
}

// walker collects problems while reading loosely typed YAML.
type walker struct{ probs Problems }

func (w *walker) add(path, format string, args ...any) { w.probs.add(path, format, args...) }

// keys reports the keys of m that are not in known.
func (w *walker) keys(path string, m map[string]any, known ...string) {
	var extra []string
	for k := range m {
		if !slices.Contains(known, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		w.add(join(path, k), "unknown key (known: %s)", strings.Join(known, ", "))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w *walker) mapping(path string, v any) map[string]any {
	switch v := v.(type) {
	case nil:
		return nil
	case map[string]any:
		return v
	}
	w.add(path, "want a mapping")
	return nil
}

func (w *walker) list(path string, v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	w.add(path, "want a list")
	return nil
}

func (w *walker) str(path string, v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case int, float64:
		return fmt.Sprint(v)
	}
	w.add(path, "want a string")
	return ""
}

// strs takes a list of strings or, as cloud-init does for v1 DNS, one
// string of space-separated words.
func (w *walker) strs(path string, v any) []string {
	if s, ok := v.(string); ok {
		return strings.Fields(s)
	}
	var out []string
	for i, e := range w.list(path, v) {
		if s := w.str(fmt.Sprintf("%s[%d]", path, i), e); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (w *walker) boolean(path string, v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		switch strings.ToLower(v) {
		case "true", "yes", "on", "1":
			return true
		case "false", "no", "off", "0":
			return false
		}
	}
	w.add(path, "want true or false")
	return false
}

func (w *walker) integer(path string, v any) int {
	switch v := v.(type) {
	case nil:
		return 0
	case int:
		return v
	case string:
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	w.add(path, "want a number")
	return 0
}

func (w *walker) mtu(path string, v any) int {
	n := w.integer(path, v)
	if v != nil && (n < 68 || n > 65535) {
		w.add(path, "%d: want 68..65535", n)
		return 0
	}
	return n
}

func (w *walker) mac(path string, v any) string {
	s := w.str(path, v)
	if s == "" {
		return ""
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		w.add(path, "%q: want a MAC address like 52:54:00:12:34:56", s)
		return ""
	}
	return hw.String()
}

func (w *walker) ip(path string, v any) string {
	s := w.str(path, v)
	if s == "" {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		w.add(path, "%q: want an IP address", s)
		return ""
	}
	return a.String()
}

func (w *walker) ips(path string, v any) []string {
	var out []string
	for i, s := range w.strs(path, v) {
		if a := w.ip(fmt.Sprintf("%s[%d]", path, i), s); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// ifname checks a kernel interface name: 1-15 bytes, no '/', ':' or space.
var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,15}$`)

// idRE is what may name the rendered files (v2 ids are free-form labels).
var idRE = regexp.MustCompile(`^[A-Za-z0-9_.@:-]{1,64}$`)

func (w *walker) ifname(path string, v any) string {
	s := w.str(path, v)
	if s != "" && !ifnameRE.MatchString(s) {
		w.add(path, "%q: want an interface name (1-15 of A-Z a-z 0-9 _ . @ -)", s)
		return ""
	}
	return s
}

// prefix turns an address and an optional netmask or prefix length into
// CIDR form; an address already in CIDR form is kept.
func (w *walker) prefix(path, addr string, mask any) string {
	if addr == "" {
		return ""
	}
	if strings.Contains(addr, "/") {
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			w.add(path, "%q: not an IP address with a prefix length (want 10.0.0.5/24)", addr)
			return ""
		}
		return p.String()
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		w.add(path, "%q: want an IP address", addr)
		return ""
	}
	bits := -1
	switch m := mask.(type) {
	case nil:
	case int:
		bits = m
	case string:
		if n, err := strconv.Atoi(m); err == nil {
			bits = n
		} else if ma, err := netip.ParseAddr(m); err == nil && ma.Is4() {
			b4 := ma.As4()
			ones, size := net.IPMask(b4[:]).Size()
			if size == 0 {
				w.add(path, "netmask %q: want a contiguous mask like 255.255.255.0", m)
				return ""
			}
			bits = ones
		} else {
			w.add(path, "netmask %q: want a mask like 255.255.255.0 or a prefix length", m)
			return ""
		}
	}
	if bits < 0 {
		w.add(path, "%q: want a prefix length (%s/24) or a netmask", addr, addr)
		return ""
	}
	if bits > a.BitLen() {
		w.add(path, "prefix length %d: want 0..%d", bits, a.BitLen())
		return ""
	}
	return netip.PrefixFrom(a, bits).String()
}

// route checks a destination: a prefix, or "default" for the address
// family of via.
func (w *walker) dest(path, to, via string) string {
	if to == "default" || to == "" {
		if strings.Contains(via, ":") {
			return "::/0"
		}
		return "0.0.0.0/0"
	}
	return w.prefix(path, to, nil)
}

// v2Common are the keys every v2 device section takes (netplan's
// "common properties for all device types").
var v2Common = []string{"dhcp4", "dhcp6", "addresses", "gateway4", "gateway6", "routes", "nameservers",
	"mtu", "accept-ra", "link-local", "dhcp-identifier", "dhcp4-overrides", "dhcp6-overrides", "optional", "critical"}

// parseV2 reads the netplan-style document: ethernets, and bonds, bridges
// and vlans (rendered as .netdev files) over them.
func parseV2(w *walker, raw map[string]any, nc *NetworkConfig) {
	w.keys("", raw, "version", "renderer", "ethernets", "bonds", "bridges", "vlans")
	byID := map[string]int{}
	for _, sec := range []string{"ethernets", "bonds", "bridges", "vlans"} {
		devs := w.mapping(sec, raw[sec])
		ids := slices.Sorted(maps.Keys(devs))
		for _, id := range ids {
			path := sec + "." + id
			e := w.mapping(path, devs[id])
			l := NetLink{ID: id, Key: path}
			switch sec {
			case "ethernets":
				if !idRE.MatchString(id) {
					w.add(path, "want an id of A-Z a-z 0-9 _ . @ : -")
					continue
				}
				w.keys(path, e, append([]string{"match", "set-name", "wakeonlan"}, v2Common...)...)
				v2Ethernet(w, path, e, &l)
			default:
				// A virtual device's id is its interface name.
				if !ifnameRE.MatchString(id) {
					w.add(path, "want an interface name (1-15 of A-Z a-z 0-9 _ . @ -)")
					continue
				}
				v2Virtual(w, sec, path, e, &l)
			}
			v2Addressing(w, path, e, &l)
			if _, dup := byID[id]; dup {
				w.add(path, "id %q is also used in another section", id)
				continue
			}
			byID[id] = len(nc.Links)
			nc.Links = append(nc.Links, l)
		}
	}
	linkMembers(w, nc, byID)
}

// v2Ethernet reads what only ethernets have: match, set-name, wakeonlan.
func v2Ethernet(w *walker, path string, e map[string]any, l *NetLink) {
	id := l.ID
	if m := w.mapping(path+".match", e["match"]); m != nil {
		w.keys(path+".match", m, "name", "macaddress", "driver")
		before := len(w.probs)
		l.Match = NetMatch{
			Name:   w.str(path+".match.name", m["name"]),
			MAC:    w.mac(path+".match.macaddress", m["macaddress"]),
			Driver: w.str(path+".match.driver", m["driver"]),
		}
		if l.Match == (NetMatch{}) && len(w.probs) == before {
			w.add(path+".match", "want name, macaddress or driver")
		}
	} else {
		l.Match.Name = id // without match, the id is the interface name
	}
	l.SetName = w.ifname(path+".set-name", e["set-name"])
	if l.SetName != "" && e["match"] == nil {
		w.add(path+".set-name", "needs match (netplan renames only matched interfaces)")
	}
	l.WakeOnLan = w.boolean(path+".wakeonlan", e["wakeonlan"])
	if l.WakeOnLan && e["match"] == nil {
		w.add(path+".wakeonlan", "needs match (a .link file matches on the original name, MAC or driver)")
	}
}

// v2Addressing reads the keys common to all device types.
func v2Addressing(w *walker, path string, e map[string]any, l *NetLink) {
	l.DHCP4 = w.boolean(path+".dhcp4", e["dhcp4"])
	l.DHCP6 = w.boolean(path+".dhcp6", e["dhcp6"])
	l.MTU = w.mtu(path+".mtu", e["mtu"])
	l.Optional = w.boolean(path+".optional", e["optional"])
	w.boolean(path+".critical", e["critical"]) // networkd keeps addresses on restart anyway
	if v, ok := e["accept-ra"]; ok {
		b := w.boolean(path+".accept-ra", v)
		l.AcceptRA = &b
	}
	if v, ok := e["link-local"]; ok {
		ll := w.strs(path+".link-local", v)
		has4, has6 := slices.Contains(ll, "ipv4"), slices.Contains(ll, "ipv6")
		l.LinkLocal = map[[2]bool]string{{true, true}: "yes", {true, false}: "ipv4", {false, true}: "ipv6", {false, false}: "no"}[[2]bool{has4, has6}]
		for i, s := range ll {
			if s != "ipv4" && s != "ipv6" {
				w.add(fmt.Sprintf("%s.link-local[%d]", path, i), "%q: want ipv4 or ipv6", s)
			}
		}
	}
	if v := w.str(path+".dhcp-identifier", e["dhcp-identifier"]); v != "" {
		if v != "mac" && v != "duid" {
			w.add(path+".dhcp-identifier", "%q: want mac or duid", v)
		}
		l.DHCPIdentifier = v
	}
	for i, a := range w.list(path+".addresses", e["addresses"]) {
		p := fmt.Sprintf("%s.addresses[%d]", path, i)
		s, ok := a.(string)
		if !ok {
			w.add(p, "want an address with a prefix length (10.0.0.5/24)")
			continue
		}
		if !strings.Contains(s, "/") {
			w.add(p, "%q: want an address with a prefix length (%s/24)", s, s)
			continue
		}
		if c := w.prefix(p, s, nil); c != "" {
			l.Addresses = append(l.Addresses, c)
		}
	}
	for _, g := range []string{"gateway4", "gateway6"} {
		if a := w.ip(path+"."+g, e[g]); a != "" {
			if (g == "gateway4") != netip.MustParseAddr(a).Is4() {
				w.add(path+"."+g, "%q: wrong address family", a)
				continue
			}
			l.Gateways = append(l.Gateways, a)
		}
	}
	for i, r := range w.list(path+".routes", e["routes"]) {
		p := fmt.Sprintf("%s.routes[%d]", path, i)
		rm := w.mapping(p, r)
		w.keys(p, rm, "to", "via", "metric", "on-link")
		via := w.ip(p+".via", rm["via"])
		to := w.str(p+".to", rm["to"])
		if to == "" {
			w.add(p+".to", "required")
			continue
		}
		l.Routes = append(l.Routes, NetRoute{
			To: w.dest(p+".to", to, via), Via: via,
			Metric: w.integer(p+".metric", rm["metric"]), OnLink: w.boolean(p+".on-link", rm["on-link"]),
		})
	}
	if ns := w.mapping(path+".nameservers", e["nameservers"]); ns != nil {
		w.keys(path+".nameservers", ns, "addresses", "search")
		l.DNS = w.ips(path+".nameservers.addresses", ns["addresses"])
		l.Domains = w.strs(path+".nameservers.search", ns["search"])
	}
	l.DHCP4Overrides = dhcpOverrides(w, path+".dhcp4-overrides", e["dhcp4-overrides"], true)
	l.DHCP6Overrides = dhcpOverrides(w, path+".dhcp6-overrides", e["dhcp6-overrides"], false)
}

// dhcpOverrides maps netplan's dhcp overrides to networkd keys, as
// cloud-init's networkd renderer does.
func dhcpOverrides(w *walker, path string, v any, v4 bool) map[string]string {
	m := w.mapping(path, v)
	if m == nil {
		return nil
	}
	keys := map[string]string{"use-dns": "UseDNS", "use-domains": "UseDomains", "use-hostname": "UseHostname", "use-ntp": "UseNTP"}
	if v4 {
		for k, nd := range map[string]string{"send-hostname": "SendHostname", "hostname": "Hostname", "route-metric": "RouteMetric", "use-mtu": "UseMTU", "use-routes": "UseRoutes"} {
			keys[k] = nd
		}
	}
	known := slices.Sorted(maps.Keys(keys))
	w.keys(path, m, known...)
	out := map[string]string{}
	for k, val := range m {
		nd, ok := keys[k]
		if !ok {
			continue
		}
		switch k {
		case "hostname":
			out[nd] = w.str(join(path, k), val)
		case "route-metric":
			out[nd] = strconv.Itoa(w.integer(join(path, k), val))
		case "use-domains":
			if s, ok := val.(string); ok && s == "route" {
				out[nd] = "route"
				continue
			}
			out[nd] = yesNo(w.boolean(join(path, k), val))
		default:
			out[nd] = yesNo(w.boolean(join(path, k), val))
		}
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// parseV1 reads cloud-init's v1 list: physical, nameserver and route.
func parseV1(w *walker, raw map[string]any, nc *NetworkConfig) {
	w.keys("", raw, "version", "config")
	var globalDNS, globalDomains []string
	var globalRoutes []NetRoute
	byName := map[string]int{} // name -> index in nc.Links
	type ifaceDNS struct {
		name, path   string
		dns, domains []string
	}
	var perIface []ifaceDNS
	for i, c := range w.list("config", raw["config"]) {
		path := fmt.Sprintf("config[%d]", i)
		m := w.mapping(path, c)
		if m == nil {
			continue
		}
		typ := w.str(path+".type", m["type"])
		switch typ {
		case "physical", "bond", "bridge", "vlan":
			var l NetLink
			if typ == "physical" {
				l = parseV1Physical(w, path, m)
			} else {
				l = parseV1Virtual(w, typ, path, m)
			}
			if l.ID != "" {
				if _, dup := byName[l.ID]; dup {
					w.add(path+".name", "%q is also used by another entry", l.ID)
					continue
				}
				byName[l.ID] = len(nc.Links)
				nc.Links = append(nc.Links, l)
			}
		case "nameserver":
			w.keys(path, m, "type", "address", "search", "interface")
			dns := w.ips(path+".address", m["address"])
			domains := w.strs(path+".search", m["search"])
			if iface := w.str(path+".interface", m["interface"]); iface != "" {
				perIface = append(perIface, ifaceDNS{iface, path + ".interface", dns, domains})
				continue
			}
			globalDNS = append(globalDNS, dns...)
			globalDomains = append(globalDomains, domains...)
		case "route":
			w.keys(path, m, "type", "destination", "network", "netmask", "prefix", "gateway", "metric")
			if r, ok := v1Route(w, path, m); ok {
				globalRoutes = append(globalRoutes, r)
			}
		case "loopback":
			// lo is the kernel's; nothing to render.
		case "infiniband":
			w.add(path+".type", "%q not supported: Bulkhead renders Ethernet, bonds, bridges and VLANs", typ)
		case "":
			w.add(path+".type", "required")
		default:
			w.add(path+".type", "%q: want physical, bond, bridge, vlan, nameserver or route", typ)
		}
	}
	for _, d := range perIface {
		i, ok := byName[d.name]
		if !ok {
			w.add(d.path, "no interface %q in this network-config", d.name)
			continue
		}
		nc.Links[i].DNS = appendNew(nc.Links[i].DNS, d.dns...)
		nc.Links[i].Domains = appendNew(nc.Links[i].Domains, d.domains...)
	}
	linkMembers(w, nc, byName)
	// Global name servers and routes apply to every interface, as in
	// cloud-init's networkd renderer; but not to bond and bridge members,
	// which have no address to reach a gateway from.
	for i := range nc.Links {
		if nc.Links[i].Master != "" {
			continue
		}
		nc.Links[i].DNS = appendNew(nc.Links[i].DNS, globalDNS...)
		nc.Links[i].Domains = appendNew(nc.Links[i].Domains, globalDomains...)
		nc.Links[i].Routes = append(nc.Links[i].Routes, globalRoutes...)
	}
}

func appendNew(list []string, add ...string) []string {
	for _, s := range add {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

func parseV1Physical(w *walker, path string, m map[string]any) NetLink {
	w.keys(path, m, "type", "name", "mac_address", "mtu", "subnets", "accept-ra")
	name := w.ifname(path+".name", m["name"])
	if name == "" {
		if m["name"] == nil {
			w.add(path+".name", "required")
		}
		return NetLink{}
	}
	l := NetLink{ID: name, Key: path, MTU: w.mtu(path+".mtu", m["mtu"])}
	l.Match.MAC = w.mac(path+".mac_address", m["mac_address"])
	if l.Match.MAC != "" {
		l.SetName = name // v1 names the interface with that MAC
	} else {
		l.Match.Name = name
	}
	v1Subnets(w, path, m, &l)
	return l
}

// v1Subnets reads the subnets (and accept-ra) of any v1 interface type.
func v1Subnets(w *walker, path string, m map[string]any, l *NetLink) {
	if v, ok := m["accept-ra"]; ok {
		b := w.boolean(path+".accept-ra", v)
		l.AcceptRA = &b
	}
	for i, s := range w.list(path+".subnets", m["subnets"]) {
		p := fmt.Sprintf("%s.subnets[%d]", path, i)
		sm := w.mapping(p, s)
		if sm == nil {
			continue
		}
		w.keys(p, sm, "type", "control", "address", "netmask", "prefix", "gateway", "dns_nameservers", "dns_search", "routes", "metric")
		switch t := w.str(p+".type", sm["type"]); t {
		case "dhcp", "dhcp4":
			l.DHCP4 = true
		case "dhcp6", "ipv6_dhcpv6-stateful":
			l.DHCP6 = true
		case "ipv6_slaac", "ipv6_dhcpv6-stateless":
			ra := true
			l.AcceptRA = &ra
		case "static", "static6":
			addr := w.str(p+".address", sm["address"])
			if addr == "" {
				w.add(p+".address", "required for type %s", t)
				continue
			}
			mask := sm["netmask"]
			if mask == nil {
				mask = sm["prefix"]
			}
			if c := w.prefix(p+".address", addr, mask); c != "" {
				l.Addresses = append(l.Addresses, c)
			}
		case "manual":
		case "":
			w.add(p+".type", "required")
		default:
			w.add(p+".type", "%q: want dhcp4, dhcp6, static, static6, manual, ipv6_slaac, ipv6_dhcpv6-stateless or ipv6_dhcpv6-stateful", t)
		}
		if g := w.ip(p+".gateway", sm["gateway"]); g != "" {
			l.Gateways = append(l.Gateways, g)
		}
		l.DNS = appendNew(l.DNS, w.ips(p+".dns_nameservers", sm["dns_nameservers"])...)
		l.Domains = appendNew(l.Domains, w.strs(p+".dns_search", sm["dns_search"])...)
		for j, r := range w.list(p+".routes", sm["routes"]) {
			rp := fmt.Sprintf("%s.routes[%d]", p, j)
			rm := w.mapping(rp, r)
			w.keys(rp, rm, "destination", "network", "netmask", "prefix", "gateway", "metric")
			if r, ok := v1Route(w, rp, rm); ok {
				l.Routes = append(l.Routes, r)
			}
		}
	}
}

// v1Route reads a v1 route: network (or destination) with netmask or
// prefix, gateway, metric.
func v1Route(w *walker, path string, m map[string]any) (NetRoute, bool) {
	netw := w.str(path+".network", m["network"])
	key := ".network"
	if netw == "" {
		netw = w.str(path+".destination", m["destination"])
		key = ".destination"
	}
	gw := w.ip(path+".gateway", m["gateway"])
	if netw == "" {
		w.add(path+".network", "required")
		return NetRoute{}, false
	}
	mask := m["netmask"]
	if mask == nil {
		mask = m["prefix"]
	}
	var to string
	if netw == "default" || (netw == "0.0.0.0" && mask == nil) || (netw == "::" && mask == nil) {
		to = w.dest(path+key, "default", gw)
	} else {
		to = w.prefix(path+key, netw, mask)
	}
	if to == "" {
		return NetRoute{}, false
	}
	return NetRoute{To: to, Via: gw, Metric: w.integer(path+".metric", m["metric"])}, true
}
