package guestcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/slots"
)

// Guest is a booted Bulkhead guest, as the QEMU harness drives it.
//
// Contract: Run runs cmd with /bin/sh -c as root in the guest and returns
// its combined output; a non-zero exit is an error (the output is still
// returned). WaitBoot returns once the guest has rebooted (by itself or
// because a command asked it to) and is ready for Run again; it may span
// several boot attempts (a failing trial reboots until GRUB falls back) and
// bounds itself with ctx.
type Guest interface {
	Run(ctx context.Context, cmd string) (string, error)
	WaitBoot(ctx context.Context) error
}

// Marker is a point in an upgrade where a power-cut test cuts: the progress
// line `hostctl upgrade` prints on stderr for Phase once Percent (a multiple
// of ten) of it is done. Its first line, at 0%, is where the phase starts.
type Marker struct {
	Phase   string
	Percent int
}

func (m Marker) String() string {
	if m.Percent == 0 {
		return m.Phase
	}
	return fmt.Sprintf("%s %d%%", m.Phase, m.Percent)
}

// Pattern is a regular expression for m's line on the console: the
// progress printer writes one line per tenth of a phase, with the exact
// percentage, so the line for 50 reads 50% to 59%.
func (m Marker) Pattern() string {
	if m.Percent == 0 {
		return regexp.QuoteMeta(m.Phase)
	}
	return regexp.QuoteMeta(m.Phase) + fmt.Sprintf(`\s+%d\d%%`, m.Percent/10)
}

// Reached tells whether a progress report (what, done of total) is at or
// past m.
func (m Marker) Reached(what string, done, total int64) bool {
	return what == m.Phase && total > 0 && done*100/total >= int64(m.Percent)
}

// Markers are the points of an upgrade, in the order of its phases. A
// power-cut test starts StartUpgrade, waits for one of them on the serial
// console, kills QEMU, boots again and calls AfterPowerCut. From a
// repository that offers a delta, "download usr" fetches the chunks the
// booted slot lacks and "write usr" assembles the image from the booted
// slot and those chunks: halfway through it is the middle of a delta.
var Markers = []Marker{
	{"download usr", 0},       // downloading the slot image (or its missing chunks)
	{"write usr", 0},          // streaming (or assembling) into usr-<slot>
	{"write usr", 50},         // half of usr-<slot> written
	{"verify usr", 0},         // reading the slot back against the root hash
	{"install boot files", 0}, // kernel, initrd, entry.cfg, release on the ESP
	{"set trial", 0},          // after the GRUB environment write (the commit)
}

// status is the slot part of `hostctl status --json`.
type status struct {
	Slots *slots.Status `json:"slots"`
	Error string        `json:"slotsError"`
}

// Status reads the slot status in the guest.
func Status(ctx context.Context, g Guest) (*slots.Status, error) {
	out, err := g.Run(ctx, "hostctl status --json")
	if err != nil && !strings.HasPrefix(strings.TrimSpace(out), "{") {
		return nil, fmt.Errorf("hostctl status: %w: %s", err, out)
	}
	var s status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return nil, fmt.Errorf("reading hostctl status: %w: %s", err, out)
	}
	if s.Slots == nil {
		return nil, fmt.Errorf("hostctl status: no slot status: %s", s.Error)
	}
	return s.Slots, nil
}

// slot returns the info of one slot.
func slot(s *slots.Status, which bootcfg.Slot) slots.SlotInfo {
	for _, i := range s.Slots {
		if i.Slot == which {
			return i
		}
	}
	return slots.SlotInfo{}
}

