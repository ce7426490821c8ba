package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
)

// newRollbackCmd is `hostctl rollback`: make the other slot the default if
// the build in it booted and was blessed; otherwise refuse with its state,
// or with --force put it on trial. It writes only the GRUB environment (and
// the pin that holds the periodic updater), so it works when hostd is down.
func newRollbackCmd(d Deps) *cobra.Command {
	var o updater.RollbackOptions
	var rb rebootFlags
	cmd := &cobra.Command{
		Use:   "rollback [--force [--allow-bad VERSION]] [--reboot [--now]]",
		Short: "Go back to the other slot's blessed version (holds periodic updates until unpinned)",
		Long: "Makes the other slot the default when the build in it booted and was blessed. A slot that\n" +
			"never proved itself is refused with its state; --force puts it on trial for " + fmt.Sprint(bootcfg.DefaultTries) + " boots instead,\n" +
			"keeping the booted slot as GRUB's fallback. The rolled-back version is pinned: periodic\n" +
			"updates leave it alone until `hostctl update unpin`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.AllowBad != "" && !o.Force {
				return usageError(cmd, "--allow-bad needs --force")
			}
			u := &updater.Updater{Root: d.Root, Runner: d.Runner, Log: d.Log}
			r, err := u.Rollback(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case r.Trial:
				fmt.Fprintf(out, "Slot %s (version %s, %s) is on trial for %d boots; slot %s stays the default.\n", r.To, r.Version, r.State, bootcfg.DefaultTries, r.From)
			case r.Changed:
				fmt.Fprintf(out, "Slot %s (version %s) is now the default; slot %s stays as it is.\n", r.To, r.Version, r.From)
			default:
				fmt.Fprintf(out, "Slot %s (version %s) already is the default.\n", r.To, r.Version)
			}
			fmt.Fprintf(out, "Periodic updates hold version %s until hostctl update unpin.\n", r.Version)
			if !rb.reboot {
				fmt.Fprintln(out, "Reboot to use it (or run hostctl rollback --reboot).")
				return nil
			}
			return rb.run(cmd, d, u)
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "put a slot that never booted and was blessed on trial instead of refusing")
	cmd.Flags().StringVar(&o.AllowBad, "allow-bad", "", "with --force: accept this recorded-bad `VERSION`")
	rb.add(cmd, "reboot into the other slot")
	return cmd
}
