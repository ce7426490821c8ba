package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// newRepairBootCmd is `hostctl repair-boot`: rewrite the GRUB environment
// block and its backup from the selection one of them still holds, or
// where both are lost from the running system (the booted slot as the
// default). It touches only those two files on the ESP.
func newRepairBootCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "repair-boot",
		Short: "Rewrite a damaged GRUB environment block and its backup",
		Long: "Rewrites the GRUB environment block (/efi/grub/grubenv) and its backup from the boot\n" +
			"selection one of them still holds; where both are lost, the booted slot becomes the\n" +
			"default, with no trial. hostctl status says when the environment is damaged.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := slots.Host{Root: d.Root}
			damage := h.BootEnvDamage()
			st, err := h.RepairBootEnv()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if damage != "" {
				fmt.Fprintf(out, "Was: %s\n", damage)
			}
			fmt.Fprintf(out, "Boot environment written: default slot %s", st.Default)
			if st.Try != "" {
				fmt.Fprintf(out, ", slot %s on trial with %d tries left", st.Try, st.TriesLeft)
			}
			fmt.Fprintln(out)
			return nil
		},
	}
}
