package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/builder"
	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/run"
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
	var o builder.PruneOptions
	prune := &cobra.Command{
		Use:   "prune [DEFINITION.yaml...]",
		Short: "Remove the root trees the given definitions (default: the embedded one) do not use, and their .deb files",
		Long: "Remove the cached root trees that none of the given definitions (the embedded\n" +
			"default when none is given) uses, those older than --older-than, what\n" +
			"interrupted builds left, and the .deb files no remaining tree was made from.\n" +
			"--all removes every tree and .deb file. It waits for a build using the cache.",
		RunE: func(cmd *cobra.Command, args []string) error {
			defs, b, err := cacheBuilder(d, cmd, cache, args)
			if err != nil {
				return err
			}
			o.Keep = defs
			removed, err := b.PruneCache(o)
			for _, r := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", r)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pruned %s: %d removed\n", cache, len(removed))
			return nil
		},
	}
	prune.Flags().DurationVar(&o.OlderThan, "older-than", 0, "also remove kept trees made longer ago than this (e.g. 720h)")
	prune.Flags().BoolVar(&o.All, "all", false, "remove every root tree and .deb file")
	cmd.AddCommand(prune, &cobra.Command{
		Use:   "refresh [DEFINITION.yaml]",
		Short: "Make a definition's root tree again from the mirror (security updates), keeping the old one until it succeeds",
		Long: "Make a definition's root tree (the embedded default when none is given) again\n" +
			"from its mirror, so the next build takes the archive's current packages without\n" +
			"a definition change, and list the package changes. Needs root (mmdebstrap).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			defs, b, err := cacheBuilder(d, cmd, cache, args)
			if err != nil {
				return err
			}
			r, err := b.RefreshCache(cmd.Context(), defs[0])
			if err != nil {
				return err
			}
			switch {
			case !r.Had:
				fmt.Fprintf(cmd.OutOrStdout(), "made the root tree of %s: %s\n", defs[0].Name, r.Tree)
			case len(r.Changes) == 0:
				fmt.Fprintf(cmd.OutOrStdout(), "refreshed the root tree of %s: no package changed\n", defs[0].Name)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "refreshed the root tree of %s: %d package changes\n", defs[0].Name, len(r.Changes))
				for _, c := range r.Changes {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", c)
				}
			}
			return nil
		},
	})
	return cmd
}

// cacheBuilder is a builder on the cache for the definitions named (the
// embedded default when none is), with SOURCE_DATE_EPOCH: the epoch is
// part of a root tree's cache key.
func cacheBuilder(d Deps, cmd *cobra.Command, cache string, args []string) ([]*images.Definition, *builder.Builder, error) {
	defs, err := loadDefinitions(args)
	if err != nil {
		return nil, nil, err
	}
	epoch, err := epochFromEnv()
	if err != nil {
		return nil, nil, err
	}
	return defs, &builder.Builder{Runner: run.Exec{Log: d.Log}, Log: d.Log, CacheDir: cache, Epoch: epoch, Progress: cmd.ErrOrStderr()}, nil
}

// loadDefinitions reads the definitions named, or the embedded default.
func loadDefinitions(paths []string) ([]*images.Definition, error) {
	if len(paths) == 0 {
		def, err := images.Default()
		if err != nil {
			return nil, err
		}
		return []*images.Definition{def}, nil
	}
	defs := make([]*images.Definition, 0, len(paths))
	for _, p := range paths {
		def, err := images.Load(p)
		if err != nil {
			return nil, err
		}
		defs = append(defs, def)
	}
	return defs, nil
}
