package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/internal/cli"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
)

// rebootFlags are --reboot and --now of upgrade and rollback.
type rebootFlags struct {
	reboot, now bool
}

func (f *rebootFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&f.reboot, "reboot", false, what+" through the configured reboot strategy (fleetlock, etcd-lock, window)")
	cmd.Flags().BoolVar(&f.now, "now", false, "with --reboot: reboot at once, without the reboot strategy")
}

// run reboots: through update.yaml's strategy (waiting for the window or
// the fleet lock, as hostd's periodic updater does), or at once with --now.
func (f *rebootFlags) run(cmd *cobra.Command, d Deps, u *updater.Updater) error {
	out := cmd.OutOrStdout()
	if f.now {
		fmt.Fprintln(out, "Rebooting now.")
		return u.Reboot(cmd.Context(), nil)
	}
	cfg, err := updater.LoadConfig(d.Root)
	if err != nil {
		return fmt.Errorf("reading the reboot strategy (--now reboots without it): %w", err)
	}
	s, err := reboot.New(cfg.Config, reboot.Options{Root: d.Root, Log: d.Log})
	if err != nil {
		return fmt.Errorf("building the reboot strategy (--now reboots without it): %w", err)
	}
	defer s.Close()
	fmt.Fprintf(out, "Rebooting through the %s reboot strategy.\n", s.Name())
	return u.Reboot(cmd.Context(), s)
}

// usageError is a command-line mistake: main exits 2 on it.
func usageError(cmd *cobra.Command, msg string) error {
	return cli.UsageError{Err: fmt.Errorf("%s: %s", cmd.CommandPath(), msg)}
}
