package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
)

func newLogsCmd(d Deps) *cobra.Command {
	var follow, timestamps bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs [-f] CONTAINER",
		Short: "Print a container's logs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			return hostd.NewEngineClient(d.Socket).Logs(cmd.Context(), args[0], follow, tail, func(e logs.Entry) error {
				w := out
				if e.Stream == "stderr" {
					w = errw
				}
				if timestamps {
					fmt.Fprint(w, e.Time.Format("2006-01-02T15:04:05.000000000Z07:00")+" ")
				}
				_, err := fmt.Fprint(w, e.Log)
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the container stops")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with its time")
	cmd.Flags().IntVarP(&tail, "tail", "n", 0, "only the last N lines")
	return cmd
}
