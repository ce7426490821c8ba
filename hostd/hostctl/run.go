package hostctl

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/logs"
)

func newRunCmd(d Deps) *cobra.Command {
	var s engine.ContainerSpec
	var detach, interactive bool
	var entrypoint string
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND [ARG...]]",
		Short: "Create and start a container (pulling its image if needed)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Image = args[0]
			if len(args) > 1 {
				s.Command = args[1:]
			}
			if entrypoint != "" {
				s.Entrypoint = []string{entrypoint}
			}
			// As docker run -i: attached, the input's end is the
			// container's; detached, its stdin stays open for attaches.
			s.OpenStdin, s.StdinOnce = interactive, interactive && !detach
			c := hostd.NewEngineClient(d.Socket)
			ctr, err := c.Create(cmd.Context(), s, detach)
			if err != nil {
				return err
			}
			if detach {
				fmt.Fprintln(cmd.OutOrStdout(), ctr.ID)
				return nil
			}
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var stdin io.Reader
			if interactive {
				stdin = cmd.InOrStdin()
			}
			code, err := c.Attach(cmd.Context(), ctr.ID, stdin, func(e logs.Entry) error {
				w := out
				if e.Stream == "stderr" {
					w = errw
				}
				_, err := fmt.Fprint(w, e.Log)
				return err
			})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after IMAGE belong to the command
	f.StringVar(&s.Name, "name", "", "container name")
	f.BoolVarP(&detach, "detach", "d", false, "print the id and return")
	f.BoolVarP(&interactive, "interactive", "i", false, "feed standard input to the container")
	f.BoolVar(&s.AutoRemove, "rm", false, "remove the container when it exits")
	f.StringArrayVarP((*[]string)(&s.Env), "env", "e", nil, "KEY=VALUE (repeatable)")
	f.StringArrayVarP(&s.Ports, "publish", "p", nil, "[ip:][hostPort:]containerPort[/proto], no host port for a free one (repeatable)")
	f.BoolVarP(&s.PublishAll, "publish-all", "P", false, "publish every exposed port on a free host port")
	f.StringArrayVar(&s.Expose, "expose", nil, "expose a port (80, 53/udp) in addition to the image's (repeatable)")
	f.StringArrayVarP(&s.Volumes, "volume", "v", nil, "/host:/path[:ro] or name:/path (repeatable)")
	f.StringVarP(&s.Workdir, "workdir", "w", "", "working directory")
	f.StringVarP(&s.User, "user", "u", "", "user[:group]")
	f.StringVar(&s.Restart, "restart", "", "no, always, unless-stopped, on-failure[:N]")
	f.StringVar(&entrypoint, "entrypoint", "", "override the image's entrypoint")
	f.StringVar(&s.Network, "network", "", "bridge, host or none")
	f.StringVar(&s.Limits.Memory, "memory", "", "memory limit (512m, 1g)")
	f.Float64Var(&s.Limits.CPUs, "cpus", 0, "CPU limit")
	f.Int64Var(&s.Limits.Pids, "pids-limit", 0, "process limit")
	f.BoolVar(&s.ReadOnly, "read-only", false, "read-only root filesystem")
	f.StringVar(&s.Hostname, "hostname", "", "hostname")
	return cmd
}

// ExitError carries a container's or exec's exit code to main.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode makes ExitError a cli.CodeError: hostctl exits with the code.
func (e *ExitError) ExitCode() int { return e.Code }
