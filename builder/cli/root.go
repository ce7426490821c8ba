package cli

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// Deps is what the verbs need from main.
type Deps struct {
	Log    *slog.Logger
	Stdout io.Writer
	Stderr io.Writer
}

// NewRootCmd builds the builder command tree.
func NewRootCmd(d Deps) *cobra.Command {
	root := &cobra.Command{
		Use:           "builder",
		Short:         "Build Bulkhead images, seed ISOs and update payloads",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(d.Stdout)
	root.SetErr(d.Stderr)
	root.AddCommand(
		newBuildCmd(d),
		newSeedCmd(d),
		newKeygenCmd(d),
		newPublishCmd(d),
		newKeysCmd(d),
		newCacheCmd(d),
		newConvertCmd(d),
		newAMICmd(d),
	)
	return root
}
