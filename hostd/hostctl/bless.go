package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

func newBlessCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "bless",
		Short: "Mark the booted slot good (run by bulkhead-bless.service after boot-complete.target)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// An upgrade started right after boot rewrites the GRUB
			// environment too; bless waits for it rather than lose its
			// write or the upgrade's.
			lock, err := updater.WaitLock(cmd.Context(), d.Root)
			if err != nil {
				return err
			}
			defer lock.Unlock()
			h := slots.Host{Root: d.Root}
			booted, err := h.Booted()
			if err != nil {
				return err
			}
			outcome, err := h.Bless()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: slot %s healthy: %s\n", booted, outcome)
			return nil
		},
	}
}
