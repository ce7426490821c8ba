package hostctl

import (
	"errors"
	"fmt"
	"io"

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
	var reboot, atBoot, cleanStop bool
	cmd := &cobra.Command{
		Use:   "verify-usr",
		Short: "Check the booted /usr slot against its dm-verity root hash; leave a damaged one",
		Long: "Reads the booted slot's /usr data and hash partitions whole and checks them against\n" +
			"the root hash the kernel booted with (run by bulkhead-verify-usr.service at every\n" +
			"boot; a slot on trial is checked by hostctl bless before it is blessed). When they\n" +
			"do not match, the slot's build is recorded as corrupt and the boot moves away from\n" +
			"it: a slot on trial gives up its trial, a default slot hands over to the other slot\n" +
			"if that holds its blessed build. With --reboot, the host then reboots into it.\n\n" +
			"With --boot (bulkhead-verify-usr.service) it reads /usr only when the previous boot\n" +
			"did not end in a clean shutdown (dm-verity's restart at a damaged block is such an\n" +
			"end; so is a power cut), and confirms this boot for GRUB's count either way;\n" +
			"--clean-stop (the service's stop at shutdown) records the clean end.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := slots.Host{Root: d.Root}
			if cleanStop {
				return h.MarkCleanStop()
			}
			booted, err := h.Booted()
			if err != nil {
				return err
			}
			unclean := true
			if atBoot {
				if unclean, err = h.MarkRunning(); err != nil {
					return err
				}
			}
			if st, _, err := h.BootState(); err == nil && st.OnTrial(booted) {
				fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: slot %s is on trial: hostctl bless checks its /usr before blessing it\n", booted)
				return nil
			}
			var cerr error
			if atBoot && !unclean {
				fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: the previous boot ended cleanly: /usr of slot %s not read\n", booted)
			} else {
				if atBoot {
					fmt.Fprintf(cmd.OutOrStdout(), "bulkhead: the previous boot did not end cleanly: checking /usr of slot %s\n", booted)
				}
				cerr = h.CheckBootedUsr(progressPrinter(cmd.ErrOrStderr()))
			}
			// Every outcome writes the update state or the GRUB
			// environment: not under a running upgrade's feet.
			lock, err := updater.WaitLockFor(cmd.Context(), d.Root, blessLockWait)
			if err != nil {
				return err
			}
			defer lock.Unlock()
			// Usually done early in boot (record-trial); a boot that
			// skipped it must not lose GRUB's note, cleared below.
			if _, err := h.RecordGaveUp(); err != nil {
				return err
			}
			if (atBoot && !unclean) || (cerr != nil && !errors.Is(cerr, slots.ErrUsrCorrupt)) {
				// Nothing read, or not a damaged slot: the boot got this
				// far, which is what GRUB's count is about.
				if err := h.ConfirmBoot(); err != nil {
					return errors.Join(cerr, fmt.Errorf("confirming the boot: %w", err))
				}
				return cerr
			}
			return usrChecked(cmd, d, h, cerr, reboot)
		},
	}
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when the boot selection moved away from the booted slot")
	cmd.Flags().BoolVar(&atBoot, "boot", false, "check only when the previous boot did not end cleanly (the boot-time service)")
	cmd.Flags().BoolVar(&cleanStop, "clean-stop", false, "record that this boot ends cleanly (the service's stop at shutdown)")
	cmd.MarkFlagsMutuallyExclusive("boot", "clean-stop")
	return cmd
}

// usrChecked acts on the outcome cerr of CheckBootedUsr, with the update
// lock held: a sound slot is recorded so; a damaged one is recorded corrupt
// and the boot moves away from it where it can, rebooting with reboot. It
// returns an error wrapping slots.ErrUsrCorrupt for a damaged slot.
func usrChecked(cmd *cobra.Command, d Deps, h slots.Host, cerr error, reboot bool) error {
	out := cmd.OutOrStdout()
	booted, err := h.Booted()
	if err != nil {
		return err
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
	if err := reportMove(out, booted, st, outcome); err != nil {
		return err
	}
	if reboot {
		fmt.Fprintf(out, "bulkhead: rebooting into slot %s\n", st.Default)
		if _, err := d.Runner.Run(cmd.Context(), run.Cmd{Name: "systemctl", Args: []string{"reboot", "--no-block"}}); err != nil {
			return fmt.Errorf("rebooting away from damaged slot %s: %w", booted, err)
		}
	}
	return fmt.Errorf("slot %s: %w", booted, slots.ErrUsrCorrupt)
}

// reportMove says where the boot went from a damaged slot.
func reportMove(out io.Writer, booted bootcfg.Slot, st bootcfg.State, outcome bootcfg.CheckOutcome) error {
	switch outcome {
	case bootcfg.TrialAbandoned:
		fmt.Fprintf(out, "bulkhead: slot %s gives up its trial; slot %s boots next\n", booted, st.Default)
	case bootcfg.SwitchedToOther:
		fmt.Fprintf(out, "bulkhead: slot %s holds a blessed build and is the default now\n", st.Default)
	default:
		return fmt.Errorf("slot %s: %w, and slot %s holds no blessed build to boot instead", booted, slots.ErrUsrCorrupt, booted.Other())
	}
	return nil
}
