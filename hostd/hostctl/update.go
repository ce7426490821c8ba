package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// newUpdateCmd is `hostctl update`: the operator's intent for the periodic
// updater (pin, unpin), the bad-version record (forget-bad), and the early
// boot step that records a failed trial (record-trial).
func newUpdateCmd(d Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Pin the version periodic updates keep, and manage failed versions",
	}
	pin := &cobra.Command{
		Use:   "pin VERSION",
		Short: "Hold periodic updates at VERSION (staged if not installed) until unpin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := &updater.Updater{Root: d.Root, Log: d.Log}
			if err := u.Hold(updater.Pin{Version: args[0], Reason: "hostctl update pin"}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Periodic updates hold version %s until hostctl update unpin.\n", args[0])
			return nil
		},
	}
	unpin := &cobra.Command{
		Use:   "unpin",
		Short: "Let periodic updates follow the channel again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			had, err := updater.Unpin(d.Root)
			if err != nil {
				return err
			}
			if had {
				fmt.Fprintln(cmd.OutOrStdout(), "Unpinned: periodic updates follow the channel.")
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "No pin was set.")
			}
			return nil
		},
	}
	forget := &cobra.Command{
		Use:   "forget-bad VERSION",
		Short: "Clear VERSION's failed-trial record so that it may be staged again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := (slots.Host{Root: d.Root}).ForgetBad(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Version %s is no longer recorded bad.\n", args[0])
			return nil
		},
	}
	record := &cobra.Command{
		Use:   "record-trial",
		Short: "Record a failed trial's version as bad, and a slot GRUB gave up on as failing (run early in boot by bulkhead-record-trial.service)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := slots.Host{Root: d.Root}
			v, err := h.RecordFailedTrial()
			if err != nil {
				return fmt.Errorf("recording a failed trial: %w", err)
			}
			if v != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: the trial of version %s failed: recorded bad, it will not be staged again\n", v)
			}
			s, err := h.RecordGaveUp()
			if err != nil {
				return fmt.Errorf("recording the slot GRUB gave up on: %w", err)
			}
			if s != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: slot %s restarted %d boots running before its /usr check; GRUB moved the default away from it\n", s, bootcfg.MaxBoots)
			}
			return nil
		},
	}
	cmd.AddCommand(pin, unpin, forget, record)
	return cmd
}
