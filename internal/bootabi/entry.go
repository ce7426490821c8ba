package bootabi

import (
	"fmt"
	"strings"
)

// ESP layout shared by the builder (which lays it out) and the updater (which
// writes the inactive slot's directory). Paths are relative to the ESP root.
const (
	ESPGrubDir = "grub"         // grub.cfg and grubenv
	ESPGrubEnv = "grub/grubenv" // the environment block
	// ESPGrubEnvBackup is the environment block's copy, written after it:
	// GRUB and the updater read it when the block is missing or damaged.
	ESPGrubEnvBackup = "grub/grubenv.bak"
	KernelFile       = "vmlinuz"    // in the slot directory
	InitrdFile       = "initrd.img" // in the slot directory
	EntryFile        = "entry.cfg"  // sourced by grub.cfg's menu entry for the slot
	ReleaseFile      = "release"    // KEY=value facts about the version in the slot
)

// VerityOptions are the dm-verity options of /usr (systemd-veritysetup's
// names, as in veritytab).
const VerityOptions = "restart-on-corruption"

// SlotDir is the ESP directory that holds a slot's kernel, initrd and entry.
func SlotDir(s Slot) string { return string(s) }

// Entry is what boots one slot: the kernel command line is derived from the
// slot's partitions and the verity root hash of the version written there.
type Entry struct {
	Slot           Slot
	Version        string
	RootPartUUID   string   // the root partition (shared by both slots)
	UsrPartUUID    string   // usr-<slot>
	VerityPartUUID string   // usr-<slot>-verity
	RootHash       string   // dm-verity root hash of the /usr image, hex
	Args           []string // the image definition's extra kernel arguments
	// VerityOptions are /usr's dm-verity options (VerityOptions, or "" for
	// the kernel's default of failing the read): restarting at a damaged
	// block needs a grub.cfg that counts restarts (VarBoots), or a slot
	// damaged on its boot path would restart for ever.
	VerityOptions string
}

// Cmdline renders the kernel command line. The initrd (systemd's
// veritysetup and fstab generators) opens /usr as /dev/mapper/usr, checked
// against usrhash, and mounts it read-only; root= is the shared root
// partition. bulkhead.slot tells the booted system which slot it runs.
func (e Entry) Cmdline() string {
	args := []string{
		"root=PARTUUID=" + e.RootPartUUID,
		"rw",
		"mount.usr=/dev/mapper/usr",
		"mount.usrfstype=erofs",
		// Generous: a loaded TCG guest can take more than 30 s to settle
		// udev, and a timeout here reboots and so spends a try.
		"mount.usrflags=ro,x-systemd.device-timeout=120s",
		"usrhash=" + e.RootHash,
		"systemd.verity_usr_data=PARTUUID=" + e.UsrPartUUID,
		"systemd.verity_usr_hash=PARTUUID=" + e.VerityPartUUID,
	}
	if e.VerityOptions != "" {
		// Fail closed: a block that does not match its hash restarts the
		// machine instead of handing its reader an I/O error. On a trial
		// the restart spends a try; hostctl verify-usr finds the damage
		// of a blessed slot and moves to the other one.
		args = append(args, "systemd.verity_usr_options="+e.VerityOptions)
	}
	args = append(args, "bulkhead.slot="+string(e.Slot))
	return strings.Join(append(args, e.Args...), " ")
}

// GrubConfig renders the slot's entry.cfg, sourced from the menu entry in
// grub.cfg with $bulkhead_esp set to the ESP device.
func (e Entry) GrubConfig() string {
	dir := SlotDir(e.Slot)
	return fmt.Sprintf("# Bulkhead slot %s, version %s. Written by the builder or the updater.\n"+
		"echo 'Booting Bulkhead %s from slot %s'\n"+
		"linux ($bulkhead_esp)/%s/%s %s\n"+
		"initrd ($bulkhead_esp)/%s/%s\n",
		e.Slot, e.Version, e.Version, e.Slot, dir, KernelFile, e.Cmdline(), dir, InitrdFile)
}

// Release renders the slot's release file.
func (e Entry) Release(name string) string {
	return fmt.Sprintf("NAME=%s\nVERSION=%s\nROOTHASH=%s\n", name, e.Version, e.RootHash)
}

// ParseRelease reads a release file into a map.
func ParseRelease(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			out[k] = v
		}
	}
	return out
}
