package hostctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/cloudinit"
	"github.com/bulkhead-os/bulkhead/hostd"
	"github.com/bulkhead-os/bulkhead/hostd/client"
	storagesetup "github.com/bulkhead-os/bulkhead/storage-setup"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootchain"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// StatusReport is what `hostctl status --json` prints. Sections other
// components add are optional, so a rescue status without hostd still works.
type StatusReport struct {
	Slots      *slots.Status `json:"slots,omitempty"`
	SlotsError string        `json:"slotsError,omitempty"`
	// BootChain is the installed boot chain (hostctl bootloader status).
	BootChain      *bootchain.Status `json:"bootChain,omitempty"`
	BootChainError string            `json:"bootChainError,omitempty"`
	Hostd          *hostd.Info       `json:"hostd,omitempty"`
	HostdError     string            `json:"hostdError,omitempty"`
	// Update is the channel, the last check and /etc merge conflicts.
	Update updater.UpdateStatus `json:"update"`
	// Provision is what first-boot provisioning did, module by module.
	Provision      *cloudinit.Report `json:"provision,omitempty"`
	ProvisionError string            `json:"provisionError,omitempty"`
	// Storage is the container thin pool's usage (storage-setup).
	Storage      *storagesetup.Usage `json:"storage,omitempty"`
	StorageError string              `json:"storageError,omitempty"`
}

func newStatusCmd(d Deps) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the OS version, the booted slot and both slots' state",
		Long: "Show the OS version, the booted slot and both slots' state. The slot part is read\n" +
			"from the ESP and the kernel command line directly, so it works when hostd is down.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := gatherStatus(cmd.Context(), d)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printStatus(cmd.OutOrStdout(), rep)
			if rep.Slots == nil {
				return errors.New(rep.SlotsError)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func gatherStatus(ctx context.Context, d Deps) StatusReport {
	var rep StatusReport
	st, err := slots.Host{Root: d.Root}.ReadStatus()
	if err != nil {
		rep.SlotsError = err.Error()
	} else {
		rep.Slots = &st
	}
	if bc, err := readBootChainStatus(d); err != nil {
		rep.BootChainError = err.Error()
	} else {
		rep.BootChain = &bc
	}
	rep.Update = updater.ReadUpdateStatus(d.Root)
	if r, err := cloudinit.LoadReport(d.Root); err != nil {
		rep.ProvisionError = err.Error()
	} else {
		rep.Provision = r
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if cfg, err := storagesetup.Load(d.Root, "", d.Log); err != nil {
		rep.StorageError = err.Error()
	} else if u, err := storagesetup.PoolUsage(ctx, d.Runner, cfg); err != nil {
		rep.StorageError = err.Error()
	} else {
		rep.Storage = &u
	}
	var resp hostd.StatusResponse
	if err := client.New(d.Socket).Do(ctx, http.MethodGet, "/v1/status", nil, &resp); err != nil {
		rep.HostdError = err.Error()
	} else {
		rep.Hostd = &resp.Hostd
	}
	return rep
}

func printStatus(w io.Writer, rep StatusReport) {
	if s := rep.Slots; s != nil {
		fmt.Fprintf(w, "OS:      %s %s\n", s.OS, s.Version)
		fmt.Fprintf(w, "Booted:  slot %s\n", s.Booted)
		fmt.Fprintf(w, "Default: slot %s\n", s.Default)
		switch {
		case s.DiskError != "":
			fmt.Fprintf(w, "Disk:    %s (%s)\n", s.Disk, s.DiskError)
		case s.DiskPristine:
			fmt.Fprintf(w, "Disk:    %s (disk GUID %s: the image's, never given its own)\n", s.Disk, s.DiskGUID)
		case s.Disk != "":
			fmt.Fprintf(w, "Disk:    %s (disk GUID %s)\n", s.Disk, s.DiskGUID)
		}
		if s.BootEnvDamage != "" {
			fmt.Fprintf(w, "Boot environment damaged: %s\n  run hostctl repair-boot to rewrite it\n", s.BootEnvDamage)
		}
		for _, sl := range s.Slots {
			line := fmt.Sprintf("  slot %s: %-8s", sl.Slot, sl.State)
			if sl.Version != "" {
				line += " version " + sl.Version
			}
			if sl.State == "pending" {
				line += fmt.Sprintf(" (%d tries left)", sl.TriesLeft)
			}
			if sl.UsrCheckFailed != "" {
				line += "\n    /usr failed its check: " + sl.UsrCheckFailed + "\n    an upgrade rewrites the slot"
			}
			fmt.Fprintln(w, line)
		}
	} else {
		fmt.Fprintf(w, "Slots:   unknown: %s\n", rep.SlotsError)
	}
	if rep.BootChain != nil {
		fmt.Fprintf(w, "Boot chain: %s\n", bootChainLine(*rep.BootChain))
	} else {
		fmt.Fprintf(w, "Boot chain: unknown (%s)\n", rep.BootChainError)
	}
	rep.Update.Print(w)
	switch {
	case rep.Storage != nil:
		fmt.Fprintf(w, "Storage: thin pool %s/%s: data %.1f%%, metadata %.1f%%\n", rep.Storage.VG, rep.Storage.Pool, rep.Storage.DataPercent, rep.Storage.MetadataPercent)
	default:
		fmt.Fprintf(w, "Storage: no thin pool (%s)\n", rep.StorageError)
	}
	if rep.Provision != nil {
		fmt.Fprint(w, rep.Provision.String())
	} else {
		fmt.Fprintf(w, "Provisioning: %s\n", rep.ProvisionError)
	}
	if rep.Hostd != nil {
		fmt.Fprintf(w, "hostd:   running, version %s, pid %d, up since %s\n", rep.Hostd.Version, rep.Hostd.PID, rep.Hostd.Started.Format(time.RFC3339))
		if rep.Hostd.WorkloadErrors != "" {
			fmt.Fprintf(w, "Workloads: files not loaded (their containers kept as they run):\n  %s\n", strings.ReplaceAll(rep.Hostd.WorkloadErrors, "\n", "\n  "))
		}
	} else {
		fmt.Fprintf(w, "hostd:   not answering (%s)\n", rep.HostdError)
	}
}
