package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newTrialRebootCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "trial-reboot",
		Short: "Reboot if the booted slot is on trial; do nothing otherwise",
		Long: "Run when a boot went wrong in a way the health gate never sees: emergency or\n" +
			"rescue mode, or hostd failing for good. During a slot's trial it reboots, so GRUB\n" +
			"counts the try down and falls back to the good slot when the tries are used up;\n" +
			"a blessed slot stays up for the operator.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rebooted, err := rebootIfTrial(cmd.Context(), d, cmd.OutOrStdout())
			if err != nil {
				return fmt.Errorf("checking for a trial boot: %w", err)
			}
			if !rebooted {
				fmt.Fprintln(cmd.OutOrStdout(), "bulkhead: the booted slot is not on trial: staying up")
			}
			return nil
		},
	}
}
