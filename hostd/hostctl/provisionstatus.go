package hostctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/cloudinit"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Provisioning states, in cloud-init status's words, so scripts written
// for `cloud-init status` read ours the same way.
const (
	provNotStarted = "not started"
	provRunning    = "running"
	provDone       = "done"
	provDegraded   = "degraded done" // finished, with problems in the input
	provError      = "error"
	provDisabled   = "disabled"
)

// provisionState is `hostctl provision status --json`.
type provisionState struct {
	Status     string            `json:"status"`
	Stage      cloudinit.Stage   `json:"stage,omitempty"`
	InstanceID string            `json:"instance_id,omitempty"`
	Source     string            `json:"datasource,omitempty"`
	Disabled   string            `json:"disabled,omitempty"`
	Errors     []string          `json:"errors"`
	Problems   []string          `json:"recoverable_errors"`
	Report     *cloudinit.Report `json:"report,omitempty"`
}

// readProvisionState reads this boot's provisioning report: a report of
// an earlier boot (another boot_id) means this boot has not started yet.
func readProvisionState(root fsroot.Root) (provisionState, error) {
	st := provisionState{Status: provNotStarted, Errors: []string{}, Problems: []string{}}
	rep, err := cloudinit.LoadReport(root)
	if errors.Is(err, cloudinit.ErrNoReport) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	boot, _ := os.ReadFile(root.Join("/proc/sys/kernel/random/boot_id"))
	if b := strings.TrimSpace(string(boot)); b != "" && rep.BootID != b {
		return st, nil
	}
	st.Report, st.Stage, st.InstanceID, st.Source, st.Disabled = rep, rep.Stage, rep.InstanceID, rep.Source, rep.Disabled
	st.Errors = append(st.Errors, rep.Errors...)
	st.Problems = append(st.Problems, rep.Problems...)
	switch {
	case rep.Disabled != "":
		st.Status = provDisabled
	case !rep.Done():
		st.Status = provRunning
	case len(rep.Errors) > 0:
		st.Status = provError
	case len(rep.Problems) > 0:
		st.Status = provDegraded
	default:
		st.Status = provDone
	}
	return st, nil
}

// newProvisionStatusCmd is `hostctl provision status`: what
// `cloud-init status [--wait] [--long] [--format json]` is for Packer,
// Terraform and Ansible, which wait for a new machine to be provisioned.
func newProvisionStatusCmd(d Deps) *cobra.Command {
	var wait, asJSON, long bool
	cmd := &cobra.Command{
		Use:   "status [--wait] [--long] [--json]",
		Short: "Show whether provisioning has finished this boot (like cloud-init status)",
		Long: "Prints status: not started, running, done, degraded done (finished, with problems in\n" +
			"the user-data), error or disabled. --wait blocks until provisioning is over. Exit\n" +
			"status as cloud-init status: 0 done or disabled, 1 error, 2 degraded done.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st provisionState
			for {
				var err error
				if st, err = readProvisionState(d.Root); err != nil {
					return err
				}
				if !wait || (st.Status != provNotStarted && st.Status != provRunning) {
					break
				}
				select {
				case <-cmd.Context().Done():
					return fmt.Errorf("waiting for provisioning: %w", cmd.Context().Err())
				case <-time.After(time.Second):
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				data, err := json.MarshalIndent(st, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\n", data)
			} else {
				fmt.Fprintf(out, "status: %s\n", st.Status)
				if long && st.Report != nil {
					fmt.Fprint(out, st.Report.String())
				}
			}
			// Exit as cloud-init status: 1 error, 2 recoverable errors.
			switch st.Status {
			case provError:
				return &ExitError{Code: 1}
			case provDegraded:
				return &ExitError{Code: 2}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&wait, "wait", "w", false, "wait until provisioning has finished")
	cmd.Flags().BoolVarP(&long, "long", "l", false, "also print the report, module by module")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status and the report as JSON")
	return cmd
}

// newProvisionQueryCmd is `hostctl provision query`: the instance data
// (datasource, instance-id, host name, keys) as JSON, as in
// /run/cloud-init/instance-data.json.
func newProvisionQueryCmd(d Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "query",
		Short: "Print this boot's instance data as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(d.Root.Join(cloudinit.InstanceDataFile))
			if err != nil {
				return fmt.Errorf("reading instance data: %w (has provisioning run this boot?)", err)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
}
