package hostctl

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
	"github.com/bulkhead-os/bulkhead/updater/reboot/etcdlock"
)

// newRebootLockCmd is `hostctl reboot-lock status|release`: the operator's
// view of the fleet reboot lock configured in /etc/bulkhead/update.yaml.
func newRebootLockCmd(d Deps) *cobra.Command {
	var id, group string
	cmd := &cobra.Command{
		Use:   "reboot-lock",
		Short: "Show or release fleet reboot-lock holders (etcd-lock, FleetLock)",
	}
	cmd.PersistentFlags().StringVar(&group, "group", "", "lock group (default: the configured one)")
	operator := func() (reboot.Operator, error) {
		cfg, err := updater.LoadConfig(d.Root)
		if err != nil {
			return reboot.Operator{}, err
		}
		return reboot.Operator{Root: d.Root, Cfg: cfg.Config}, nil
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the strategy, this host's id and the group's holders",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			op, err := operator()
			if err != nil {
				return err
			}
			return op.Status(cmd.Context(), cmd.OutOrStdout(), group)
		},
	}
	release := &cobra.Command{
		Use:   "release",
		Short: "Release a holder's slot (a dead host's with --id; this host's by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			op, err := operator()
			if err != nil {
				return err
			}
			who, err := op.Release(cmd.Context(), id, group)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %s\n", who)
			return nil
		},
	}
	release.Flags().StringVar(&id, "id", "", "holder id to release (default: this host's)")
	setMax := &cobra.Command{
		Use:   "set-max N",
		Short: "Let at most N hosts of the etcd-lock group reboot at once (hosts only read this)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return usageError(cmd, fmt.Sprintf("N: %q is not a whole number >= 1", args[0]))
			}
			op, err := operator()
			if err != nil {
				return err
			}
			g := group
			if !cmd.Flags().Changed("group") && op.Cfg.Etcd != nil {
				g = op.Cfg.Etcd.Group
			}
			if err := op.SetMax(cmd.Context(), g, n); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "group %q (%s): at most %d hosts reboot at once\n", g, etcdlock.Key(g), n)
			return nil
		},
	}
	cmd.AddCommand(status, release, setMax)
	return cmd
}
