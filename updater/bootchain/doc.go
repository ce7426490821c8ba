// Package bootchain installs a version's boot chain (shim, MokManager, GRUB
// EFI and the shared grub.cfg on the ESP; GRUB's BIOS core image and boot
// sector on the boot disk) so that a power cut at any point leaves a host
// that boots: ESP files are replaced by rename with the old one kept as
// NAME.prev, and the BIOS core goes into the unused half of the BIOS boot
// partition before one 512-byte write of sector 0 points at it. The
// updater calls it after a slot's boot files and before the trial is set;
// bless drops the .prev copies; hostctl bootloader reads its record
// (bootchain.json on the ESP).
package bootchain
