package cli

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

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
			name := args[0]
			if name == "" || filepath.Base(name) != name || name[0] == '.' {
				return fmt.Errorf("key name %q must be a plain file name", name)
			}
			keyPath := filepath.Join(dir, name+payload.PrivateExt)
			pubPath := filepath.Join(dir, name+payload.PublicExt)
			for _, p := range []string{keyPath, pubPath} {
				if _, err := os.Stat(p); err == nil {
					return fmt.Errorf("making key %s: %s exists; not overwriting a signing key", name, p)
				} else if !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("making key %s: %w", name, err)
				}
			}
			if comment == "" {
				comment = name
			}
			pub, priv, err := payload.GenerateKey(rand.Reader, comment)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("making key %s: %w", name, err)
			}
			// O_EXCL: two keygens racing must not both think they won.
			f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("writing %s: %w", keyPath, err)
			}
			if _, err := f.Write(priv); err != nil {
				f.Close()
				return fmt.Errorf("writing %s: %w", keyPath, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("writing %s: %w", keyPath, err)
			}
			if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", pubPath, err)
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
