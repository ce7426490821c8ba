package cloudconfig

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Virtual devices: netplan's bonds, bridges and vlans (and cloud-init v1's
// bond, bridge and vlan types, translated to them), rendered by package
// networkd as .netdev files. The parameter tables follow netplan's
// reference and its networkd backend.

// param is one bond or bridge parameter: its networkd key in the .netdev
// section and how its value is read.
type param struct {
	key  string
	kind string // str, int, bool, msec, sec, list, or "one of: a b c"
}

var bondParams = map[string]param{
	"mode":                    {"Mode", "one of: balance-rr active-backup balance-xor broadcast 802.3ad balance-tlb balance-alb"},
	"lacp-rate":               {"LACPTransmitRate", "one of: slow fast"},
	"mii-monitor-interval":    {"MIIMonitorSec", "msec"},
	"min-links":               {"MinLinks", "int"},
	"transmit-hash-policy":    {"TransmitHashPolicy", "one of: layer2 layer3+4 layer2+3 encap2+3 encap3+4"},
	"ad-select":               {"AdSelect", "one of: stable bandwidth count"},
	"all-slaves-active":       {"AllSlavesActive", "bool"},
	"all-members-active":      {"AllSlavesActive", "bool"},
	"arp-interval":            {"ARPIntervalSec", "msec"},
	"arp-ip-targets":          {"ARPIPTargets", "list"},
	"arp-validate":            {"ARPValidate", "one of: none active backup all"},
	"arp-all-targets":         {"ARPAllTargets", "one of: any all"},
	"up-delay":                {"UpDelaySec", "msec"},
	"down-delay":              {"DownDelaySec", "msec"},
	"fail-over-mac-policy":    {"FailOverMACPolicy", "one of: none active follow"},
	"gratuitous-arp":          {"GratuitousARP", "int"},
	"packets-per-slave":       {"PacketsPerSlave", "int"},
	"packets-per-member":      {"PacketsPerSlave", "int"},
	"primary-reselect-policy": {"PrimaryReselectPolicy", "one of: always better failure"},
	"resend-igmp":             {"ResendIGMP", "int"},
	"learn-packet-interval":   {"LearnPacketIntervalSec", "sec"},
}

var bridgeParams = map[string]param{
	"ageing-time":   {"AgeingTimeSec", "sec"},
	"aging-time":    {"AgeingTimeSec", "sec"},
	"priority":      {"Priority", "int"},
	"forward-delay": {"ForwardDelaySec", "sec"},
	"hello-time":    {"HelloTimeSec", "sec"},
	"max-age":       {"MaxAgeSec", "sec"},
	"stp":           {"STP", "bool"},
}

