package builder

import (
	"fmt"
	"strings"

	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
)

// GrubConfig renders /grub/grub.cfg on the ESP: one configuration for BIOS
// and UEFI. It picks the slot from the GRUB environment block: the default
// slot, or the slot on trial while it has tries left, counting one try down
// (and saving it) before booting it. GRUB 2.06 has no arithmetic, hence the
// if-chain. When the tries are spent it boots the default: automatic rollback.
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

load_env --file ($bulkhead_esp)/` + bootcfg.ESPGrubEnv + `
set slot=a
if [ "$` + bootcfg.VarDefault + `" = "b" ]; then
  set slot=b
fi
set trying=0
if [ "$` + bootcfg.VarTry + `" = "a" ]; then
  set trying=1
fi
if [ "$` + bootcfg.VarTry + `" = "b" ]; then
  set trying=1
fi
if [ "$trying" = "1" ]; then
`)
	kw := "if"
	for n := bootcfg.MaxTries; n >= 1; n-- {
		fmt.Fprintf(&b, "  %s [ \"$%s\" = \"%d\" ]; then\n    set %s=%d\n    set slot=$%s\n",
			kw, bootcfg.VarTries, n, bootcfg.VarTries, n-1, bootcfg.VarTry)
		kw = "elif"
	}
	b.WriteString(`  fi
  save_env --file ($bulkhead_esp)/` + bootcfg.ESPGrubEnv + ` ` + bootcfg.VarTries + `
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
if [ "$` + bootcfg.VarDefault + `" = "b" ]; then
  set fallback=1
else
  set fallback=0
fi
echo "Bulkhead: slot $slot (default $` + bootcfg.VarDefault + `, trying '$` + bootcfg.VarTry + `' with $` + bootcfg.VarTries + ` tries left)"

menuentry "Bulkhead, slot A" --id slot-a {
  source ($bulkhead_esp)/a/` + bootcfg.EntryFile + `
}
menuentry "Bulkhead, slot B" --id slot-b {
  source ($bulkhead_esp)/b/` + bootcfg.EntryFile + `
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
