// Package reboot decides when a host that has staged an update may reboot:
// immediately, in a maintenance window, or holding a slot of a fleet-wide
// lock (FleetLock as Zincati speaks it, or locksmith's semaphore in etcd).
// hostd calls a Strategy's PreReboot before rebooting and SteadyState after
// the new boot is blessed; it reads /etc/bulkhead/update.yaml and
// /etc/machine-id under a root.
package reboot
