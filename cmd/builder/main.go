// Command builder builds Bulkhead images, seed ISOs and update payloads.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/bulkhead-os/bulkhead/builder/cli"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := cli.NewRootCmd(cli.Deps{Log: log, Stdout: os.Stdout, Stderr: os.Stderr}).ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "builder:", err)
		os.Exit(1)
	}
}
