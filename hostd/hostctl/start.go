package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
)

func newStartCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "start CONTAINER...",
		Short: "Start stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := hostd.NewEngineClient(d.Socket)
			for _, ref := range args {
				if err := c.Start(cmd.Context(), ref); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return nil
		},
	}
}
