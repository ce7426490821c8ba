// Command hostd is the Bulkhead host daemon.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	// libcontainer's C constructor: when this binary is re-executed as a
	// container's init (or an exec'd process), it joins the namespaces
	// before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/hostctl"
	"github.com/bulkhead-os/bulkhead/internal/cli"
)

func main() {
	// One binary for both commands in the image: /usr/bin/hostctl is a
	// link to hostd (see hostctl.Main).
	if filepath.Base(os.Args[0]) == "hostctl" {
		os.Exit(hostctl.Main())
	}
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libct.Init() // a container's init: never returns
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cmd := hostd.NewRootCmd(log, libct.New)
	cli.MarkUsageErrors(cmd)
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostd:", err)
	}
	os.Exit(cli.ExitCode(err))
}
