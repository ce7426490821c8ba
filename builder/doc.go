// Package builder turns an image definition (package images) into a bootable
// disk: a cached mmdebstrap root tree, our binaries and overlay, /usr as an
// erofs image with a dm-verity tree, a hybrid BIOS+UEFI ESP (GRUB, shim), a
// root ext4, all assembled into a GPT disk.raw and disk.qcow2 with a
// manifest. It writes only under its cache, work and output directories.
package builder
