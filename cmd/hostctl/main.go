// Command hostctl inspects and manages a Bulkhead host.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/bulkhead-os/bulkhead/hostd/hostctl"
	"github.com/bulkhead-os/bulkhead/internal/cli"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cmd := hostctl.NewRootCmd(hostctl.Deps{
		Log: log, Stdout: os.Stdout, Stderr: os.Stderr,
		Root: "/", Runner: run.Exec{Log: log}, Socket: "/run/hostd.sock",
	})
	cli.MarkUsageErrors(cmd)
	err := cmd.ExecuteContext(context.Background())
	var exit *hostctl.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "hostctl:", err)
	}
	os.Exit(cli.ExitCode(err))
}
