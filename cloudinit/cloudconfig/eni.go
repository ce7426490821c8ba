package cloudconfig

import (
	"errors"
	"fmt"
	"strings"
)

// ParseENI reads the `network-interfaces` key of older NoCloud meta-data:
// Debian's /etc/network/interfaces syntax (interfaces(5)), which cloud-init
// converts to a version 1 config (cloudinit/net/eni.py). It does the same
// for iface stanzas with static, dhcp, manual and auto (SLAAC) methods and
// the address, netmask, gateway, dns-*, hwaddress and mtu options; other
// options (ifenslave bonding, bridge-utils, hook scripts) are refused with
// their line: use a network-config file for bonds and bridges.
func ParseENI(text string) (NetworkConfig, error) {
	type iface struct {
		name    string
		mac     any
		mtu     any
		subnets []any
	}
	var order []*iface
	byName := map[string]*iface{}
	var cur map[string]any // the subnet of the stanza being read
	var curIf *iface
	var errs []error
	bad := func(n int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("meta-data: network-interfaces: line %d: %s", n, fmt.Sprintf(format, args...)))
	}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "auto", "allow-auto", "allow-hotplug":
			continue // all our links come up
		case "source", "source-directory":
			bad(n, "%s: not supported (the seed cannot include other files)", f[0])
			continue
		case "iface":
			cur = nil
			if len(f) != 4 {
				bad(n, "want iface NAME inet|inet6 METHOD")
				continue
			}
			name, family, method := f[1], f[2], f[3]
			if method == "loopback" {
				continue
			}
			six := family == "inet6"
			if family != "inet" && !six {
				bad(n, "address family %q: want inet or inet6", family)
				continue
			}
			typ := map[string]string{"static": "static", "dhcp": "dhcp4", "manual": "manual"}[method]
			switch {
			case six && method == "static":
				typ = "static6"
			case six && method == "dhcp":
				typ = "dhcp6"
			case six && method == "auto":
				typ = "ipv6_slaac"
			}
			if typ == "" {
				bad(n, "method %q: want static, dhcp, manual or auto", method)
				continue
			}
			ifc := byName[name]
			if ifc == nil {
				ifc = &iface{name: name}
				byName[name] = ifc
				order = append(order, ifc)
			}
			cur, curIf = map[string]any{"type": typ}, ifc
			ifc.subnets = append(ifc.subnets, cur)
		default:
			if cur == nil {
				bad(n, "%s: outside an iface stanza", f[0])
				continue
			}
			ifc := curIf
			args := f[1:]
			if len(args) == 0 {
				bad(n, "%s: want a value", f[0])
				continue
			}
			switch f[0] {
			case "address", "netmask", "gateway":
				cur[f[0]] = args[0]
			case "dns-nameservers":
				cur["dns_nameservers"] = toAny(args)
			case "dns-search":
				cur["dns_search"] = toAny(args)
			case "hwaddress":
				if args[0] == "ether" && len(args) > 1 {
					args = args[1:]
				}
				ifc.mac = args[0]
			case "mtu":
				ifc.mtu = args[0]
			case "broadcast", "network":
				// derived from address and netmask by the kernel
			default:
				bad(n, "option %q: not supported (Bulkhead renders address, netmask, gateway, dns-nameservers, dns-search, hwaddress, mtu)", f[0])
			}
		}
	}
	config := make([]any, 0, len(order))
	for _, ifc := range order {
		m := map[string]any{"type": "physical", "name": ifc.name, "subnets": ifc.subnets}
		if ifc.mac != nil {
			m["mac_address"] = ifc.mac
		}
		if ifc.mtu != nil {
			m["mtu"] = ifc.mtu
		}
		config = append(config, m)
	}
	nc, err := NetworkConfigFromMap(map[string]any{"version": 1, "config": config})
	if err != nil {
		// The paths are those of the converted v1 document; say so.
		errs = append(errs, fmt.Errorf("meta-data: network-interfaces (as network-config version 1):\n%w", err))
	}
	return nc, errors.Join(errs...)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
