// Package fatstamp sets every directory entry's dates and times in a FAT12,
// FAT16 or FAT32 image to one instant, so FAT images made by tools that stamp
// the clock (mtools, go-diskfs) are reproducible. The builder (ESP) and
// cloudinit's seed writer (vfat seeds) use it; it edits only the image file.
package fatstamp
