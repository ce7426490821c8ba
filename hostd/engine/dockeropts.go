package engine

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
)

// ProcessOptions are the docker run options about the container's
// process and its /etc files: capabilities, stop signal and timeout,
// resolver and extra hosts. Zero values keep Docker's defaults.
type ProcessOptions struct {
	// CapAdd and CapDrop change Docker's default capability set
	// (runtime.DefaultCaps); names with or without CAP_, or ALL.
	CapAdd  []string `yaml:"capAdd,omitempty" json:"capAdd,omitempty"`
	CapDrop []string `yaml:"capDrop,omitempty" json:"capDrop,omitempty"`
	// StopSignal is what stop sends first (default SIGTERM);
	// StopTimeout the seconds until SIGKILL when the API call gives none.
	StopSignal  string `yaml:"stopSignal,omitempty" json:"stopSignal,omitempty"`
	StopTimeout *int   `yaml:"stopTimeout,omitempty" json:"stopTimeout,omitempty"`
	// DNS, DNSSearch and DNSOptions replace the resolv.conf lines of the
	// same kind (nameserver, search, options).
	DNS        []string `yaml:"dns,omitempty" json:"dns,omitempty"`
	DNSSearch  []string `yaml:"dnsSearch,omitempty" json:"dnsSearch,omitempty"`
	DNSOptions []string `yaml:"dnsOptions,omitempty" json:"dnsOptions,omitempty"`
	// ExtraHosts are host:ip lines added to /etc/hosts (--add-host).
	ExtraHosts []string `yaml:"extraHosts,omitempty" json:"extraHosts,omitempty"`
}

// normCap turns net_admin or NET_ADMIN into CAP_NET_ADMIN.
func normCap(s string) string {
	s = strings.ToUpper(s)
	if s == "ALL" || strings.HasPrefix(s, "CAP_") {
		return s
	}
	return "CAP_" + s
}

// allCaps are the capabilities this build knows, CAP_ names.
func allCaps() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}

// privilegedCaps are a --privileged container's capabilities: every one
// this build knows that hostd itself may grant (its bounding set), as
// dockerd grants every capability it has.
func privilegedCaps() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		if ok, err := capability.GetBound(c); err == nil && ok {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out
}

// Capabilities is the container's capability set, as Docker's
// TweakCapabilities computes it: with ALL added, every capability but the
// dropped; with ALL dropped, only the added; else the defaults minus the
// dropped plus the added.
func (o ProcessOptions) Capabilities() ([]string, error) { return o.capsFrom(runtime.DefaultCaps) }

// caps is the container's capability set: nil for Docker's defaults;
// with --privileged every one hostd has, less --cap-drop, as dockerd.
func (s ContainerSpec) caps() ([]string, error) {
	switch {
	case s.Privileged:
		return s.capsFrom(privilegedCaps())
	case len(s.CapAdd)+len(s.CapDrop) > 0:
		return s.Capabilities()
	}
	return nil, nil
}

// capsFrom is Capabilities with base as the default set.
func (o ProcessOptions) capsFrom(base []string) ([]string, error) {
	known := allCaps()
	norm := func(list []string) ([]string, error) {
		var out []string
		for _, c := range list {
			n := normCap(c)
			if n != "ALL" && !slices.Contains(known, n) {
				return nil, fmt.Errorf("unknown capability %q", c)
			}
			out = append(out, n)
		}
		return out, nil
	}
	add, err := norm(o.CapAdd)
	if err != nil {
		return nil, err
	}
	drop, err := norm(o.CapDrop)
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case slices.Contains(add, "ALL"):
		for _, c := range known {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = append([]string{}, add...) // empty, not nil: none at all
	default:
		for _, c := range base {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
		caps = append(caps, add...)
	}
	slices.Sort(caps)
	return slices.Compact(caps), nil
}

// stopSignal is the signal stop sends first.
func (o ProcessOptions) stopSignal() (syscall.Signal, error) {
	if o.StopSignal == "" {
		return syscall.SIGTERM, nil
	}
	s, ok := signalNames[strings.ToUpper(o.StopSignal)]
	if !ok {
		return 0, fmt.Errorf("unknown signal %q", o.StopSignal)
	}
	return s, nil
}

// validateProcess adds a problem per bad process option.
func (s ContainerSpec) validateProcess(add func(field, format string, a ...any)) {
	o := s.ProcessOptions
	if s.Network == runtime.NetworkHost && (len(o.DNS)+len(o.DNSSearch)+len(o.DNSOptions)+len(o.ExtraHosts) > 0) {
		// The host network uses the host's own /etc files.
		add("dns/extraHosts", "not with the host network")
	}
	if _, err := o.Capabilities(); err != nil {
		add("capAdd/capDrop", "%v", err)
	}
	if _, err := o.stopSignal(); err != nil {
		add("stopSignal", "%v", err)
	}
	if o.StopTimeout != nil && *o.StopTimeout < -1 {
		add("stopTimeout", "must be >= -1 (-1: wait forever)")
	}
	for i, d := range o.DNS {
		if net.ParseIP(d) == nil {
			add(fmt.Sprintf("dns[%d]", i), "%q is not an IP address", d)
		}
	}
	for i, h := range o.ExtraHosts {
		if _, _, err := parseExtraHost(h); err != nil {
			add(fmt.Sprintf("extraHosts[%d]", i), "%v", err)
		}
	}
	for i, s := range append(append([]string(nil), o.DNSSearch...), o.DNSOptions...) {
		if strings.ContainsAny(s, " \t\n") {
			add(fmt.Sprintf("dnsSearch/dnsOptions[%d]", i), "%q has white space", s)
		}
	}
}

// parseExtraHost reads host:ip (Docker's --add-host; an IPv6 address
// after the first colon, or host=ip).
func parseExtraHost(s string) (host, ip string, err error) {
	host, ip, ok := strings.Cut(s, "=")
	if !ok {
		host, ip, ok = strings.Cut(s, ":")
	}
	ip = strings.Trim(ip, "[]")
	if !ok || host == "" || strings.ContainsAny(host, " \t\n") || net.ParseIP(ip) == nil {
		return "", "", fmt.Errorf("%q: want host:ip", s)
	}
	return host, ip, nil
}

// etcFiles applies the options to the /etc/hosts and /etc/resolv.conf
// the engine generated: extra host lines appended; nameserver, search and
// options lines replaced by the given ones.
func (o ProcessOptions) etcFiles(hosts, resolv []byte) ([]byte, []byte) {
	for _, h := range o.ExtraHosts {
		if host, ip, err := parseExtraHost(h); err == nil {
			hosts = append(hosts, ip+"\t"+host+"\n"...)
		}
	}
	if len(o.DNS) == 0 && len(o.DNSSearch) == 0 && len(o.DNSOptions) == 0 {
		return hosts, resolv
	}
	replaced := map[string][]string{"nameserver": o.DNS, "search": nil, "options": nil}
	if len(o.DNSSearch) > 0 {
		replaced["search"] = []string{strings.Join(o.DNSSearch, " ")}
	}
	if len(o.DNSOptions) > 0 {
		replaced["options"] = []string{strings.Join(o.DNSOptions, " ")}
	}
	var out []string
	for _, l := range strings.Split(string(resolv), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 {
			if vals, ok := replaced[f[0]]; ok && len(vals) > 0 {
				continue
			}
		}
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	for _, k := range []string{"nameserver", "search", "options"} {
		for _, v := range replaced[k] {
			out = append(out, k+" "+v)
		}
	}
	return hosts, []byte(strings.Join(out, "\n") + "\n")
}
