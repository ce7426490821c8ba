// Package etcdlock is locksmith's reboot lock on etcd v3: a JSON counting
// semaphore {semaphore, max, holders} per group, changed only by
// compare-and-swap transactions. hostd takes a slot before rebooting into an
// update and gives it back once the new boot is blessed; operators release a
// dead host's slot with `hostctl reboot-lock release`. Nothing on disk.
package etcdlock
