package cli

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater/delta/chunker"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
	"github.com/bulkhead-os/bulkhead/updater/repo"
)

// SigningKeyEnv names the signing key file when --key is not given.
const SigningKeyEnv = "BULKHEAD_SIGNING_KEY"

// readKeys loads every --key file, or $SigningKeyEnv when none is given.
func readKeys(files []string) ([]ed25519.PrivateKey, error) {
	if len(files) == 0 {
		if f := os.Getenv(SigningKeyEnv); f != "" {
			files = []string{f}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("publish needs a signing key: --key FILE or $%s (make one with builder keygen)", SigningKeyEnv)
	}
	var keys []ed25519.PrivateKey
	for _, f := range files {
		k, err := payload.ReadPrivateKey(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// newPublishCmd is `builder publish`: a built version's payload into an
// update repository of plain files (layout: updater/repo), signed TUF
// metadata and the pre-TUF signed manifest and channel file.
func newPublishCmd(d Deps) *cobra.Command {
	var repoDir, channel, minFrom, rolloutFor string
	var keyFiles []string
	var refresh, noChunks bool
	var exp repo.Expiry
	cmd := &cobra.Command{
		Use: "publish --repo DIR [--channel stable] [--key FILE]... [--min-from VERSION] [--rollout DURATION] out/<name>\n" +
			"  publish --repo DIR --refresh-timestamp [--key FILE]...",
		Short: "Add a built version to an update repository and point a channel at it",
		Long: "Copies the slot image, its verity hash tree, kernel and initrd of out/<name> (and its boot\n" +
			"chain, payload/bootchain/, as parts bootchain.<file>) into\n" +
			"DIR/versions/<version>/ and signs them as TUF targets (DIR/tuf/): targets, snapshot\n" +
			"and timestamp metadata are signed with those of the ed25519 keys (--key, repeatable,\n" +
			"or $" + SigningKeyEnv + ") that the root metadata lists for each role. The first\n" +
			"publish makes root metadata with the given keys for every role. The channel\n" +
			"(version, rollout, image) is a signed target too; channels/<channel>.json and\n" +
			"manifest.json.sig (signed with the first key) keep hosts from before TUF updating.\n" +
			"Each part is also cut into content-defined chunks (casync format) stored compressed in\n" +
			"DIR/chunks/, shared by every version, with its chunk index a signed part of the version:\n" +
			"hosts then download only the chunks their booted slot lacks (--no-chunks: full parts only).\n" +
			"--refresh-timestamp re-signs only the timestamp (run it before --timestamp-expiry\n" +
			"runs out, or hosts refuse the repository as frozen).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoDir == "" {
				return fmt.Errorf("publish needs --repo")
			}
			keys, err := readKeys(keyFiles)
			if err != nil {
				return err
			}
			if refresh {
				if len(args) > 0 {
					return fmt.Errorf("publish --refresh-timestamp takes no build directory (got %s)", args[0])
				}
				if err := repo.RefreshTimestamp(repoDir, keys, time.Now(), exp); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "refreshed the timestamp of %s\n", repoDir)
				return nil
			}
			if len(args) != 1 {
				return fmt.Errorf("publish needs the build directory out/<name>")
			}
			o := repo.PublishOptions{Repo: repoDir, Channel: channel, OutDir: args[0], Keys: keys, MinFrom: minFrom, Expiry: exp, Log: d.Log}
			if !noChunks {
				o.Chunker = chunker.Chunker{}
			}
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
	fl.StringArrayVar(&keyFiles, "key", nil, "ed25519 signing key from builder keygen, repeatable (default $"+SigningKeyEnv+")")
	fl.StringVar(&minFrom, "min-from", "", "oldest version allowed to update to this one")
	fl.StringVar(&rolloutFor, "rollout", "", "spread the release over this long from now (e.g. 48h)")
	fl.BoolVar(&refresh, "refresh-timestamp", false, "only re-sign the timestamp metadata with a new expiry")
	fl.BoolVar(&noChunks, "no-chunks", false, "publish no chunk indexes: hosts download every part whole")
	fl.DurationVar(&exp.Timestamp, "timestamp-expiry", repo.DefaultExpiry.Timestamp, "how long the timestamp metadata is valid")
	fl.DurationVar(&exp.Targets, "targets-expiry", repo.DefaultExpiry.Targets, "how long targets and snapshot metadata are valid")
	return cmd
}

// newKeysCmd is `builder keys add|revoke`: change a role's keys through a
// new version of the repository's root metadata.
func newKeysCmd(d Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys add|revoke --repo DIR --role ROLE --pub FILE --key SIGNER... [--threshold N]",
		Short: "Add or revoke a key of a TUF role (root, targets, snapshot, timestamp) of an update repository",
	}
	for _, verb := range []string{"add", "revoke"} {
		var repoDir, role, pubFile string
		var signers []string
		var threshold int
		c := &cobra.Command{
			Use: verb + " --repo DIR --role ROLE --pub FILE --key SIGNER... [--threshold N]",
			Short: map[string]string{"add": "Add a public key to a role", "revoke": "Remove a key from a role"}[verb] +
				" (writes root version N+1, signed by a threshold of the old and of the new root keys)",
			Long: "Writes DIR/tuf/<N+1>.root.json signed with the --key files that hold the root role\n" +
				"(a threshold of the old root's keys and of the new root's). For a role other than\n" +
				"root, targets, snapshot and timestamp are re-signed at once with the --key files\n" +
				"that hold them under the new root, so no host ever sees metadata by a revoked key.\n" +
				"Nothing is written unless every signature reaches its threshold.",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if repoDir == "" || role == "" || pubFile == "" {
					return fmt.Errorf("keys %s needs --repo, --role and --pub", verb)
				}
				b, err := os.ReadFile(pubFile)
				if err != nil {
					return fmt.Errorf("reading --pub: %w", err)
				}
				pub, err := payload.ParsePublicKey(b)
				if err != nil {
					return fmt.Errorf("reading --pub %s: %w", pubFile, err)
				}
				keys, err := readKeys(signers)
				if err != nil {
					return err
				}
				v, err := repo.ChangeKey(repo.KeyChange{Repo: repoDir, Role: role, Key: pub.Key, Revoke: verb == "revoke",
					Threshold: threshold, Signers: keys, Now: time.Now()})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "root version %d: key %s %s role %s\n", v, pub.ID(),
					map[string]string{"add": "added to", "revoke": "revoked from"}[verb], role)
				return nil
			},
		}
		fl := c.Flags()
		fl.StringVar(&repoDir, "repo", "", "update repository directory")
		fl.StringVar(&role, "role", "", "root, targets, snapshot or timestamp")
		fl.StringVar(&pubFile, "pub", "", "the public key (.pub from builder keygen) to add or revoke")
		fl.StringArrayVar(&signers, "key", nil, "signing key, repeatable (default $"+SigningKeyEnv+")")
		fl.IntVar(&threshold, "threshold", 0, "the role's new signature threshold (0 keeps it)")
		cmd.AddCommand(c)
	}
	return cmd
}
