package updater

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Describe prints the plan the way `hostctl upgrade --dry-run` shows it.
func (p *Plan) Describe(w io.Writer) {
	switch {
	case p.UpToDate:
		fmt.Fprintf(w, "Up to date: version %s (channel %s, %s)\n", p.From, p.Channel, p.Source)
		return
	case p.AlreadyStaged:
		fmt.Fprintf(w, "Version %s is already in slot %s, on trial: reboot to use it\n", p.To, p.Target)
		return
	}
	kind := "Update"
	if p.Downgrade {
		kind = "Downgrade"
	}
	fmt.Fprintf(w, "%s: %s -> %s (channel %s, %s)\n", kind, p.From, p.To, p.Channel, p.Source)
	if p.Held != "" {
		fmt.Fprintf(w, "Held back by the rollout: %s\n", p.Held)
	}
	fmt.Fprintf(w, "Signed by: %s\n", p.SignedBy)
	fmt.Fprintf(w, "Slot:      write slot %s; booted slot %s is not touched\n", p.Target, p.Booted)
	m := p.Manifest
	fmt.Fprintf(w, "  %-14s %s image in a %s partition\n", p.Usr.Label, HumanBytes(m.Parts["usr"].Size), HumanBytes(p.Usr.Size))
	fmt.Fprintf(w, "  %-14s %s hash tree in a %s partition\n", p.Verity.Label, HumanBytes(m.Parts["verity"].Size), HumanBytes(p.Verity.Size))
	fmt.Fprintf(w, "ESP:       kernel %s and initrd, %s in total, %s free\n", m.KernelVersion, HumanBytes(p.ESPBytes), HumanBytes(p.FreeESP))
	if p.BootChain != nil {
		fmt.Fprintf(w, "Boot chain: %s\n", p.BootChain.Describe())
	}
	fmt.Fprintf(w, "Download:  %s to %s, %s free\n", HumanBytes(p.DownloadBytes), p.DownloadDir, HumanBytes(p.FreeDownload))
	switch {
	case p.Delta:
		fmt.Fprintf(w, "           delta: chunk indexes and the chunks the booted slot lacks (at most, before\n"+
			"           compression), of a %s full payload\n", HumanBytes(p.FullBytes))
	case p.DeltaNote != "":
		fmt.Fprintf(w, "           full payload, no delta: %s\n", p.DeltaNote)
	}
	if p.Delta && p.SeedNote != "" {
		fmt.Fprintf(w, "           %s\n", p.SeedNote)
	}
	removed, added := argDiff(p.OldCmdline, p.NewCmdline)
	fmt.Fprintf(w, "Kernel command line:\n  old: %s\n  new: %s\n", p.OldCmdline, p.NewCmdline)
	for _, a := range removed {
		fmt.Fprintf(w, "  - %s\n", a)
	}
	for _, a := range added {
		fmt.Fprintf(w, "  + %s\n", a)
	}
}

// argDiff lists the arguments only in old and only in new. BOOT_IMAGE is
// GRUB's addition at boot, not part of an entry.
func argDiff(old, new string) (removed, added []string) {
	o, n := strings.Fields(old), strings.Fields(new)
	for _, a := range o {
		if !slices.Contains(n, a) && !strings.HasPrefix(a, "BOOT_IMAGE=") {
			removed = append(removed, a)
		}
	}
	for _, a := range n {
		if !slices.Contains(o, a) {
			added = append(added, a)
		}
	}
	return removed, added
}

// HumanBytes renders a size for people, in binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i-1])
}
