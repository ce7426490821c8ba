package hostctl

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	storagesetup "github.com/bulkhead-os/bulkhead/storage-setup"
)

// newStorageSetupCmd is `hostctl storage-setup`, what
// bulkhead-storage-setup.service runs on every boot before hostd: the
// docker-storage-setup of Atomic Host, reading the same options.
func newStorageSetupCmd(d Deps) *cobra.Command {
	var reset bool
	var file string
	cmd := &cobra.Command{
		Use:   "storage-setup [--reset] [--config FILE]",
		Short: "Carve container storage out of spare disks (docker-storage-setup compatible)",
		Long: "Read the defaults, " + storagesetup.DockerSetupFile + ", " + storagesetup.ContainerSetupFile + "\n" +
			"and " + storagesetup.CloudConfigFile + " (cloud-config bulkhead.storage), then partition DEVS,\n" +
			"build the volume group, thin pool and container root volume, and write " + storagesetup.OutputFile + ".\n" +
			"Running it again with the same options changes nothing. --reset removes the volumes, the pool\n" +
			"and the output file, and keeps the volume group and its disks.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := storagesetup.Load(d.Root, file, d.Log)
			if err != nil {
				return err
			}
			s := storagesetup.Setup{Root: d.Root, Runner: d.Runner, Log: d.Log, Config: cfg}
			out := cmd.OutOrStdout()
			if reset {
				if err := s.Reset(cmd.Context()); err != nil {
					return fmt.Errorf("resetting container storage: %w", err)
				}
				fmt.Fprintln(out, "container storage reset; volume group and disks kept")
				return nil
			}
			if err := s.Run(cmd.Context()); err != nil {
				return fmt.Errorf("setting up container storage: %w", err)
			}
			if data, err := os.ReadFile(d.Root.Join(storagesetup.OutputFile)); err == nil {
				fmt.Fprint(out, string(data))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&reset, "reset", false, "remove the container root volume, thin pool and output file (keeps the VG and disks)")
	cmd.Flags().StringVar(&file, "config", "", "read only this file (KEY=value, or YAML when it ends in .yaml/.yml) instead of the sysconfig and cloud-config files")
	return cmd
}
