package hostctl

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
)

// newUpgradeCmd is `hostctl upgrade`: the whole update in this process,
// under the update lock, so it works when hostd is down.
func newUpgradeCmd(d Deps) *cobra.Command {
	var o updater.Options
	var rb rebootFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "upgrade [--to VERSION] [--from URL|DIR] [--channel NAME] [--dry-run] [--no-delta] [--reboot [--now]] [--allow-downgrade] [--allow-bad VERSION]",
		Short: "Download, verify and write the next version into the other slot",
		Long: "Checks the update repository (--from, or url in /etc/bulkhead/update.yaml), downloads the\n" +
			"version (resumable), verifies its signature and digests, writes it into the inactive\n" +
			"slot, verifies the slot against its dm-verity root hash, installs its kernel and puts it\n" +
			"on trial for " + fmt.Sprint(bootcfg.DefaultTries) + " boots (tries: in update.yaml). --reboot reboots into it\n" +
			"through the configured reboot strategy (--now: at once); otherwise the next reboot does.\n" +
			"--to VERSION pins that version: periodic updates hold it until `hostctl update unpin`.\n" +
			"A repository with chunk indexes gives a delta update: only the chunks the booted slot lacks are\n" +
			"downloaded (the booted version's own indexes, kept from its install or published with it, say\n" +
			"where its chunks lie), and usr is assembled straight into its partition; without them, or when\n" +
			"a chunk fails, the full payload is downloaded (and the progress output says so); --no-delta\n" +
			"downloads the full payload from the start.\n" +
			"--dry-run shows sizes, the bytes to download, free space, the version and kernel command-line\n" +
			"change, and writes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u := &updater.Updater{Root: d.Root, Runner: d.Runner, Log: d.Log, Progress: progressPrinter(cmd.ErrOrStderr()),
				Notice: func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) }}
			p, err := u.Upgrade(cmd.Context(), o)
			if !o.DryRun {
				if rerr := u.RecordCheck(p, err); rerr != nil {
					d.Log.Warn("recording update check", "err", rerr)
				}
			}
			if err != nil {
				return err
			}
			if o.To != "" && !o.DryRun {
				// The operator chose this version: the periodic check
				// must not replace it with the channel's.
				if err := u.Hold(updater.Pin{Version: o.To, Reason: "hostctl upgrade --to " + o.To}); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(p); err != nil {
					return err
				}
				if o.DryRun || !p.Ready() && !p.AlreadyStaged {
					return nil
				}
			case o.DryRun:
				p.Describe(out)
				if p.Ready() {
					fmt.Fprintln(out, "Dry run: nothing written.")
				}
				return nil
			case p.AlreadyStaged:
				p.Describe(out)
			case !p.Ready():
				p.Describe(out)
				return nil
			default:
				fmt.Fprintf(out, "Version %s written to slot %s and on trial for %d boots (slot %s kept as fallback).\n",
					p.To, p.Target, p.Tries, p.Booted)
			}
			if !rb.reboot {
				fmt.Fprintln(out, "Reboot to start it (or run hostctl upgrade --reboot).")
				return nil
			}
			return rb.run(cmd, d, u)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.To, "to", "", "version to install (default: the channel's)")
	fl.StringVar(&o.Source, "from", "", "update repository: http(s)://, file:// or a directory (default: url in update.yaml)")
	fl.StringVar(&o.Channel, "channel", "", "channel (default: channel in update.yaml, else stable)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "show what would happen; write nothing")
	fl.BoolVar(&o.NoDelta, "no-delta", false, "download the full payload even where the repository offers a delta")
	fl.BoolVar(&o.AllowDowngrade, "allow-downgrade", false, "accept a version older than the booted one")
	fl.StringVar(&o.AllowBad, "allow-bad", "", "accept this `VERSION` although its trial failed on this host")
	rb.add(cmd, "reboot into the new version when it is staged,")
	fl.BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

// progressPrinter prints a line per part each time it passes another tenth,
// which reads well on a terminal, in the journal and over a serial console.
func progressPrinter(w io.Writer) func(what string, done, total int64) {
	var mu sync.Mutex
	last := map[string]int64{}
	return func(what string, done, total int64) {
		if total <= 0 {
			return
		}
		step := done * 10 / total
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := last[what]; ok && step == prev {
			return
		}
		last[what] = step
		fmt.Fprintf(w, "%-16s %3d%% %s / %s\n", what, done*100/total, updater.HumanBytes(done), updater.HumanBytes(total))
	}
}
