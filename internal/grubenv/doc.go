// Package grubenv reads and writes GRUB's environment block (the grubenv file
// that load_env/save_env use): a fixed 1024-byte file starting with
// "# GRUB Environment Block\n", name=value lines, padded with '#'. It writes
// in place, the way grub-editenv does, so the file's blocks never move.
package grubenv
