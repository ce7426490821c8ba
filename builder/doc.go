// Package builder turns an image definition (package images) into a bootable
// disk: a cached mmdebstrap root tree, our binaries and overlay, /usr as an
// erofs image with a dm-verity tree, a hybrid BIOS+UEFI ESP (GRUB, shim), a
// root ext4, all assembled into a GPT disk.raw and disk.qcow2 with a
// manifest (with the package lock: every .deb's version and sha256) and a
// CycloneDX SBOM. It writes only under its cache, work and output
// directories: paths into the tree resolve inside the tree, the output
// replaces only a previous build's, once the new one is complete, and the
// cache is locked for one build at a time. The same inputs give the same
// bytes whatever the build host's filesystem, umask, time zone or locale.
package builder
