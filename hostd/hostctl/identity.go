package hostctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/identity"
)

// newIdentityCmd is `hostctl identity`, run by bulkhead-identity.service
// until it has done its work once: a disk that never booted gets a disk
// GUID, partition UUIDs and a root filesystem UUID of its own, and fstab
// follows the boot disk.
func newIdentityCmd(d Deps) *cobra.Command {
	var reload bool
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Give a never-booted boot disk its own GUIDs; make fstab name the boot disk",
		Long: "Every disk made from one image has the same disk GUID, partition UUIDs and root\n" +
			"filesystem UUID. At a host's first boot this gives its boot disk (the disk holding the\n" +
			"mounted root) new random ones, so that a second disk made from the same image,\n" +
			"attached for recovery, is never taken for it; labels and partition types stay. When\n" +
			"another never-booted disk is attached too it changes nothing and says so: the boot may\n" +
			"have used either. It makes fstab's / and /efi lines name the boot disk's partitions\n" +
			"(--reload then has systemd read fstab again), and marks the work done in\n" +
			"/var/lib/bulkhead/identity (bulkhead-identity.service does not start again).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := identity.Ensure(cmd.Context(), identity.Options{Root: d.Root, Runner: d.Runner, Log: d.Log})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case res.Randomized:
				fmt.Fprintf(out, "bulkhead: boot disk %s has an identity of its own: disk GUID %s\n", res.Disk, res.GUID)
				if res.RootFSUUIDError != "" {
					fmt.Fprintf(out, "bulkhead: the root filesystem kept the image's UUID: %s\n", res.RootFSUUIDError)
				}
			case res.Skipped != "":
				fmt.Fprintf(out, "bulkhead: boot disk %s keeps the image's identity: %s\n", res.Disk, res.Skipped)
			default:
				fmt.Fprintf(out, "bulkhead: boot disk %s, disk GUID %s\n", res.Disk, res.GUID)
			}
			// This boot's mounts were generated from the old fstab; they
			// stay right after a first boot's change (the old names stay on
			// this disk), but not after a repair.
			if res.FstabChanged && !res.Randomized && reload {
				fmt.Fprintln(out, "bulkhead: /etc/fstab now names the boot disk's partitions; reloading")
				if _, err := d.Runner.Run(cmd.Context(), run.Cmd{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
					return fmt.Errorf("reloading systemd after fixing /etc/fstab: %w", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&reload, "reload", false, "run systemctl daemon-reload when fstab was fixed (boot service)")
	return cmd
}
