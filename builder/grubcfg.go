package builder

import (
	"fmt"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
)

// GrubConfig renders /grub/grub.cfg on the ESP: one configuration for BIOS
// and UEFI. It picks the slot from the GRUB environment block: the default
// slot, or the slot on trial while it has tries left, counting one try down
// (and saving it) before booting it. GRUB 2.06 has no arithmetic, hence the
// if-chain. When the tries are spent it boots the default: automatic rollback.
//
// A block that is missing or damaged (no default slot in it) is replaced by
// its backup, which the updater writes after it: the last selection, never
// slot A by chance. A try that cannot be saved is not taken: the default
// boots, so a trial cannot repeat for ever on an unwritable block.
func GrubConfig() string {
	var b strings.Builder
	b.WriteString(`# Bulkhead boot configuration, written by the builder. One file for BIOS and UEFI.
# The slot comes from the environment block next to this file (see hostctl status).
set bulkhead_esp=$root
export bulkhead_esp
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout_style=menu
set timeout=1

set bulkhead_env=($bulkhead_esp)/` + bootabi.ESPGrubEnv + `
load_env --file $bulkhead_env
if [ "$` + bootabi.VarDefault + `" != "a" -a "$` + bootabi.VarDefault + `" != "b" ]; then
  set bulkhead_env=($bulkhead_esp)/` + bootabi.ESPGrubEnvBackup + `
  load_env --file $bulkhead_env
  echo "Bulkhead: the boot environment block is damaged; using its backup"
fi
set default_slot=a
if [ "$` + bootabi.VarDefault + `" = "b" ]; then
  set default_slot=b
fi
set slot=$default_slot
set trying=0
if [ "$` + bootabi.VarTry + `" = "a" ]; then
  set trying=1
fi
if [ "$` + bootabi.VarTry + `" = "b" ]; then
  set trying=1
fi
if [ "$trying" = "1" ]; then
`)
	kw := "if"
	for n := bootabi.MaxTries; n >= 1; n-- {
		fmt.Fprintf(&b, "  %s [ \"$%s\" = \"%d\" ]; then\n    set %s=%d\n    set slot=$%s\n",
			kw, bootabi.VarTries, n, bootabi.VarTries, n-1, bootabi.VarTry)
		kw = "elif"
	}
	b.WriteString(`  fi
  set saved=0
  if save_env --file $bulkhead_env ` + bootabi.VarTries + `; then
    set saved=1
  fi
  if [ "$saved" = "0" ]; then
    echo "Bulkhead: cannot save the spent try of slot $slot; booting the default slot"
    set slot=$default_slot
  fi
fi
`)
	writeBootCounter(&b)
	b.WriteString(`if [ "$slot" = "b" ]; then
  set default=slot-b
else
  set default=slot-a
fi
# A slot whose kernel, initrd or entry fails to load (a power cut before
# its boot files reached the disk) must not leave GRUB at its menu: it falls
# back to the default slot, and the spent try still counts.
# By number (slot-a is entry 0, slot-b entry 1): GRUB 2.06 does not look
# fallback up by id.
if [ "$` + bootabi.VarDefault + `" = "b" ]; then
  set fallback=1
else
  set fallback=0
fi
echo "Bulkhead: slot $slot (default $` + bootabi.VarDefault + `, trying '$` + bootabi.VarTry + `' with $` + bootabi.VarTries + ` tries left, boot $` + bootabi.VarBoots + ` since a check)"

menuentry "Bulkhead, slot A" --id slot-a {
  source ($bulkhead_esp)/a/` + bootabi.EntryFile + `
}
menuentry "Bulkhead, slot B" --id slot-b {
  source ($bulkhead_esp)/b/` + bootabi.EntryFile + `
}
`)
	return b.String()
}

// EFIStubConfig is the grub.cfg next to grubx64.efi (Debian's signed GRUB
// reads $prefix/grub.cfg from its own directory): find the ESP by its
// volume ID, falling back to the device GRUB was loaded from, and hand over
// to the shared configuration.
func EFIStubConfig(espVolumeUUID string) string {
	return `# Bulkhead: hand over to the shared configuration on the ESP.
regexp --set=1:bulkhead_dev '^\(([^)]*)\)' "$cmdpath"
if [ -n "$bulkhead_dev" ]; then
  set root=$bulkhead_dev
else
  search --no-floppy --fs-uuid --set=root ` + espVolumeUUID + `
fi
set prefix=($root)/grub
configfile ($root)/grub/grub.cfg
`
}

// writeBootCounter renders the count of the default slot's boots since one
// was confirmed (hostctl verify-usr read its /usr whole and found it sound,
// and set the count to 0). dm-verity restarts the machine at a damaged
// block, so a slot damaged on its boot path would restart for ever: after
// MaxBoots such boots running, GRUB moves the default to the spare slot
// (the other one, while it holds its blessed build) and notes the slot it
// gave up on. Without a spare it keeps booting the default: nothing is
// better. A count that cannot be saved changes nothing.
func writeBootCounter(b *strings.Builder) {
	boots, spare, def := "$"+bootabi.VarBoots, "$"+bootabi.VarSpare, bootabi.VarDefault
	fmt.Fprintf(b, `if [ "$slot" = "$default_slot" ]; then
  if [ "%[1]s" = "%[4]d" -a "%[2]s" != "$default_slot" ]; then
    if [ "%[2]s" = "a" -o "%[2]s" = "b" ]; then
      echo "Bulkhead: slot $default_slot restarted %[4]d boots running before its check; moving to slot %[2]s"
      set %[6]s=$default_slot
      set %[3]s=%[2]s
      set slot=%[2]s
      set %[5]s=
      set %[7]s=0
      set %[8]s=
      set %[9]s=
      save_env --file $bulkhead_env %[3]s %[5]s %[7]s %[6]s %[8]s %[9]s
    fi
`, boots, spare, def, bootabi.MaxBoots, bootabi.VarSpare, bootabi.VarGaveUp, bootabi.VarBoots, bootabi.VarTry, bootabi.VarTries)
	kw := "elif"
	for n := bootabi.MaxBoots - 1; n >= 1; n-- {
		fmt.Fprintf(b, "  %s [ \"%s\" = \"%d\" ]; then\n    set %s=%d\n    save_env --file $bulkhead_env %s\n", kw, boots, n, bootabi.VarBoots, n+1, bootabi.VarBoots)
	}
	fmt.Fprintf(b, "  elif [ \"%s\" != \"%d\" ]; then\n    set %s=1\n    save_env --file $bulkhead_env %s\n  fi\nfi\n", boots, bootabi.MaxBoots, bootabi.VarBoots, bootabi.VarBoots)
}
