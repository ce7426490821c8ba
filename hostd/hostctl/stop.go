package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
)

func newStopCmd(d Deps) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop CONTAINER...",
		Short: "Stop containers (SIGTERM, then SIGKILL after the timeout)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := hostd.NewEngineClient(d.Socket)
			for _, ref := range args {
				if err := c.Stop(cmd.Context(), ref, timeout); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing")
	return cmd
}
