// Package identity gives a host's boot disk an identity of its own at first
// boot, as Fedora CoreOS and Flatcar do: every disk made from one image has
// the same GPT disk GUID (bootabi.PristineDiskGUID), partition UUIDs and
// root filesystem UUID, so a second such disk attached for recovery would
// make root=PARTUUID= and the ESP's fstab line ambiguous. The build stays
// reproducible; labels and partition types stay as documented.
//
// It runs in the booted system (bulkhead-identity.service, before the local
// mounts), on the disk holding the mounted root. The kernel keeps the old
// partition table in memory for this boot, and a udev rule under /run keeps
// the old by-partuuid names pointing at this disk's partitions until the
// next boot, so nothing bound to them (the /usr verity device, the ESP
// mount) notices; GRUB reads the new PARTUUIDs from the disk at the next
// boot (bootabi.Entry.GrubConfig). Every boot it also makes fstab's / and
// /efi lines name the boot disk's partitions, which repairs a power cut
// between the two writes.
package identity
