package hostctl

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// newVerifyUsrCmd is `hostctl verify-usr`: read the booted slot's /usr
// whole and check it against its root hash. dm-verity restarts the machine
// at the first bad block anything reads; this finds the blocks nothing has
// read yet, so a damaged slot is left for a good one rather than found one
// restart at a time.
func newVerifyUsrCmd(d Deps) *cobra.Command {
	var reboot bool
	cmd := &cobra.Command{
		Use:   "verify-usr",
		Short: "Check the booted /usr slot against its dm-verity root hash; leave a damaged one",
		Long: "Reads the booted slot's /usr data and hash partitions whole and checks them against\n" +
			"the root hash the kernel booted with (run by bulkhead-verify-usr.service at every\n" +
			"boot, before the slot is blessed). When they do not match, the slot's build is\n" +
			"recorded as corrupt and the boot moves away from it: a slot on trial gives up\n" +
			"its trial, a default slot hands over to the other slot if that holds its blessed\n" +
			"build. With --reboot, the host then reboots into it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			h := slots.Host{Root: d.Root}
			booted, err := h.Booted()
			if err != nil {
				return err
			}
			cerr := h.CheckBootedUsr(progressPrinter(cmd.ErrOrStderr()))
			if cerr != nil && !errors.Is(cerr, slots.ErrUsrCorrupt) {
				return cerr
			}
			// Both outcomes write the update state, and a failure the
			// GRUB environment: not under a running upgrade's feet.
			lock, err := updater.WaitLockFor(cmd.Context(), d.Root, blessLockWait)
			if err != nil {
				return err
			}
			defer lock.Unlock()
			if s, err := h.RecordGaveUp(); err != nil {
				return err
			} else if s != "" {
				fmt.Fprintf(out, "bulkhead: slot %s restarted %d boots running before its check; GRUB moved to slot %s\n", s, bootcfg.MaxBoots, booted)
			}
			if cerr == nil {
				fmt.Fprintf(out, "bulkhead: /usr of slot %s matches its root hash\n", booted)
				return h.UsrChecked()
			}
			fmt.Fprintf(out, "bulkhead: %v\n", cerr)
			st, outcome, err := h.FailBootedUsr(cerr)
			if err != nil {
				return fmt.Errorf("leaving damaged slot %s: %w", booted, err)
			}
			switch outcome {
			case bootcfg.TrialAbandoned:
				fmt.Fprintf(out, "bulkhead: slot %s gives up its trial; slot %s boots next\n", booted, st.Default)
			case bootcfg.SwitchedToOther:
				fmt.Fprintf(out, "bulkhead: slot %s holds a blessed build and is the default now\n", st.Default)
			default:
				return fmt.Errorf("slot %s: %w, and slot %s holds no blessed build to boot instead", booted, slots.ErrUsrCorrupt, booted.Other())
			}
			if reboot {
				fmt.Fprintf(out, "bulkhead: rebooting into slot %s\n", st.Default)
				if _, err := d.Runner.Run(cmd.Context(), run.Cmd{Name: "systemctl", Args: []string{"reboot", "--no-block"}}); err != nil {
					return fmt.Errorf("rebooting away from damaged slot %s: %w", booted, err)
				}
			}
			return fmt.Errorf("slot %s: %w", booted, slots.ErrUsrCorrupt)
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when the boot selection moved away from the booted slot")
	return cmd
}
