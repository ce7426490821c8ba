package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
)

func newRmiCmd(d Deps) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi IMAGE...",
		Short: "Remove images (unused layers are collected)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := hostd.NewEngineClient(d.Socket)
			for _, ref := range args {
				if err := c.RemoveImage(cmd.Context(), ref, force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Untagged: %s\n", ref)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even if a container uses it")
	return cmd
}
