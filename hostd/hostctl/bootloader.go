package hostctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootchain"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// newBootloaderCmd is `hostctl bootloader status|update`: the boot chain
// (shim, GRUB, the BIOS boot code, grub.cfg) both slots share.
func newBootloaderCmd(d Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootloader status|update",
		Short: "Show or update the boot chain (shim, GRUB EFI, the BIOS core image, grub.cfg) both slots share",
	}
	cmd.AddCommand(newBootloaderStatusCmd(d), newBootloaderUpdateCmd(d))
	return cmd
}

// readBootChainStatus checks the installed chain of the host under d.Root.
func readBootChainStatus(d Deps) (bootchain.Status, error) {
	t, err := updater.BootChainTarget(d.Root, slots.Host{Root: d.Root}.ESP())
	if err != nil {
		return bootchain.Status{}, err
	}
	return bootchain.ReadStatus(t)
}

func newBootloaderStatusCmd(d Deps) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the installed boot chain: its version, each file against its recorded sha256, the BIOS core in use",
		Long: "Shows the installed boot chain's version (a digest over its files, with the versions of\n" +
			"shim-signed, grub-efi-amd64-signed and grub-pc-bin), each ESP file checked against the\n" +
			"sha256 recorded at its install, the half of the BIOS boot partition sector 0 points into,\n" +
			"and whether the previous chain is kept (.prev files, until a boot through the new one\n" +
			"is blessed). A host built before boot chain updates has no record: its version is\n" +
			"unknown until an upgrade or `hostctl bootloader update` installs one. Exits 1 when a\n" +
			"file is missing or damaged.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := readBootChainStatus(d)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				printBootChain(cmd.OutOrStdout(), st)
			}
			if !st.OK() {
				return fmt.Errorf("the boot chain is damaged: hostctl bootloader update reinstalls it")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printBootChain(w io.Writer, st bootchain.Status) {
	fmt.Fprintf(w, "Boot chain: %s\n", st.Description)
	if st.OSVersion != "" {
		fmt.Fprintf(w, "From:       Bulkhead %s\n", st.OSVersion)
	}
	if st.Previous != "" {
		fmt.Fprintf(w, "Previous:   %s", st.Previous)
		if st.PreviousKept {
			fmt.Fprint(w, " (kept as .prev until a boot through this chain is blessed)")
		}
		fmt.Fprintln(w)
	} else if st.PreviousKept {
		fmt.Fprintln(w, "Previous:   kept as .prev")
	}
	for _, f := range st.Files {
		state := "ok"
		if !f.OK {
			state = "DAMAGED"
		}
		line := fmt.Sprintf("  %-22s %-7s", f.Path, state)
		if f.SHA256 != "" {
			line += " sha256 " + f.SHA256
		}
		if f.Problem != "" {
			line += " (" + f.Problem + ")"
		}
		fmt.Fprintln(w, line)
	}
	switch b := st.BIOS; {
	case b == nil:
		fmt.Fprintln(w, "  BIOS boot code: none (no BIOS boot partition on the boot disk)")
	case b.Problem != "" && !b.OK:
		fmt.Fprintf(w, "  BIOS boot code: DAMAGED on %s: %s\n", b.Device, b.Problem)
	default:
		line := fmt.Sprintf("  BIOS boot code: ok, core in half %d of partition %d of %s (LBA %d)", b.Half, b.Partition, b.Device, b.CoreLBA)
		if b.Problem != "" {
			line += " (" + b.Problem + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// bootChainLine is the one line `hostctl status` shows.
func bootChainLine(st bootchain.Status) string {
	line := st.Description
	var notes []string
	if st.PreviousKept {
		notes = append(notes, "previous kept")
	}
	if !st.OK() {
		notes = append(notes, "DAMAGED: see hostctl bootloader status")
	}
	if len(notes) > 0 {
		line += ", " + strings.Join(notes, ", ")
	}
	return line
}

func newBootloaderUpdateCmd(d Deps) *cobra.Command {
	var o updater.BootChainOptions
	cmd := &cobra.Command{
		Use:   "update [--from URL|DIR [--channel NAME]] [--force]",
		Short: "Install the boot chain of the booted version: from its /usr, or from the update repository",
		Long: "Installs the booted version's boot chain: the copy its /usr carries (" + bootabi.UsrChainDir + ",\n" +
			"which dm-verity vouches for), or with --from the one published with it in the update\n" +
			"repository, verified as an upgrade is (TUF metadata, the signed manifest, each file's\n" +
			"size and sha256). GRUB EFI goes before shim, each ESP file\n" +
			"replaced by rename with the old one kept as .prev, the BIOS core into the unused half\n" +
			"of the BIOS boot partition before sector 0 points at it. A power cut at any point leaves\n" +
			"a host that boots; run it again to finish. Files that already match are not rewritten,\n" +
			"so it also repairs a damaged chain; --force writes them all again (the BIOS core into the\n" +
			"other half of its partition).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u := &updater.Updater{Root: d.Root, Runner: d.Runner, Log: d.Log, Progress: progressPrinter(cmd.ErrOrStderr()),
				Notice: func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) }}
			var r *updater.BootChainResult
			var err error
			if o.Source == "" && o.Channel == "" {
				r, err = u.InstallBootedChain(cmd.Context(), o.Force)
			} else {
				r, err = u.UpdateBootChain(cmd.Context(), o)
			}
			if err != nil {
				return err
			}
			if r.Changed {
				fmt.Fprintf(cmd.OutOrStdout(), "Boot chain of %s installed: %s -> %s\n", r.Version, r.From, r.To)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "Boot chain of %s already installed: %s (any file that did not match rewritten)\n", r.Version, r.To)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Source, "from", "", "update repository: http(s)://, file:// or a directory (default: the booted /usr's copy)")
	fl.StringVar(&o.Channel, "channel", "", "channel, with the repository (default: channel in update.yaml, else stable)")
	fl.BoolVar(&o.Force, "force", false, "write every file and the BIOS core again, even where they match")
	return cmd
}
