package hostctl

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/cloudinit"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// newProvisionCmd is `hostctl provision`, what bulkhead-provision.service
// runs early on every boot: find the datasource, apply user-data, record
// the report that `hostctl status` shows.
func newProvisionCmd(d Deps) *cobra.Command {
	var rootDir, stage string
	var netWait time.Duration
	cmd := &cobra.Command{
		Use:   "provision [--stage init|final] [--root DIR]",
		Short: "Apply cloud-init / Ignition provisioning data (run at boot by bulkhead-provision.service)",
		Long: "Find the datasource (NoCloud seed, EC2 IMDSv2, Ignition via QEMU fw_cfg) and apply its\n" +
			"user-data: per-instance modules once per instance-id, per-boot modules every boot.\n" +
			"At boot, bulkhead-provision.service runs the init stage (before the network, sshd\n" +
			"and hostd) and bulkhead-provision-final.service the final stage (runcmd, scripts,\n" +
			"power_state) after them; without --stage both run.\n" +
			"Problems in the user-data are reported and the rest still applied; the command fails\n" +
			"only when it cannot save its state, so bad user-data never fails the boot.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root := d.Root
			offline := false
			if rootDir != "" && rootDir != "/" {
				root, offline = fsroot.Root(rootDir), true
			}
			cmdline, err := os.ReadFile(root.Join("/proc/cmdline"))
			if err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("reading kernel command line: %w", err)
			}
			out := cmd.OutOrStdout()
			rep, err := cloudinit.Provision(cmd.Context(), cloudinit.Options{
				Root: root, Runner: d.Runner, Log: d.Log, Console: out, Stage: cloudinit.Stage(stage),
				Cmdline: strings.TrimSpace(string(cmdline)), NetWait: netWait, Offline: offline,
			})
			if rep != nil {
				fmt.Fprint(out, rep.String())
			}
			return err
		},
	}
	cmd.Flags().StringVar(&rootDir, "root", "", "provision this image tree instead of the running system: commands run chrooted into it; hostname, mount, growpart, shutdown are skipped")
	cmd.Flags().StringVar(&stage, "stage", string(cloudinit.StageAll), "which stage to run: init, final or all")
	cmd.AddCommand(newProvisionStatusCmd(d), newProvisionQueryCmd(d))
	cmd.Flags().DurationVar(&netWait, "net-wait", 60*time.Second, "how long to wait for network datasources on hosts that have one (EC2, ds=nocloud;s=http://...)")
	return cmd
}
