package hostd

import (
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// NewRootCmd is the hostd command: with no verb it runs the daemon. rt is
// the container runtime for the engine (libct.New in cmd/hostd; it needs
// cgo, so it is handed in); without one the engine is off.
func NewRootCmd(log *slog.Logger, rt ...runtime.Factory) *cobra.Command {
	cfg := Config{Root: "/", Socket: "/run/hostd.sock", Log: log}
	var root string
	var eng EngineOptions
	cmd := &cobra.Command{
		Use:           "hostd",
		Short:         "The Bulkhead host daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Root = fsroot.Root(root)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			l, err := Listen(cfg.Socket, cfg.AllowUID)
			if err != nil {
				return err
			}
			srv := New(cfg)
			if eng.Enabled && len(rt) > 0 {
				eng.Runtime = rt[0]
				if e, err := startEngine(ctx, srv, cfg.Root, eng, log); err != nil {
					log.Error("container engine unavailable", "err", err)
				} else {
					defer e.Close()
				}
			}
			return srv.Serve(ctx, l)
		},
	}
	eng.AddFlags(cmd.Flags())
	if len(rt) > 0 {
		cmd.AddCommand(newShimCmd(rt[0]))
	}
	cmd.Flags().StringVar(&cfg.Socket, "socket", cfg.Socket, "API socket path")
	cmd.Flags().StringVar(&root, "root", "/", "filesystem root (for tests)")
	cmd.Flags().IntVar(&cfg.AllowUID, "allow-uid", 0, "the one peer uid allowed on the socket")
	return cmd
}
