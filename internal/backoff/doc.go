// Package backoff is the jittered exponential wait shared by the FleetLock and
// etcd-lock clients between attempts to take or release a reboot slot. It
// touches nothing on disk.
package backoff
