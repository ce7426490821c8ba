// Package rawdisk reads a raw disk image (out/<name>/disk.raw) block by
// block, skipping the file's holes and all-zero blocks, for the writers
// that only carry data: builder/diskfmt (VMDK grains, sparse tar entries)
// and builder/ami (EBS snapshot blocks). It only reads the image.
package rawdisk