// WaitBlessed polls until bulkhead-bless.service has run in this boot, so the
// booted slot is the default.
func WaitBlessed(ctx context.Context, g Guest) error {
	for {
		out, _ := g.Run(ctx, "systemctl is-active bulkhead-bless.service")
		switch strings.TrimSpace(out) {
		case "active":
			return nil
		case "failed":
			return errors.New("bulkhead-bless.service failed")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for bulkhead-bless.service: %w", ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// rebootAfter reads the status, runs cmd (which reboots the guest), waits
// for the next boot to be blessed and returns the status before and after.
func rebootAfter(ctx context.Context, g Guest, cmd string) (before, after *slots.Status, err error) {
	if before, err = Status(ctx, g); err != nil {
		return nil, nil, err
	}
	if out, err := g.Run(ctx, cmd); err != nil {
		return nil, nil, fmt.Errorf("%s: %w: %s", cmd, err, out)
	}
	if err := g.WaitBoot(ctx); err != nil {
		return nil, nil, err
	}
	if err := WaitBlessed(ctx, g); err != nil {
		return nil, nil, err
	}
	after, err = Status(ctx, g)
	return before, after, err
}

// Upgrade runs `hostctl upgrade --from repoURL --reboot` and checks the guest
// comes back on the other slot with version want, blessed, the previous
// version kept in the first slot.
func Upgrade(ctx context.Context, g Guest, repoURL, want string) error {
	before, after, err := rebootAfter(ctx, g, "hostctl upgrade --from "+shellQuote(repoURL)+" --reboot")
	if err != nil {
		return err
	}
	var p []string
	if after.Booted != before.Booted.Other() {
		p = append(p, fmt.Sprintf("booted slot %s, want %s", after.Booted, before.Booted.Other()))
	}
	if got := slot(after, after.Booted).Version; got != want {
		p = append(p, fmt.Sprintf("booted version %s, want %s", got, want))
	}
	if after.Default != after.Booted {
		p = append(p, fmt.Sprintf("default slot %s, want the blessed %s", after.Default, after.Booted))
	}
	if old := slot(after, before.Booted); old.Version != slot(before, before.Booted).Version || old.State != bootcfg.StateGood {
		p = append(p, fmt.Sprintf("previous slot %s holds %s (%s), want %s (good)", before.Booted, old.Version, old.State, slot(before, before.Booted).Version))
	}
	return problems("upgrade", p)
}

// Rollback runs `hostctl rollback --reboot` and checks the guest comes back
// on the other slot running want.
func Rollback(ctx context.Context, g Guest, want string) error {
	before, after, err := rebootAfter(ctx, g, "hostctl rollback --reboot")
	if err != nil {
		return err
	}
	var p []string
	if after.Booted != before.Booted.Other() || slot(after, after.Booted).Version != want {
		p = append(p, fmt.Sprintf("booted slot %s version %s, want slot %s version %s", after.Booted, slot(after, after.Booted).Version, before.Booted.Other(), want))
	}
	if after.Default != after.Booted {
		p = append(p, fmt.Sprintf("default slot %s, want %s", after.Default, after.Booted))
	}
	return problems("rollback", p)
}

// FailedTrial upgrades to a version whose health check fails: GRUB tries it
// DefaultTries times and falls back by itself. It checks the guest is back on
// the slot and version it ran before, that the failed version is reported
// bad, and that it is not offered again.
func FailedTrial(ctx context.Context, g Guest, repoURL, bad string) error {
	before, after, err := rebootAfter(ctx, g, "hostctl upgrade --from "+shellQuote(repoURL)+" --reboot")
	if err != nil {
		return err
	}
	var p []string
	if after.Booted != before.Booted || slot(after, after.Booted).Version != slot(before, before.Booted).Version {
		p = append(p, fmt.Sprintf("booted slot %s version %s, want slot %s version %s back", after.Booted,
			slot(after, after.Booted).Version, before.Booted, slot(before, before.Booted).Version))
	}
	if o := slot(after, after.Booted.Other()); o.Version != bad || o.State != bootcfg.StateBad {
		p = append(p, fmt.Sprintf("slot %s holds %s (%s), want %s (bad)", after.Booted.Other(), o.Version, o.State, bad))
	}
	if out, err := g.Run(ctx, "hostctl upgrade --from "+shellQuote(repoURL)); err == nil || !strings.Contains(out, "recorded bad") {
		p = append(p, fmt.Sprintf("a second upgrade to %s was not refused as bad: %s", bad, out))
	}
	return problems("failed trial", p)
}

// bootFiles lists what a refused update must leave byte-identical.
const bootFiles = "sha256sum /efi/grub/grubenv /efi/*/* 2>/dev/null; for p in usr-a usr-a-verity usr-b usr-b-verity; do head -c 16M /dev/disk/by-partlabel/$p | sha256sum; done"

// Refused runs `hostctl upgrade --from repoURL` against a repository serving
// a tampered payload (or signature) and checks it fails naming wantErr and
// leaves the ESP and the first 16 MiB of every slot partition unchanged.
func Refused(ctx context.Context, g Guest, repoURL, wantErr string) error {
	before, err := g.Run(ctx, bootFiles)
	if err != nil {
		return fmt.Errorf("hashing boot files: %w: %s", err, before)
	}
	out, err := g.Run(ctx, "hostctl upgrade --from "+shellQuote(repoURL))
	var p []string
	if err == nil {
		p = append(p, "hostctl upgrade succeeded")
	}
	if !strings.Contains(out, wantErr) {
		p = append(p, fmt.Sprintf("output lacks %q: %s", wantErr, out))
	}
	after, err := g.Run(ctx, bootFiles)
	if err != nil {
		return fmt.Errorf("hashing boot files: %w: %s", err, after)
	}
	if after != before {
		p = append(p, fmt.Sprintf("boot files changed:\n%s\nwas:\n%s", after, before))
	}
	return problems("refused update", p)
}

// StartUpgrade starts an upgrade in the background with its progress and log
// on the serial console, for a power-cut test to interrupt at a Marker.
func StartUpgrade(ctx context.Context, g Guest, repoURL string) error {
	out, err := g.Run(ctx, "systemd-run --unit=bulkhead-test-upgrade --property=StandardOutput=tty --property=StandardError=tty "+
		"--property=TTYPath=/dev/ttyS0 hostctl upgrade --from "+shellQuote(repoURL))
	if err != nil {
		return fmt.Errorf("starting hostctl upgrade: %w: %s", err, out)
	}
	return nil
}

// AfterPowerCut checks a guest booted after QEMU was killed mid-upgrade: it
// runs one of the good versions (the old one, or the new one when the cut
// came after the commit), gets blessed, and a fresh upgrade to want then
// completes (resuming any partial download).
func AfterPowerCut(ctx context.Context, g Guest, repoURL, want string, good ...string) error {
	if err := WaitBlessed(ctx, g); err != nil {
		return err
	}
	s, err := Status(ctx, g)
	if err != nil {
		return err
	}
	v := slot(s, s.Booted).Version
	ok := false
	for _, gv := range good {
		ok = ok || v == gv
	}
	if !ok {
		return fmt.Errorf("after power cut: booted version %s, want one of %v", v, good)
	}
	if v == want {
		return nil
	}
	return Upgrade(ctx, g, repoURL, want)
}

func problems(what string, p []string) error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", what, strings.Join(p, "; "))
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
