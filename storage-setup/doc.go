// Package storagesetup carves container storage out of spare disks as Atomic
// Host's docker-storage-setup did: same options, DEVS partitioned into an LVM
// VG, thin pool, container root volume, /etc/sysconfig/docker-storage output.
// Called by `hostctl storage-setup` (boot) and `hostctl status` (PoolUsage);
// programs go through run.Runner, files through fsroot.Root.
package storagesetup
