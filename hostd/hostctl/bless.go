package hostctl

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// blessLockWait is how long bless waits for a running upgrade's write:
// writing and reading back a slot takes minutes on a slow disk, and the
// download no longer holds the lock.
const blessLockWait = 10 * time.Minute

func newBlessCmd(d Deps) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "bless",
		Short: "Mark the booted slot good (run by bulkhead-bless.service after boot-complete.target)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// An upgrade started right after boot rewrites the GRUB
			// environment too; bless waits for it rather than lose its
			// write or the upgrade's, for --lock-timeout at most.
			lock, err := updater.WaitLockFor(cmd.Context(), d.Root, wait)
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
	cmd.Flags().DurationVar(&wait, "lock-timeout", blessLockWait, "how long to wait for a running update to finish")
	return cmd
}
