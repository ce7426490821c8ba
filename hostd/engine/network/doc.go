// Package network is the engine's networking: the default bridge (Bridge:
// a Linux bridge through netlink, one veth pair and network namespace per
// container, bind-mounted under the run directory, NAT and published ports
// with iptables through the runner), and user-defined networks (Manager,
// the engine's Networker: docker network create), each a bridge of its
// own whose containers reach no other network's (an isolation chain first
// in FORWARD), with a resolver on its gateway (package resolver) that
// answers the names and aliases of its containers. Address leases and
// each container's rules live in each bridge's StateDir; the networks and
// the endpoints of running containers in the Manager's, so they outlive a
// hostd restart.
package network
