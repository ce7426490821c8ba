package cloudinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// hostnames returns the short host name and the FQDN the user-data and
// meta-data give, as cloud-init's get_hostname_fqdn: fqdn wins, a hostname
// with a dot is an FQDN, and meta-data's local-hostname is the fallback.
func (p *provisioner) hostnames() (short, fqdn string) {
	name, fqdn := p.cfg.Hostname, p.cfg.FQDN
	if name == "" && fqdn == "" {
		name = p.data.MetaData.LocalHostname
	}
	if fqdn == "" {
		fqdn = name
	}
	if name == "" {
		name = fqdn
	}
	short, _, _ = strings.Cut(name, ".")
	return short, fqdn
}

// etcHostsHeader marks /etc/hosts as ours in template mode.
const etcHostsHeader = "# Written by bulkhead-provision (manage_etc_hosts: true) on every boot;\n# edit the user-data, or set manage_etc_hosts: false, to change it.\n"

// updateEtcHosts is cloud-init's update_etc_hosts: with manage_etc_hosts
// true (or template) /etc/hosts is rewritten every boot from Debian's
// template, mapping the host's names to 127.0.1.1; with localhost only the
// 127.0.1.1 line is kept up to date; false leaves the file alone.
func (p *provisioner) updateEtcHosts(ctx context.Context) error {
	s := p.cfg.ManageEtcHosts
	if s == nil {
		return errNothing
	}
	mode := strings.ToLower(s.Value)
	if v, ok := s.Bool(); ok {
		if !v {
			return errNothing
		}
		mode = "template"
	}
	if mode != "template" && mode != "localhost" {
		return fmt.Errorf("manage_etc_hosts: %q: want true, false, template or localhost", s.Value)
	}
	short, fqdn := p.hostnames()
	if short == "" {
		short = strings.TrimSpace(readFile(p.o.Root.Join("/etc/hostname")))
		fqdn = short
	}
	if short == "" {
		return fmt.Errorf("manage_etc_hosts: no host name in user-data or meta-data to write")
	}
	names := fqdn
	if short != fqdn {
		names += " " + short
	}
	line := "127.0.1.1 " + names
	path := p.o.Root.Join("/etc/hosts")
	var content string
	if mode == "template" {
		content = etcHostsHeader + line + "\n127.0.0.1 localhost\n\n" +
			"# The following lines are desirable for IPv6 capable hosts\n" +
			"::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
	} else {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("manage_etc_hosts: %w", err)
		}
		var out []string
		found := false
		for _, l := range strings.SplitAfter(string(old), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "127.0.1.1" {
				if !found {
					out = append(out, line+"\n")
				}
				found = true
				continue
			}
			if l != "" {
				out = append(out, l)
			}
		}
		if !found {
			if n := len(out); n > 0 && !strings.HasSuffix(out[n-1], "\n") {
				out[n-1] += "\n"
			}
			out = append(out, line+"\n")
		}
		content = strings.Join(out, "")
	}
	if err := fsroot.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("manage_etc_hosts: %w", err)
	}
	return nil
}
