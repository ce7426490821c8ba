// Package updatertest builds what update tests need on plain files: a
// synthetic build output (out/<name> with a real erofs-sized image, a real
// verity tree and a builder manifest), a signing key, and a fake host root
// (/efi with a GRUB environment block, /dev/disk/by-partlabel symlinks to
// files standing in for partitions, /proc/cmdline). Only tests import it.
package updatertest
