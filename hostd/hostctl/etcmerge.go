package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater/etcmerge"
)

// newEtcMergeCmd is `hostctl etc-merge`, run early at every boot by
// bulkhead-etc-merge.service: the three-way merge of /etc with the booted
// version's factory defaults.
func newEtcMergeCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "etc-merge",
		Short: "Merge /etc with the booted version's defaults (run at boot by bulkhead-etc-merge.service)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := etcmerge.Run(cmd.Context(), d.Root, d.Log)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if rep.Unchanged {
				fmt.Fprintln(out, "/etc already merged with this /usr's defaults")
				return nil
			}
			for _, c := range rep.Changes {
				if c.Reason != "" {
					fmt.Fprintf(out, "%-9s /etc/%s: %s\n", c.Action, c.Path, c.Reason)
				} else {
					fmt.Fprintf(out, "%-9s /etc/%s\n", c.Action, c.Path)
				}
			}
			fmt.Fprintf(out, "/etc merged: %d changes, %d conflicts\n", len(rep.Changes), len(rep.Conflicts()))
			return nil
		},
	}
}
