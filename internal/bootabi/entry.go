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

// PristineDiskGUID is the GPT disk GUID of every disk the builder makes, the
// same for every build (as Flatcar's is): it marks a disk that never booted.
// The first boot gives the disk, each of its partitions and the root
// filesystem identities of their own (hostctl identity), so that a second
// disk made from the same image, attached for recovery, is never mistaken
// for this one.
const PristineDiskGUID = "00000000-0000-4000-8000-62756c6b6864"

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
	// RootPart, UsrPart and VerityPart are the partitions' numbers on the
	// boot disk (0 when unknown). With them entry.cfg asks GRUB for the
	// partitions' PARTUUIDs on the disk it booted from, as they are now
	// (the first boot randomises them), and uses the recorded ones only
	// where GRUB cannot probe.
	RootPart, UsrPart, VerityPart int
}

// Cmdline renders the kernel command line. The initrd (systemd's
// veritysetup and fstab generators) opens /usr as /dev/mapper/usr, checked
// against usrhash, and mounts it read-only; root= is the shared root
// partition. bulkhead.slot tells the booted system which slot it runs.
func (e Entry) Cmdline() string {
	return e.cmdline(e.RootPartUUID, e.UsrPartUUID, e.VerityPartUUID)
}

// GRUB variables entry.cfg sets to the boot disk's PARTUUIDs.
const (
	grubRootUUID   = "bulkhead_root_partuuid"
	grubUsrUUID    = "bulkhead_usr_partuuid"
	grubVerityUUID = "bulkhead_verity_partuuid"
)

func (e Entry) cmdline(root, usr, verity string) string {
	args := []string{
		"root=PARTUUID=" + root,
		"rw",
		"mount.usr=/dev/mapper/usr",
		"mount.usrfstype=erofs",
		// Generous: a loaded TCG guest can take more than 30 s to settle
		// udev, and a timeout here reboots and so spends a try.
		"mount.usrflags=ro,x-systemd.device-timeout=120s",
		"usrhash=" + e.RootHash,
		"systemd.verity_usr_data=PARTUUID=" + usr,
		"systemd.verity_usr_hash=PARTUUID=" + verity,
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
// grub.cfg with $bulkhead_esp set to the ESP device ("hd0,gpt2"). The
// partitions are named by their PARTUUIDs on the disk GRUB booted from, read
// by probe (in Debian's signed GRUB and in the BIOS core image since the
// identity change); a GRUB without probe, or a partition it cannot read,
// keeps the recorded PARTUUID.
func (e Entry) GrubConfig() string {
	dir := SlotDir(e.Slot)
	var b strings.Builder
	fmt.Fprintf(&b, "# Bulkhead slot %s, version %s. Written by the builder or the updater.\n", e.Slot, e.Version)
	probes := []struct {
		v, uuid string
		num     int
	}{{grubRootUUID, e.RootPartUUID, e.RootPart}, {grubUsrUUID, e.UsrPartUUID, e.UsrPart}, {grubVerityUUID, e.VerityPartUUID, e.VerityPart}}
	for _, p := range probes {
		fmt.Fprintf(&b, "set %s=%s\n", p.v, p.uuid)
	}
	if e.RootPart > 0 && e.UsrPart > 0 && e.VerityPart > 0 {
		b.WriteString("regexp --set=1:bulkhead_disk '^([^,]+),' \"$bulkhead_esp\"\n" +
			"if [ -n \"$bulkhead_disk\" ]; then\n")
		for _, p := range probes {
			fmt.Fprintf(&b, "  if probe --set=bulkhead_uuid --part-uuid ($bulkhead_disk,gpt%d); then\n    set %s=$bulkhead_uuid\n  fi\n", p.num, p.v)
		}
		b.WriteString("fi\n")
	}
	fmt.Fprintf(&b, "echo 'Booting Bulkhead %s from slot %s'\n"+
		"linux ($bulkhead_esp)/%s/%s %s\n"+
		"initrd ($bulkhead_esp)/%s/%s\n",
		e.Version, e.Slot, dir, KernelFile, e.cmdline("$"+grubRootUUID, "$"+grubUsrUUID, "$"+grubVerityUUID), dir, InitrdFile)
	return b.String()
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
