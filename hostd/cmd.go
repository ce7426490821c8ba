package hostd

import (
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater"
)

// NewRootCmd is the hostd command: with no verb it runs the daemon. rt is
// the container runtime for the engine (libct.New in cmd/hostd; it needs
// cgo, so it is handed in); without one the engine is off.
func NewRootCmd(log *slog.Logger, rt ...runtime.Factory) *cobra.Command {
	cfg := Config{Root: "/", Socket: "/run/hostd.sock", Log: log}
	var root string
	var eng EngineOptions
	var updateChecks bool
	cmd := &cobra.Command{
		Use:           "hostd",
		Short:         "The Bulkhead host daemon",
		Version:       Version,
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
					defer closeEngine(e, run.Exec{Log: log}, log)
				}
			}
			if updateChecks {
				// The updater waits for the boot to be blessed, tells the
				// reboot strategy the host is steady, then checks the
				// channel periodically when /etc/bulkhead/update.yaml
				// names a repository. One writer at a time: it takes the
				// same lock as hostctl upgrade.
				u := &updater.Updater{Root: cfg.Root, Runner: run.Exec{Log: log}, Log: log}
				go func() {
					if err := u.RunPeriodic(ctx, updater.Schedule{}); err != nil && ctx.Err() == nil {
						log.Error("periodic update checks stopped", "err", err)
					}
				}()
			}
			return srv.Serve(ctx, l)
		},
	}
	cmd.Flags().BoolVar(&updateChecks, "update-checks", true, "run the updater: steady-state report and periodic checks when configured")
	eng.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&cfg.Socket, "socket", cfg.Socket, "API socket path")
	cmd.Flags().StringVar(&root, "root", "/", "filesystem root (for tests)")
	cmd.Flags().IntVar(&cfg.AllowUID, "allow-uid", 0, "the one peer uid allowed on the socket")
	return cmd
}
