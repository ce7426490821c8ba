package hostctl

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

func newInspectCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Print containers' records as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := hostd.NewEngineClient(d.Socket)
			var out []engine.Container
			for _, ref := range args {
				ctr, err := c.Inspect(cmd.Context(), ref)
				if err != nil {
					return err
				}
				out = append(out, ctr)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
}
