// Package reboottest holds the real peers that reboot-coordination tests run
// against: an etcd server started from the Debian etcd-server package on
// loopback, and a small FleetLock server that speaks the documented protocol.
// Only tests import it.
package reboottest
