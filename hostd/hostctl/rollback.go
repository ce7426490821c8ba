package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
)

// newRollbackCmd is `hostctl rollback`: make the other slot the default, if
// it holds a complete version not recorded bad. It writes only the GRUB
// environment, so it works when hostd is down.
func newRollbackCmd(d Deps) *cobra.Command {
	var reboot bool
	cmd := &cobra.Command{
		Use:   "rollback [--reboot]",
		Short: "Make the other slot the default (cancels any trial)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u := &updater.Updater{Root: d.Root, Runner: d.Runner, Log: d.Log}
			r, err := u.Rollback(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if r.Changed {
				fmt.Fprintf(out, "Slot %s (version %s) is now the default; slot %s stays as it is.\n", r.To, r.Version, r.From)
			} else {
				fmt.Fprintf(out, "Slot %s (version %s) already is the default.\n", r.To, r.Version)
			}
			if !reboot {
				fmt.Fprintln(out, "Reboot to use it (or run hostctl rollback --reboot).")
				return nil
			}
			fmt.Fprintln(out, "Rebooting.")
			return u.Reboot(cmd.Context(), nil)
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot into the other slot now")
	return cmd
}
