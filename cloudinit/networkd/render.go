package networkd

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
)

// Dir is where the rendered files go. /etc/systemd/network overrides
// /usr/lib/systemd/network, and within all directories networkd uses the
// first file in lexical order that matches a link: our 10- prefix comes
// before the image's catch-all 80-bulkhead-dhcp.network.
const Dir = "/etc/systemd/network"

// Marker starts every file we write. Only files that start with it are
// ever removed, so files an administrator or write_files put in Dir stay.
const Marker = "# Written by bulkhead-provision from network-config"

// prefix is cloud-init's networkd renderer's file name prefix.
const prefix = "10-cloud-init-"

// File is one rendered file, named relative to Dir.
type File struct {
	Name string
	Data []byte
	// Match is what the file's [Match] selects, to find the links to
	// reconfigure now (.network files only).
	Match cloudconfig.NetMatch
	// Names lists every name the link may carry (before and after a rename).
	Names []string
}

// Render turns a parsed network-config into files, in a stable order: for
// each link its .link (when it renames) and its .network. instance goes
// into the header so a file says which instance wrote it. It is pure: the
// caller writes nothing until everything has rendered.
func Render(nc cloudconfig.NetworkConfig, instance string) []File {
	if nc.Disabled {
		return nil
	}
	header := fmt.Sprintf("%s (instance %s).\n# Replaced or removed when a new instance is provisioned.\n", Marker, instance)
	var files []File
	for _, l := range nc.Links {
		if l.Kind != "" {
			files = append(files, File{Name: prefix + l.ID + ".netdev", Data: []byte(header + renderNetdev(l))})
		}
		if l.SetName != "" || l.WakeOnLan {
			files = append(files, File{Name: prefix + l.ID + ".link", Data: []byte(header + renderLink(l))})
		}
		m, names := networkMatch(l)
		files = append(files, File{Name: prefix + l.ID + ".network", Data: []byte(header + renderNetwork(l, m)), Match: m, Names: names})
	}
	return files
}

// section is one [Name] block; empty ones are left out.
type section struct {
	name string
	keys []string // Key=Value lines, in order
}

func (s *section) set(key, value string) {
	if value != "" {
		s.keys = append(s.keys, key+"="+value)
	}
}

func render(secs ...*section) string {
	var b strings.Builder
	for _, s := range secs {
		if len(s.keys) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n[%s]\n%s\n", s.name, strings.Join(s.keys, "\n"))
	}
	return b.String()
}

// renderLink renames the interface or sets wake-on-LAN: systemd.link(5),
// applied by udev when the device appears, so on the next boot or
// `udevadm trigger`. .link files match OriginalName (the kernel's name),
// not Name. Only the first matching .link file applies, so one that does
// not rename restates the naming policy of systemd's 99-default.link.
func renderLink(l cloudconfig.NetLink) string {
	match := &section{name: "Match"}
	match.set("MACAddress", l.Match.MAC)
	match.set("OriginalName", l.Match.Name)
	match.set("Driver", l.Match.Driver)
	link := &section{name: "Link"}
	if l.SetName != "" {
		link.set("Name", l.SetName)
	} else {
		link.set("NamePolicy", "keep kernel database onboard slot path")
		link.set("AlternativeNamesPolicy", "database onboard slot path")
		link.set("MACAddressPolicy", "persistent")
	}
	if l.WakeOnLan {
		link.set("WakeOnLan", "magic")
	}
	return render(match, link)
}

// networkMatch is the .network [Match] of a link. A renamed link matches
// by its old and its new name until the rename has happened.
func networkMatch(l cloudconfig.NetLink) (cloudconfig.NetMatch, []string) {
	m := l.Match
	var names []string
	if m.Name != "" {
		names = append(names, m.Name)
	}
	if l.SetName != "" && m.Name != "" && m.Name != l.SetName {
		names = append(names, l.SetName)
	}
	m.Name = strings.Join(names, " ")
	return m, names
}

// renderNetdev creates a bond, bridge or VLAN: systemd.netdev(5). networkd
// creates new netdevs on `networkctl reload` (changes to existing ones
// need a reboot or deleting the device).
func renderNetdev(l cloudconfig.NetLink) string {
	dev := &section{name: "NetDev"}
	dev.set("Name", l.ID)
	dev.set("Kind", l.Kind)
	dev.set("MACAddress", l.MAC)
	kind := &section{name: map[string]string{"bond": "Bond", "bridge": "Bridge", "vlan": "VLAN"}[l.Kind], keys: l.Params}
	return render(dev, kind)
}

func renderNetwork(l cloudconfig.NetLink, m cloudconfig.NetMatch) string {
	match := &section{name: "Match"}
	match.set("MACAddress", m.MAC)
	match.set("Name", m.Name)
	match.set("Driver", m.Driver)
	if l.Kind == "" {
		// Physical links only: a bond or bridge takes its first member's
		// MAC, and a VLAN may carry a name the glob matches
		// (systemd.network(5): Kind= is empty for physical devices).
		match.set("Kind", "!*")
	}

	link := &section{name: "Link"}
	if l.MTU > 0 {
		link.set("MTUBytes", strconv.Itoa(l.MTU))
	}
	if l.Optional {
		link.set("RequiredForOnline", "no")
	}

	netw := &section{name: "Network"}
	netw.set("DHCP", map[[2]bool]string{{false, false}: "no", {true, false}: "ipv4", {false, true}: "ipv6", {true, true}: "yes"}[[2]bool{l.DHCP4, l.DHCP6}])
	linkLocal := l.LinkLocal
	if l.Master != "" && linkLocal == "" {
		linkLocal = "no" // a bond or bridge port has no addresses of its own (as netplan renders)
	}
	netw.set("LinkLocalAddressing", linkLocal)
	if l.AcceptRA != nil {
		netw.set("IPv6AcceptRA", yesNo(*l.AcceptRA))
	}
	for _, a := range l.Addresses {
		netw.set("Address", a)
	}
	for _, g := range l.Gateways {
		netw.set("Gateway", g)
	}
	netw.set("DNS", strings.Join(l.DNS, " "))
	netw.set("Domains", strings.Join(l.Domains, " "))
	switch l.MasterKind {
	case "bond":
		netw.set("Bond", l.Master)
	case "bridge":
		netw.set("Bridge", l.Master)
	}
	if l.IsPrimary {
		netw.set("PrimarySlave", "yes")
	}
	for _, v := range l.VLANs {
		netw.set("VLAN", v)
	}
	port := &section{name: "Bridge", keys: l.PortSettings}

	dhcp4 := &section{name: "DHCPv4"}
	if l.DHCPIdentifier == "mac" {
		dhcp4.set("ClientIdentifier", "mac")
	}
	dhcp4.keys = append(dhcp4.keys, sortedKV(l.DHCP4Overrides)...)
	dhcp6 := &section{name: "DHCPv6", keys: sortedKV(l.DHCP6Overrides)}

	secs := []*section{match, link, netw, dhcp4, dhcp6, port}
	for _, r := range l.Routes {
		rs := &section{name: "Route"}
		rs.set("Destination", r.To)
		rs.set("Gateway", r.Via)
		if r.Metric > 0 {
			rs.set("Metric", strconv.Itoa(r.Metric))
		}
		if r.OnLink {
			rs.set("GatewayOnLink", "yes")
		}
		secs = append(secs, rs)
	}
	return render(secs...)
}

func sortedKV(m map[string]string) []string {
	var out []string
	for k, v := range m {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
