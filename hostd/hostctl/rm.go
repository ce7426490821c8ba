package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
)

func newRmCmd(d Deps) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm CONTAINER...",
		Short: "Remove containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := hostd.NewEngineClient(d.Socket)
			for _, ref := range args {
				if err := c.Remove(cmd.Context(), ref, force); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return cmd
}
