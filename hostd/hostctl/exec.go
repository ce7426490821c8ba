package hostctl

import (
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
)

func newExecCmd(d Deps) *cobra.Command {
	var r hostd.ExecRequest
	var interactive bool
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Args = args[1:]
			r.Stdout, r.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if interactive {
				var in io.Reader = os.Stdin
				if cmd.InOrStdin() != nil {
					in = cmd.InOrStdin()
				}
				r.Stdin = in
			}
			code, err := hostd.NewEngineClient(d.Socket).Exec(cmd.Context(), args[0], r)
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
	f.SetInterspersed(false)
	f.BoolVarP(&interactive, "interactive", "i", false, "pass standard input")
	f.BoolVarP(&r.Tty, "tty", "t", false, "give the command a terminal")
	f.StringArrayVarP(&r.Env, "env", "e", nil, "KEY=VALUE (repeatable)")
	f.StringVarP(&r.User, "user", "u", "", "user[:group]")
	f.StringVarP(&r.Workdir, "workdir", "w", "", "working directory")
	return cmd
}
