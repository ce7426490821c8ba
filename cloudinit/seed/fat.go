package seed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxFATTable bounds the file allocation table read to check it: 64 MiB
// covers FAT32 volumes of tens of GiB with 4 KiB clusters, far beyond a
// seed's few KiB.
const maxFATTable = 64 << 20

// checkFAT validates a FAT volume's boot sector and first FAT before
// go-diskfs reads it, since go-diskfs trusts both: a size field past the
// end of the device is an allocation of that size, and a cluster chain
// that loops (A -> B -> A) is an endless loop growing a slice. The
// geometry must fit in the device (Microsoft FAT specification, BPB) and
// no chain in the table may loop.
func checkFAT(r io.ReaderAt, size int64) error {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, 0); err != nil {
		return fmt.Errorf("reading boot sector: %w", err)
	}
	le16 := func(off int) int64 { return int64(binary.LittleEndian.Uint16(bs[off:])) }
	le32 := func(off int) int64 { return int64(binary.LittleEndian.Uint32(bs[off:])) }
	bps, spc, rsvd, nFATs, rootEnts := le16(11), int64(bs[13]), le16(14), int64(bs[16]), le16(17)
	totSec, fatSz := le16(19), le16(22)
	if totSec == 0 {
		totSec = le32(32)
	}
	if fatSz == 0 {
		fatSz = le32(36)
	}
	switch {
	case bps != 512 && bps != 1024 && bps != 2048 && bps != 4096:
		return fmt.Errorf("fat: %d bytes per sector", bps)
	case spc == 0 || spc&(spc-1) != 0:
		return fmt.Errorf("fat: %d sectors per cluster", spc)
	case rsvd == 0 || nFATs == 0 || fatSz == 0:
		return fmt.Errorf("fat: %d reserved sectors, %d FATs of %d sectors", rsvd, nFATs, fatSz)
	case totSec*bps > size:
		return fmt.Errorf("fat: %d sectors of %d bytes: larger than the %d-byte device", totSec, bps, size)
	case fatSz*bps > maxFATTable:
		return fmt.Errorf("fat: FAT of %d bytes: over the %d-byte limit", fatSz*bps, maxFATTable)
	}
	rootSecs := (rootEnts*32 + bps - 1) / bps
	dataStart := rsvd + nFATs*fatSz + rootSecs
	if dataStart >= totSec {
		return fmt.Errorf("fat: data region starts at sector %d of %d", dataStart, totSec)
	}
	clusters := (totSec - dataStart) / spc
	// The FAT type follows from the cluster count alone (FAT spec 3.5).
	bits := int64(32)
	switch {
	case clusters < 4085:
		bits = 12
	case clusters < 65525:
		bits = 16
	}
	table := make([]byte, fatSz*bps)
	if _, err := r.ReadAt(table, rsvd*bps); err != nil {
		return fmt.Errorf("fat: reading the FAT: %w", err)
	}
	maxCluster := clusters + 1
	if (int64(len(table))*8)/bits < maxCluster+1 {
		return fmt.Errorf("fat: a FAT of %d bytes cannot map %d clusters", len(table), clusters)
	}
	next := func(c int64) int64 {
		switch bits {
		case 12:
			v := int64(binary.LittleEndian.Uint16(table[c+c/2:]))
			if c%2 == 1 {
				return v >> 4
			}
			return v & 0xfff
		case 16:
			return int64(binary.LittleEndian.Uint16(table[2*c:]))
		}
		return int64(binary.LittleEndian.Uint32(table[4*c:]) & 0x0fffffff)
	}
	return checkChains(maxCluster, next)
}

// errFATLoop is a cluster chain that comes back to itself.
var errFATLoop = errors.New("cluster chain loops")

// checkChains walks every chain of the table once (next maps a cluster to
// the next; anything outside 2..maxCluster ends a chain) and fails on a
// loop: the table is a functional graph, so a walk that meets a cluster
// of its own path has found a cycle.
func checkChains(maxCluster int64, next func(int64) int64) error {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]uint8, maxCluster+1)
	var path []int64
	for start := int64(2); start <= maxCluster; start++ {
		path = path[:0]
		c := start
		for c >= 2 && c <= maxCluster && state[c] == unseen {
			state[c] = onPath
			path = append(path, c)
			c = next(c)
		}
		if c >= 2 && c <= maxCluster && state[c] == onPath {
			return fmt.Errorf("fat: %w at cluster %d", errFATLoop, c)
		}
		for _, p := range path {
			state[p] = done
		}
	}
	return nil
}
