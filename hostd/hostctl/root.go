package hostctl

import (
	"io"
	"log/slog"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/hostd"
)

// Deps is what the verbs need from main. Root is "/" on a host.
type Deps struct {
	Log    *slog.Logger
	Stdout io.Writer
	Stderr io.Writer
	Root   fsroot.Root
	Runner run.Runner
	// Socket is hostd's API socket (/run/hostd.sock).
	Socket string
}

// NewRootCmd builds the hostctl command tree.
func NewRootCmd(d Deps) *cobra.Command {
	root := &cobra.Command{
		Use:           "hostctl",
		Short:         "Inspect and manage a Bulkhead host",
		Version:       hostd.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(d.Stdout)
	root.SetErr(d.Stderr)
	root.AddCommand(
		newStatusCmd(d),
		newBlessCmd(d),
		newHealthCmd(d),
		newTrialRebootCmd(d),
		newRebootLockCmd(d),
		newProvisionCmd(d),
		newUpgradeCmd(d),
		newRollbackCmd(d),
		newRepairBootCmd(d),
		newBootloaderCmd(d),
		newVerifyUsrCmd(d),
		newIdentityCmd(d),
		newUpdateCmd(d),
		newEtcMergeCmd(d),
		newRunCmd(d),
		newPsCmd(d),
		newLogsCmd(d),
		newStopCmd(d),
		newStartCmd(d),
		newRmCmd(d),
		newExecCmd(d),
		newInspectCmd(d),
		newPullCmd(d),
		newImagesCmd(d),
		newRmiCmd(d),
		newStorageSetupCmd(d),
	)
	return root
}
