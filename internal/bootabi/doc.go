// Package bootabi is the boot contract between the image builder, which lays
// out the ESP and writes grub.cfg, and the updater, which rewrites one slot's
// ESP directory and the GRUB environment: the slot names, the ESP paths, the
// GRUB environment variable names and how a boot selection (State) maps onto
// them, and the per-slot entry.cfg and release files.
//
// It is a leaf package (it imports only internal/grubenv) so that the builder
// and the on-host updater share it without either importing the other.
package bootabi
