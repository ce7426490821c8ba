package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

// Main is `hostd-launch launch ARGS` (ARGS as shim.Config.Args renders them): it
// starts the container and reports to the shim on shim.LaunchReportFD.
func Main(ctx context.Context, args []string, newRuntime runtime.Factory) error {
	pid, err := run(ctx, args, newRuntime)
	shim.ReportLaunch(pid, err)
	return err
}

func run(ctx context.Context, args []string, newRuntime runtime.Factory) (int, error) {
	c, err := shim.ParseArgs(args)
	if err != nil {
		return 0, err
	}
	// The runtime's children get what they are handed, nothing more: the
	// report must not be held open (the shim reads it to its end).
	for fd := shim.LaunchReportFD; fd <= shim.LaunchStdioFD+2; fd++ {
		unix.CloseOnExec(fd)
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, shim.SpecFile))
	if err != nil {
		return 0, fmt.Errorf("launching %s: %w", c.ID, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return 0, fmt.Errorf("launching %s: parsing %s: %w", c.ID, shim.SpecFile, err)
	}
	if spec.Process == nil {
		return 0, fmt.Errorf("launching %s: %s has no process", c.ID, shim.SpecFile)
	}
	files := runtime.Files{
		Stdin:  os.NewFile(shim.LaunchStdioFD, "stdin"),
		Stdout: os.NewFile(shim.LaunchStdioFD+1, "stdout"),
		Stderr: os.NewFile(shim.LaunchStdioFD+2, "stderr"),
	}
	if spec.Process.Terminal {
		files.Console = os.NewFile(shim.LaunchConsoleFD, "console")
	}
	return newRuntime(c.StateRoot).Launch(ctx, c.ID, &spec, files)
}
