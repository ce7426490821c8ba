package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
)

func newPullCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "pull IMAGE",
		Short: "Pull an image (tag or digest; linux/amd64 from multi-arch indexes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := hostd.NewEngineClient(d.Socket).Pull(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: pulled %s (%d layers)\n", args[0], im.ID, len(im.Layers))
			return nil
		},
	}
}
