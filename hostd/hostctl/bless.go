package hostctl

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootchain"
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
		Short: "Mark the booted slot good (run by bulkhead-bless.service after boot-complete.target); a slot on trial after its /usr passes its check",
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
			// A slot on trial is blessed only once its /usr is read whole
			// and found sound; a damaged one gives up its trial and the
			// host reboots to the default (bulkhead-verify-usr checks the
			// default's own boots, in the background).
			st, _, err := h.BootState()
			if err != nil {
				return err
			}
			if st.OnTrial(booted) {
				cerr := h.CheckBootedUsr(progressPrinter(cmd.ErrOrStderr()))
				if cerr != nil && !errors.Is(cerr, slots.ErrUsrCorrupt) {
					return cerr
				}
				if err := usrChecked(cmd, d, h, cerr, true); err != nil {
					return err
				}
			}
			outcome, err := h.Bless()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: slot %s healthy: %s\n", booted, outcome)
			// The boot chain installed with the update booted this host
			// (unless it was installed in this very boot): its previous
			// files are no longer the way back. Keeping them a while
			// longer harms nothing, so a failure does not fail the bless.
			if dropped, err := bootchain.DropPrevious(h.ESP(), updater.BootID(d.Root)); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "bulkhead: keeping the previous boot chain: %v\n", err)
			} else if dropped {
				fmt.Fprintln(cmd.OutOrStdout(), "bulkhead: previous boot chain dropped")
			}
			// A version staged by an updater from before boot chain
			// updates boots on the chain it left: this one installs its
			// own (and a new image records its chain). The host is
			// blessed either way; a failure is for the operator.
			u := &updater.Updater{Root: d.Root, Runner: d.Runner, Log: d.Log}
			if r, err := u.BlessBootChain(cmd.Context()); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "bulkhead: installing the booted version's boot chain: %v (hostctl bootloader update retries)\n", err)
			} else if r != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: boot chain of %s installed: %s -> %s\n", r.Version, r.From, r.To)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "lock-timeout", blessLockWait, "how long to wait for a running update to finish")
	return cmd
}
