// Package fleetlock is a client of the FleetLock protocol that Fedora CoreOS's
// Zincati speaks (POST {base}/v1/pre-reboot and /v1/steady-state), so an
// existing FleetLock server such as airlock coordinates Bulkhead reboots.
// hostd calls it through the reboot package; it touches nothing on disk.
package fleetlock
