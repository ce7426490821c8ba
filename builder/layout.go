package builder

import (
	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// Partition type GUIDs, from the Discoverable Partitions Specification
// (uapi-group.org/specifications/specs/discoverable_partitions_specification)
// and, for the BIOS boot partition, GRUB's "Hah!IdontNeedEFI".
const (
	TypeBIOSBoot  = "21686148-6449-6E6F-744E-656564454649"
	TypeESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeUsrX86    = "8484680C-9521-48C6-9C11-B0720656F69E"
	TypeUsrVerity = "77FF5F63-E7B6-4633-ACF4-1565B864C0E6"
	TypeRootX86   = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// Partition labels. The updater finds slots by these labels.
const (
	LabelBIOS       = "bios"
	LabelESP        = "esp"
	LabelUsrA       = "usr-a"
	LabelUsrAVerity = "usr-a-verity"
	LabelUsrB       = "usr-b"
	LabelUsrBVerity = "usr-b-verity"
	LabelRoot       = "root"
)

const (
	mib        = 1 << 20
	sectorSize = 512
	// biosBootSize holds GRUB's i386-pc core image.
	biosBootSize = 1 * mib
)

// Layout computes the partition table: 1 MiB aligned, in the order of
// DESIGN.md, the ESP second (GRUB's BIOS prefix is (,gpt2)/grub), root last
// so that it can grow into the rest of the disk. Its UUIDs derive from ids.
func Layout(def *images.Definition, ids IDs) (parts []manifest.Partition, diskSize int64) {
	p := def.Partitions
	specs := []struct {
		label, typ string
		size       int64
	}{
		{LabelBIOS, TypeBIOSBoot, biosBootSize},
		{LabelESP, TypeESP, int64(p.ESP)},
		{LabelUsrA, TypeUsrX86, int64(p.Usr)},
		{LabelUsrAVerity, TypeUsrVerity, int64(p.UsrVerity)},
		{LabelUsrB, TypeUsrX86, int64(p.Usr)},
		{LabelUsrBVerity, TypeUsrVerity, int64(p.UsrVerity)},
		{LabelRoot, TypeRootX86, int64(p.Root)},
	}
	off := int64(mib) // the primary GPT lives in the first MiB
	for _, s := range specs {
		parts = append(parts, manifest.Partition{Label: s.label, Type: s.typ, UUID: ids.UUID("partition/" + s.label), Start: off, Size: s.size})
		off += s.size
	}
	// One more MiB at the end for the backup GPT (33 sectors), aligned.
	return parts, off + mib
}
