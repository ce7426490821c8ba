// Package networkd renders a parsed network-config (cloudconfig.NetworkConfig)
// into systemd-networkd .network, .netdev and .link files, as cloud-init's
// networkd renderer does, writes them to <root>/etc/systemd/network (removing
// only the files it wrote itself) and asks a running networkd to apply them.
// Package cloudinit's network_config module calls it.
package networkd