// timeRE is a netplan time: a number with an optional systemd unit.
var timeRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(us|ms|s|sec|m|min|h)?$`)

// paramValue reads one parameter's value into networkd's spelling.
func (w *walker) paramValue(path string, p param, v any) string {
	switch {
	case p.kind == "int":
		return strconv.Itoa(w.integer(path, v))
	case p.kind == "bool":
		return yesNo(w.boolean(path, v))
	case p.kind == "list":
		return strings.Join(w.ips(path, v), " ")
	case p.kind == "msec" || p.kind == "sec":
		s := w.str(path, v)
		if !timeRE.MatchString(s) {
			w.add(path, "%q: want a time (100, 100ms, 2s)", s)
			return ""
		}
		if strings.IndexFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' }) < 0 {
			// A bare number is milliseconds for bonds, seconds for
			// bridges (netplan's reference).
			s += map[string]string{"msec": "ms", "sec": "s"}[p.kind]
		}
		return s
	case strings.HasPrefix(p.kind, "one of: "):
		s := w.str(path, v)
		choices := strings.Fields(strings.TrimPrefix(p.kind, "one of: "))
		for _, c := range choices {
			if s == c {
				return s
			}
		}
		w.add(path, "%q: want one of %s", s, strings.Join(choices, ", "))
		return ""
	}
	return w.str(path, v)
}

// v2Virtual reads a bonds, bridges or vlans entry (not the addressing,
// which v2Addressing reads as for ethernets).
func v2Virtual(w *walker, sec, path string, e map[string]any, l *NetLink) {
	l.Kind = map[string]string{"bonds": "bond", "bridges": "bridge", "vlans": "vlan"}[sec]
	l.Match.Name = l.ID
	l.MAC = w.mac(path+".macaddress", e["macaddress"])
	switch l.Kind {
	case "vlan":
		w.keys(path, e, append([]string{"id", "link", "macaddress"}, v2Common...)...)
		id := w.integer(path+".id", e["id"])
		if e["id"] == nil {
			w.add(path+".id", "required")
		} else if id < 0 || id > 4094 {
			w.add(path+".id", "%d: want 0..4094", id)
		}
		l.Params = []string{"Id=" + strconv.Itoa(id)}
		l.VLANLink = w.str(path+".link", e["link"])
		if l.VLANLink == "" {
			w.add(path+".link", "required")
		}
	default:
		w.keys(path, e, append([]string{"interfaces", "parameters", "macaddress"}, v2Common...)...)
		l.Members = w.strs(path+".interfaces", e["interfaces"])
		v2Params(w, path+".parameters", w.mapping(path+".parameters", e["parameters"]), l)
	}
}

// v2Params reads a bond's or bridge's parameters; primary, path-cost and
// port-priority are set on the member's .network, not the .netdev.
func v2Params(w *walker, path string, m map[string]any, l *NetLink) {
	table := bondParams
	if l.Kind == "bridge" {
		table = bridgeParams
	}
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		p := join(path, k)
		switch {
		case l.Kind == "bond" && k == "primary":
			l.Primary = w.str(p, m[k])
		case l.Kind == "bridge" && (k == "path-cost" || k == "port-priority"):
			nd := map[string]string{"path-cost": "Cost", "port-priority": "Priority"}[k]
			pm := w.mapping(p, m[k])
			ports := slices.Sorted(maps.Keys(pm))
			for _, port := range ports {
				if l.Ports == nil {
					l.Ports = map[string][]string{}
				}
				l.Ports[port] = append(l.Ports[port], nd+"="+strconv.Itoa(w.integer(join(p, port), pm[port])))
			}
		default:
			pr, ok := table[k]
			if !ok {
				known := slices.Sorted(maps.Keys(table))
				w.add(p, "unknown %s parameter (known: %s)", l.Kind, strings.Join(known, ", "))
				continue
			}
			if v := w.paramValue(p, pr, m[k]); v != "" {
				l.Params = append(l.Params, pr.key+"="+v)
			}
		}
	}
	sort.Strings(l.Params)
}

// linkMembers ties bonds and bridges to their member links and VLANs to
// their parent, checking that every id named exists and that no link
// has two masters.
func linkMembers(w *walker, nc *NetworkConfig, byID map[string]int) {
	for i := range nc.Links {
		l := &nc.Links[i]
		key := map[string]string{"bond": "interfaces", "bridge": "interfaces", "vlan": "link"}[l.Kind]
		if nc.Version == 1 {
			key = map[string]string{"bond": "bond_interfaces", "bridge": "bridge_interfaces", "vlan": "vlan_link"}[l.Kind]
		}
		if l.Kind == "vlan" && l.VLANLink != "" {
			j, ok := byID[l.VLANLink]
			if !ok {
				w.add(l.Key+"."+key, "no interface %q in this network-config", l.VLANLink)
				continue
			}
			nc.Links[j].VLANs = append(nc.Links[j].VLANs, l.ID)
			continue
		}
		for k, m := range l.Members {
			p := fmt.Sprintf("%s.%s[%d]", l.Key, key, k)
			j, ok := byID[m]
			switch {
			case !ok:
				w.add(p, "no interface %q in this network-config", m)
				continue
			case j == i:
				w.add(p, "%q cannot be a member of itself", m)
				continue
			case nc.Links[j].Master != "":
				w.add(p, "%q is already a member of %s", m, nc.Links[j].Master)
				continue
			}
			nc.Links[j].Master, nc.Links[j].MasterKind = l.ID, l.Kind
			nc.Links[j].IsPrimary = l.Primary == m
			nc.Links[j].PortSettings = l.Ports[m]
		}
		if l.Primary != "" && !slices.Contains(l.Members, l.Primary) {
			w.add(l.Key+".parameters.primary", "%q is not one of the interfaces", l.Primary)
		}
		for port := range l.Ports {
			if !slices.Contains(l.Members, port) {
				w.add(l.Key+".parameters", "%q has port settings but is not one of the interfaces", port)
			}
		}
	}
}

// v1Params maps cloud-init v1 (ifupdown-style) bond and bridge params to
// netplan's names; "" means accepted and ignored.
var v1Params = map[string]string{
	"bond-mode":              "mode",
	"bond-miimon":            "mii-monitor-interval",
	"bond-lacp-rate":         "lacp-rate",
	"bond-xmit-hash-policy":  "transmit-hash-policy",
	"bond-xmit_hash_policy":  "transmit-hash-policy",
	"bond-updelay":           "up-delay",
	"bond-downdelay":         "down-delay",
	"bond-min-links":         "min-links",
	"bond-primary":           "primary",
	"bond-ad-select":         "ad-select",
	"bond-arp-interval":      "arp-interval",
	"bond-arp-ip-target":     "arp-ip-targets",
	"bond-arp-validate":      "arp-validate",
	"bond-fail-over-mac":     "fail-over-mac-policy",
	"bond-primary-reselect":  "primary-reselect-policy",
	"bond-num-grat-arp":      "gratuitous-arp",
	"bond-all-slaves-active": "all-slaves-active",
	"bond-lp-interval":       "learn-packet-interval",
	"bond-resend-igmp":       "resend-igmp",
	"bond-packets-per-slave": "packets-per-slave",
	"bridge_stp":             "stp",
	"bridge_fd":              "forward-delay",
	"bridge_ageing":          "ageing-time",
	"bridge_bridgeprio":      "priority",
	"bridge_hello":           "hello-time",
	"bridge_maxage":          "max-age",
	"bridge_pathcost":        "path-cost",
	"bridge_portprio":        "port-priority",
	"bridge_maxwait":         "", // ifupdown timing
	"bridge_waitport":        "", // ifupdown timing
	"bridge_gcint":           "", // ifupdown timing
}

// parseV1Virtual reads a v1 bond, bridge or vlan entry.
func parseV1Virtual(w *walker, typ, path string, m map[string]any) NetLink {
	members := map[string]string{"bond": "bond_interfaces", "bridge": "bridge_interfaces"}[typ]
	known := []string{"type", "name", "mac_address", "mtu", "subnets", "accept-ra"}
	if typ == "vlan" {
		known = append(known, "vlan_link", "vlan_id")
	} else {
		known = append(known, members, "params")
	}
	w.keys(path, m, known...)
	name := w.ifname(path+".name", m["name"])
	if name == "" {
		if m["name"] == nil {
			w.add(path+".name", "required")
		}
		return NetLink{}
	}
	l := NetLink{ID: name, Key: path, Kind: typ, MTU: w.mtu(path+".mtu", m["mtu"])}
	l.Match.Name = name
	mac := w.mac(path+".mac_address", m["mac_address"])
	// Problems found by the v2 readers below name netplan's keys; say
	// them with the v1 names the user wrote.
	rename := map[string]string{path + ".id": path + ".vlan_id", path + ".link": path + ".vlan_link"}
	first := len(w.probs)
	if typ == "vlan" {
		// Reuse the v2 reader: same checks, the v1 key names in messages.
		v2Virtual(w, "vlans", path, map[string]any{"id": m["vlan_id"], "link": m["vlan_link"]}, &l)
	} else {
		l.Members = w.strs(path+"."+members, m[members])
		params := map[string]any{}
		pm := w.mapping(path+".params", m["params"])
		for k, v := range pm {
			nk, ok := v1Params[k]
			switch {
			case !ok || (typ == "bond") != strings.HasPrefix(k, "bond-"):
				w.add(join(path+".params", k), "unknown %s parameter", typ)
			case nk == "":
			case nk == "path-cost" || nk == "port-priority":
				// ifupdown spells these "PORT VALUE": one string of pairs,
				// or a list of them.
				f := strings.Fields(strings.Join(w.strs(join(path+".params", k), v), " "))
				if len(f)%2 != 0 {
					w.add(join(path+".params", k), "want PORT VALUE pairs")
				}
				ports := map[string]any{}
				for i := 0; i+1 < len(f); i += 2 {
					ports[f[i]] = f[i+1]
				}
				params[nk] = ports
			default:
				params[nk] = v
			}
			if nk != "" {
				rename[join(path+".params", nk)] = join(path+".params", k)
			}
		}
		v2Params(w, path+".params", params, &l)
	}
	for i := first; i < len(w.probs); i++ {
		if v1, ok := rename[w.probs[i].Path]; ok {
			w.probs[i].Path = v1
		}
	}
	l.MAC = mac
	v1Subnets(w, path, m, &l)
	return l
}
