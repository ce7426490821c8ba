package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/builder"
	"github.com/bulkhead-os/bulkhead/images"
)

// newCacheCmd is `builder cache prune|refresh`: the root-tree cache that
// makes warm rebuilds fast also pins the packages of the day it was made.
func newCacheCmd(d Deps) *cobra.Command {
	var cache string
	cmd := &cobra.Command{
		Use:   "cache prune|refresh",
		Short: "Prune the build cache, or refresh a definition's root tree (security updates)",
	}
	cmd.PersistentFlags().StringVar(&cache, "cache", "/var/cache/bulkhead", "cache for root trees and .deb files")
	cmd.AddCommand(&cobra.Command{
		Use:   "prune",
		Short: "Remove every cached root tree and .deb file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := (&builder.Builder{CacheDir: cache}).PruneCache(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pruned %s\n", cache)
			return nil
		},
	}, &cobra.Command{
		Use:   "refresh [DEFINITION.yaml]",
		Short: "Drop a definition's cached root tree so its next build takes the archive's current packages",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := images.Default()
			if len(args) == 1 {
				def, err = images.Load(args[0])
			}
			if err != nil {
				return err
			}
			epoch, err := epochFromEnv()
			if err != nil {
				return err
			}
			had, err := (&builder.Builder{CacheDir: cache, Epoch: epoch}).RefreshCache(def)
			if err != nil {
				return err
			}
			if had {
				fmt.Fprintf(cmd.OutOrStdout(), "dropped the cached root tree of %s: its next build installs the archive's current packages\n", def.Name)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "no cached root tree for %s: its next build makes one\n", def.Name)
			}
			return nil
		},
	})
	return cmd
}
