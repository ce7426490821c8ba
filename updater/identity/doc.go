// Package identity gives a host's boot disk an identity of its own at first
// boot, as Fedora CoreOS and Flatcar do: every disk made from one image has
// the same GPT disk GUID (bootabi.PristineDiskGUID), partition UUIDs and
// root filesystem UUID, so a second such disk attached for recovery would
// make root=PARTUUID= and the ESP's fstab line ambiguous. The build stays
// reproducible; labels and partition types stay as documented.
//
// It runs in the booted system (bulkhead-identity.service, once, off the
// boot's critical path), on the disk holding the mounted root. The kernel
// keeps the old partition table in memory for this boot, and a udev rule
// under /run keeps the old by-partuuid names pointing at this disk's
// partitions until the next boot, so nothing bound to them (the /usr verity
// device, the ESP mount) notices; GRUB reads the new PARTUUIDs from the disk
// at the next boot (bootabi.Entry.GrubConfig). The new identity is planned
// and fstab rewritten to it before the disk is, so a boot cut short
// anywhere leaves fstab naming what the disk has or will have.
package identity
