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
set slot=a
if [ "$` + bootabi.VarDefault + `" = "b" ]; then
  set slot=b
fi
set trying=0
if [ "$` + bootabi.VarTry + `" = "a" ]; then
  set trying=1
fi
if [ "$` + bootabi.VarTry + `" = "b" ]; then
  set trying=1
fi
if [ "$trying" = "1" ]; then
  set default_slot=$slot
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
if [ "$slot" = "b" ]; then
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
echo "Bulkhead: slot $slot (default $` + bootabi.VarDefault + `, trying '$` + bootabi.VarTry + `' with $` + bootabi.VarTries + ` tries left)"

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
