package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
	"github.com/bulkhead-os/bulkhead/updater/repo"
)

// SigningKeyEnv names the signing key file when --key is not given.
const SigningKeyEnv = "BULKHEAD_SIGNING_KEY"

// newPublishCmd is `builder publish`: a built version's payload and signed
// manifest into an update repository of plain files (layout: updater/repo).
func newPublishCmd(d Deps) *cobra.Command {
	var repoDir, channel, keyFile, minFrom, rolloutFor string
	cmd := &cobra.Command{
		Use:   "publish --repo DIR [--channel stable] [--key FILE] [--min-from VERSION] [--rollout DURATION] out/<name>",
		Short: "Add a built version to an update repository and point a channel at it",
		Long: "Copies the slot image, its verity hash tree, kernel and initrd of out/<name> into\n" +
			"DIR/versions/<version>/, writes manifest.json signed with the ed25519 key\n" +
			"(--key, or $" + SigningKeyEnv + ") and points DIR/channels/<channel>.json at it.\n" +
			"Serve DIR with any HTTP server. --channel '' publishes without moving a channel.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoDir == "" {
				return fmt.Errorf("publish needs --repo")
			}
			if keyFile == "" {
				keyFile = os.Getenv(SigningKeyEnv)
			}
			if keyFile == "" {
				return fmt.Errorf("publish needs a signing key: --key FILE or $%s (make one with builder keygen)", SigningKeyEnv)
			}
			key, err := payload.ReadPrivateKey(keyFile)
			if err != nil {
				return err
			}
			o := repo.PublishOptions{Repo: repoDir, Channel: channel, OutDir: args[0], Key: key, MinFrom: minFrom, Log: d.Log}
			if rolloutFor != "" {
				dur, err := time.ParseDuration(rolloutFor)
				if err != nil || dur <= 0 {
					return fmt.Errorf("--rollout %q: want a positive duration such as 48h", rolloutFor)
				}
				o.Rollout = &rollout.Rollout{Start: time.Now().UTC().Truncate(time.Second), Duration: dur}
			}
			m, err := repo.Publish(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %s %s to %s", m.Name, m.Version, repoDir)
			if channel != "" {
				fmt.Fprintf(cmd.OutOrStdout(), " (channel %s)", channel)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&repoDir, "repo", "", "update repository directory (created if missing)")
	fl.StringVar(&channel, "channel", "stable", "channel to point at the version")
	fl.StringVar(&keyFile, "key", "", "ed25519 signing key from builder keygen (default $"+SigningKeyEnv+")")
	fl.StringVar(&minFrom, "min-from", "", "oldest version allowed to update to this one")
	fl.StringVar(&rolloutFor, "rollout", "", "spread the release over this long from now (e.g. 48h)")
	return cmd
}
