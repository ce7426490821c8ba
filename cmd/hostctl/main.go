// Command hostctl inspects and manages a Bulkhead host.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/bulkhead-os/bulkhead/hostd/hostctl"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cmd := hostctl.NewRootCmd(hostctl.Deps{
		Log: log, Stdout: os.Stdout, Stderr: os.Stderr,
		Root: "/", Runner: run.Exec{Log: log}, Socket: "/run/hostd.sock",
	})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "hostctl:", err)
		os.Exit(1)
	}
}
