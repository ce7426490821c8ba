package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/builder"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func newBuildCmd(d Deps) *cobra.Command {
	var out, cache, bin, version, locked string
	var refresh bool
	cmd := &cobra.Command{
		Use:   "build [DEFINITION.yaml]",
		Short: "Build a bootable disk image (qcow2 and raw) from an image definition",
		Long: "Build a bootable disk image from an image definition (the embedded default\n" +
			"when none is given): out/<name>/disk.qcow2, disk.raw, payload/ and manifest.json.\n" +
			"Needs root. SOURCE_DATE_EPOCH, when set, is every timestamp in the image.\n\n" +
			"--out is replaced only once the new build is complete, and only if it is\n" +
			"empty or a previous build's output. manifest.json records every Debian\n" +
			"package with the sha256 of its .deb (the package lock), our binaries and\n" +
			"the builder; sbom.cdx.json beside it is the same as a CycloneDX 1.5 SBOM.\n" +
			"--locked refuses a root tree whose packages differ from a lock.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			defs, err := loadDefinitions(args)
			if err != nil {
				return err
			}
			def := defs[0]
			if version != "" {
				def.Version = version
				if err := def.Validate(); err != nil {
					return fmt.Errorf("--version %s: %w", version, err)
				}
			}
			if out == "" {
				out = filepath.Join("out", def.Name)
			}
			if bin == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				bin = filepath.Dir(exe)
			}
			epoch, err := epochFromEnv()
			if err != nil {
				return err
			}
			b := &builder.Builder{
				Runner: run.Exec{Log: d.Log}, Log: d.Log, Progress: cmd.OutOrStdout(),
				CacheDir: cache, BinDir: bin, Epoch: epoch, Refresh: refresh,
			}
			if locked != "" {
				if b.Lock, err = builder.ReadLock(locked); err != nil {
					return fmt.Errorf("--locked %s: %w", locked, err)
				}
			}
			_, err = b.Build(cmd.Context(), def, out)
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output directory (default out/<name>)")
	cmd.Flags().StringVar(&cache, "cache", "/var/cache/bulkhead", "cache for root trees and .deb files")
	cmd.Flags().StringVar(&bin, "bin", "", "directory with the hostd and hostd-shim binaries (default: next to builder)")
	cmd.Flags().StringVar(&version, "version", "", "override the definition's version (test images)")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "make the root tree again from the mirror first (security updates; see builder cache refresh)")
	cmd.Flags().StringVar(&locked, "locked", "", "a previous build's manifest.json (or its output directory): refuse a root tree with other packages")
	return cmd
}

// epochFromEnv is SOURCE_DATE_EPOCH, or builder.DefaultEpoch when unset.
func epochFromEnv() (int64, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return builder.DefaultEpoch, nil
	}
	epoch, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", v, err)
	}
	return epoch, nil
}
