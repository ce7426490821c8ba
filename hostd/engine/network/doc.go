// Package network is the engine's default bridge network: a Linux bridge
// (netlink), one veth pair and network namespace per container (bind-mounted
// under the run directory), NAT and published ports with iptables through
// the runner. Address leases and each container's rules live in StateDir.
package network
