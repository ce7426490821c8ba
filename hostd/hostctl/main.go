package hostctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/bulkhead-os/bulkhead/internal/cli"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Main runs hostctl on the real host with os.Args and returns its exit
// code. cmd/hostctl calls it, and so does the hostd binary when it is run
// under the name hostctl: the image ships one multi-call binary, so a boot
// loads (and dm-verity checks) one Go binary's pages, not two.
func Main() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cmd := NewRootCmd(Deps{
		Log: log, Stdout: os.Stdout, Stderr: os.Stderr,
		Root: "/", Runner: run.Exec{Log: log}, Socket: "/run/hostd.sock",
	})
	cmd.SetArgs(os.Args[1:])
	cli.MarkUsageErrors(cmd)
	err := cmd.ExecuteContext(context.Background())
	var exit *ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "hostctl:", err)
	}
	return cli.ExitCode(err)
}
