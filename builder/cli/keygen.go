package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/builder"
	"github.com/bulkhead-os/bulkhead/updater/payload"
)

// newKeygenCmd is `builder keygen`: an ed25519 key pair for signing update
// manifests. The .pub file goes into the image (the definition names it and
// the builder copies it to /usr/lib/bulkhead/keys/); the .key file stays
// with whoever publishes.
func newKeygenCmd(d Deps) *cobra.Command {
	var dir, comment string
	cmd := &cobra.Command{
		Use:   "keygen [--dir DIR] [--comment TEXT] NAME",
		Short: "Make an ed25519 key pair for signing updates (NAME.key, NAME.pub)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keyPath, pubPath, err := builder.GenerateSigningKey(dir, args[0], comment)
			if err != nil {
				return err
			}
			pub, err := os.ReadFile(pubPath)
			if err != nil {
				return err
			}
			k, _ := payload.ParsePublicKey(pub)
			fmt.Fprintf(cmd.OutOrStdout(), "signing key: %s (keep it secret)\npublic key:  %s (key id %s)\n", keyPath, pubPath, k.ID())
			d.Log.Info("update signing key made", "key", keyPath, "id", k.ID())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory for NAME.key and NAME.pub")
	cmd.Flags().StringVar(&comment, "comment", "", "comment stored with the key (default NAME)")
	return cmd
}
