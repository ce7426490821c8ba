// Package resolver is the DNS server of a user-defined network: it listens
// on the network's gateway address, bound to the network's bridge device
// (SO_BINDTODEVICE), so only packets that arrive on that bridge reach it;
// it answers the names of the network's containers (their names, aliases
// and short IDs) to the network's own containers, and forwards every other
// question to the host's resolvers.
//
// It runs in hostd's network namespace rather than in each container's
// (dockerd's 127.0.0.11 needs a listener and NAT rules inside every
// container): one socket pair per network, no rules in containers, and the
// upstreams are the host's own, loopback stubs such as systemd-resolved's
// 127.0.0.53 included.
package resolver
