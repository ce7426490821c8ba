// Package bootdisk finds the disk a host booted from and its partitions,
// through the kernel's own view (the mounted root in mountinfo, sysfs), never
// through udev's by-label or by-uuid links: two disks made from one image
// carry the same labels, and a link names whichever disk udev saw last. The
// updater writes slots only on this disk, hostctl identity gives it its own
// identity, and cloud-init's growpart grows partitions through Partition.
package bootdisk
