package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/builder/diskfmt"
)

// newConvertCmd is `builder convert`: a build's disk in the formats clouds
// and hypervisors import. It is a verb of its own, run after `builder
// build`, so a build (and `make image`) writes what it always did and
// takes as long, and a format is made only when it is wanted.
func newConvertCmd(d Deps) *cobra.Command {
	var formats string
	cmd := &cobra.Command{
		Use:   "convert --format vmdk,ova,vhd,gce,vagrant-libvirt|all out/<name>",
		Short: "Write a build's disk as VMDK, OVA, VHD, a GCE tarball or a Vagrant box",
		Long: "Writes, beside out/<name>/disk.raw, and records in its manifest.json with their sha256:\n" +
			"  vmdk             disk.vmdk, stream-optimized (vSphere, VirtualBox, ESXi)\n" +
			"  ova              disk.ova: OVF descriptor + the VMDK + a SHA-256 manifest (vSphere, VirtualBox)\n" +
			"  vhd              disk.vhd, fixed, size rounded up to a MiB (Azure)\n" +
			"  gce              disk.gce.tar.gz: disk.raw, rounded up to a GiB, in an old-GNU sparse tar (Compute Engine)\n" +
			"  vagrant-libvirt  bulkhead-<version>.libvirt.box (Vagrant with vagrant-libvirt; from disk.qcow2)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if formats == "" {
				return fmt.Errorf("convert needs --format (vmdk, ova, vhd, gce, vagrant-libvirt or all)")
			}
			fs, err := diskfmt.ParseFormats(formats)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			m, err := diskfmt.Convert(cmd.Context(), diskfmt.Options{OutDir: args[0], Formats: fs, Progress: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			for _, f := range fs {
				p := m.Parts[string(f)]
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %s\n", p.SHA256, filepath.Join(args[0], p.File))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&formats, "format", "", "comma-separated formats, or all")
	return cmd
}
