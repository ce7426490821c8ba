package hostctl

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
)

func newPsCmd(d Deps) *cobra.Command {
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrs, err := hostd.NewEngineClient(d.Socket).List(cmd.Context(), all)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(ctrs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tSTATUS\tPORTS\tNAMES")
			for _, c := range ctrs {
				fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%s\n", c.ID[:12], c.Spec.Image, strings.Join(c.Args, " "), status(c), portsColumn(c), c.Name)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include stopped containers")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// status is the STATUS column, as docker ps words it.
func status(c engine.Container) string {
	switch c.State {
	case engine.StateRunning:
		s := "Up " + time.Since(c.StartedAt).Round(time.Second).String()
		if c.Health != "" {
			s += " (" + c.Health + ")"
		}
		return s
	case engine.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, time.Since(c.FinishedAt).Round(time.Second))
	}
	return "Created"
}

// portsColumn shows a running container's published ports as docker ps
// does (random host ports resolved), else the ports asked for.
func portsColumn(c engine.Container) string {
	if len(c.Ports) == 0 {
		return strings.Join(c.Spec.Ports, ",")
	}
	var out []string
	for _, p := range c.Ports {
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", ip, p.HostPort, p.ContainerPort, p.Proto))
	}
	return strings.Join(out, ",")
}
