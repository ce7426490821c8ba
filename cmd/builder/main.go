// Command builder builds Bulkhead images, seed ISOs and update payloads.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/bulkhead-os/bulkhead/builder/cli"
	icli "github.com/bulkhead-os/bulkhead/internal/cli"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cmd := cli.NewRootCmd(cli.Deps{Log: log, Stdout: os.Stdout, Stderr: os.Stderr})
	icli.MarkUsageErrors(cmd)
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "builder:", err)
	}
	os.Exit(icli.ExitCode(err))
}
