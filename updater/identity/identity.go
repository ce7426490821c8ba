package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
)

// Paths under the root.
const (
	Fstab = "/etc/fstab"
	// UdevRule keeps this boot's by-partuuid names on the boot disk's
	// partitions after their UUIDs change on disk (/run: this boot only).
	UdevRule = "/run/udev/rules.d/61-bulkhead-identity.rules"
	// PlanFile holds the identity being given, written before anything
	// else: a boot cut short applies the same one next time, so fstab and
	// the disk always end up naming the same UUIDs.
	PlanFile = "/var/lib/bulkhead/identity-plan.json"
	// DoneFile marks the disk's identity given (bulkhead-identity.service
	// does not start once it exists).
	DoneFile = "/var/lib/bulkhead/identity"
)

// Mount points whose fstab lines name a partition of the boot disk, by label.
var fstabParts = map[string]string{"/": "root", "/efi": "esp"}

// Options are what Ensure reads and runs.
type Options struct {
	Root   fsroot.Root
	Runner run.Runner
	Log    *slog.Logger
	// NewUUID makes a random UUID (tests pass their own).
	NewUUID func() string
}

// Result is what Ensure found and did.
type Result struct {
	Disk string `json:"disk"` // the boot disk (/dev/vda)
	GUID string `json:"guid"` // its GPT disk GUID, after
	// Randomized: this boot gave the disk its identity.
	Randomized bool `json:"randomized,omitempty"`
	// Skipped says why a pristine boot disk kept the image's identity.
	Skipped string `json:"skipped,omitempty"`
	// FstabChanged: fstab's / or /efi line was made to name the boot disk.
	FstabChanged bool `json:"fstabChanged,omitempty"`
	// RootFSUUIDError: the root filesystem kept its UUID (the partitions
	// changed anyway).
	RootFSUUIDError string `json:"rootFSUUIDError,omitempty"`
}

// table is what `sfdisk --json` prints of a GPT disk.
type table struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Partitions []struct {
			Node string `json:"node"`
			UUID string `json:"uuid"`
			Name string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// plan is the identity being given: the new disk GUID, and each partition's
// old and new UUID by number.
type plan struct {
	Disk  string            `json:"disk"`
	GUID  string            `json:"guid"`
	Parts map[int][2]string `json:"parts"` // number -> {old, new}
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.NewUUID == nil {
		o.NewUUID = randomUUID
	}
}

// randomUUID is a version 4 UUID.
func randomUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Ensure gives a pristine boot disk its identity, unless another pristine
// disk is attached (then the initrd may have used either, and neither is
// touched), makes fstab name the boot disk's partitions, and marks the work
// done (DoneFile). The order survives a cut at any point: the plan, the
// udev rule, fstab (naming the planned UUIDs), then one write of the
// partition table, the root filesystem's UUID, and the mark; a boot cut
// short applies the same plan again, and until the table is written fstab
// names UUIDs the disk will have (this boot's mounts were made from the
// fstab read at its start).
func Ensure(ctx context.Context, o Options) (Result, error) {
	o.defaults()
	var res Result
	d, err := bootdisk.Find(o.Root)
	if err != nil {
		return res, err
	}
	res.Disk = d.Dev
	t, err := readTable(ctx, o, d.Dev)
	if err != nil {
		return res, err
	}
	res.GUID = strings.ToLower(t.PartitionTable.ID)
	if strings.EqualFold(t.PartitionTable.ID, bootabi.PristineDiskGUID) {
		others, err := pristineDisks(o, d.Name)
		if err != nil {
			return res, err
		}
		if len(others) > 0 {
			res.Skipped = fmt.Sprintf("another disk made from an image that never booted is attached (%s): the boot may have used either, so neither gets a new identity; detach it and reboot", strings.Join(others, ", "))
			o.Log.Warn("boot disk keeps the image's identity", "disk", d.Dev, "why", res.Skipped)
			return res, nil
		}
		if err := randomize(ctx, o, d, t, &res); err != nil {
			return res, err
		}
		if t, err = readTable(ctx, o, d.Dev); err != nil {
			return res, err
		}
		res.GUID = strings.ToLower(t.PartitionTable.ID)
	}
	changed, err := reconcileFstab(o, uuidsByLabel(d, t))
	if err != nil {
		return res, err
	}
	res.FstabChanged = res.FstabChanged || changed
	if err := o.Root.WriteFile(DoneFile, []byte(res.GUID+"\n"), 0o644); err != nil {
		return res, fmt.Errorf("marking the identity of %s given: %w", d.Dev, err)
	}
	if err := os.Remove(o.Root.Join(PlanFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("removing %s: %w", PlanFile, err)
	}
	return res, nil
}

// uuidsByLabel maps the disk's partition labels to their UUIDs in t.
func uuidsByLabel(d bootdisk.Disk, t table) map[string]string {
	out := map[string]string{}
	for _, p := range t.PartitionTable.Partitions {
		for _, bp := range d.Parts {
			if bp.Dev == p.Node {
				out[bp.Label] = strings.ToLower(p.UUID)
			}
		}
	}
	return out
}

func readTable(ctx context.Context, o Options, dev string) (table, error) {
	var t table
	out, err := o.Runner.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{"--json", dev}})
	if err != nil {
		return t, fmt.Errorf("reading the partition table of %s: %w", dev, err)
	}
	if err := json.Unmarshal(out, &t); err != nil {
		return t, fmt.Errorf("reading the partition table of %s: %w", dev, err)
	}
	if t.PartitionTable.Label != "gpt" {
		return t, fmt.Errorf("the boot disk %s has a %q partition table, not GPT", dev, t.PartitionTable.Label)
	}
	return t, nil
}

// pristineDisks lists the whole disks other than skip whose GPT carries the
// image's disk GUID.
func pristineDisks(o Options, skip string) ([]string, error) {
	ents, err := os.ReadDir(o.Root.Join("/sys/class/block"))
	if err != nil {
		return nil, fmt.Errorf("listing disks: %w", err)
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if name == skip {
			continue
		}
		if _, err := os.Stat(o.Root.Join("/sys/class/block", name, "partition")); err == nil {
			continue
		}
		d, err := bootdisk.Read(o.Root, name)
		if err != nil || len(d.Parts) == 0 {
			continue
		}
		if id, err := bootdisk.GUID(o.Root.Join(d.Dev)); err == nil && id == bootabi.PristineDiskGUID {
			out = append(out, d.Dev)
		}
	}
	return out, nil
}

// randomize gives the disk the planned identity (a plan left by a boot cut
// short, or a new one).
func randomize(ctx context.Context, o Options, d bootdisk.Disk, t table, res *Result) error {
	pl, err := loadPlan(o, d, t)
	if err != nil {
		return err
	}
	var rule bytes.Buffer
	rule.WriteString("# Written by hostctl identity at this host's first boot: the partitions' old\n" +
		"# by-partuuid names stay on this disk until the next boot reads the new ones.\n")
	nums := make([]int, 0, len(pl.Parts))
	for n := range pl.Parts {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		fmt.Fprintf(&rule, "ENV{DEVTYPE}==\"partition\", ENV{ID_PART_ENTRY_UUID}==\"%s\", SYMLINK+=\"disk/by-partuuid/%s\", OPTIONS+=\"link_priority=100\"\n", pl.Parts[n][1], pl.Parts[n][0])
	}
	if err := o.Root.WriteFile(UdevRule, rule.Bytes(), 0o644); err != nil {
		return fmt.Errorf("giving %s an identity: %w", d.Dev, err)
	}
	if _, err := o.Runner.Run(ctx, run.Cmd{Name: "udevadm", Args: []string{"control", "--reload"}}); err != nil {
		return fmt.Errorf("giving %s an identity: %w", d.Dev, err)
	}
	planned := map[string]string{}
	for _, p := range d.Parts {
		if u, ok := pl.Parts[p.Num]; ok {
			planned[p.Label] = u[1]
		}
	}
	if res.FstabChanged, err = reconcileFstab(o, planned); err != nil {
		return err
	}
	// One write of the whole table: its dump with the new UUIDs.
	dump, err := o.Runner.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{"--dump", d.Dev}})
	if err != nil {
		return fmt.Errorf("giving %s an identity: %w", d.Dev, err)
	}
	script, err := withIdentity(string(dump), o, pl)
	if err != nil {
		return fmt.Errorf("giving %s an identity: %w", d.Dev, err)
	}
	if _, err := o.Runner.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{"--quiet", "--no-reread", "--no-tell-kernel", d.Dev},
		Stdin: strings.NewReader(script)}); err != nil {
		return fmt.Errorf("giving %s an identity: writing its partition table: %w", d.Dev, err)
	}
	if root, ok := d.Part("root"); ok {
		if _, err := o.Runner.Run(ctx, run.Cmd{Name: "tune2fs", Args: []string{"-U", o.NewUUID(), root.Dev}}); err != nil {
			res.RootFSUUIDError = err.Error()
			o.Log.Warn("the root filesystem keeps the image's UUID", "device", root.Dev, "err", err)
		}
	}
	res.Randomized = true
	// The new names appear now, beside the old ones (the rule).
	args := []string{"trigger", "--action=change", "--settle"}
	for _, p := range d.Parts {
		args = append(args, "/sys/class/block/"+p.Name)
	}
	if _, err := o.Runner.Run(ctx, run.Cmd{Name: "udevadm", Args: args}); err != nil {
		o.Log.Warn("udev did not re-read the boot disk's partitions; the new names appear at the next boot", "disk", d.Dev, "err", err)
	}
	o.Log.Info("boot disk given an identity of its own", "disk", d.Dev)
	return nil
}

// loadPlan reads a plan left for this disk by a boot cut short, or writes a
// new one.
func loadPlan(o Options, d bootdisk.Disk, t table) (plan, error) {
	var pl plan
	if b, err := os.ReadFile(o.Root.Join(PlanFile)); err == nil {
		if json.Unmarshal(b, &pl) == nil && pl.Disk == d.Dev && len(pl.Parts) == len(t.PartitionTable.Partitions) {
			return pl, nil
		}
	}
	pl = plan{Disk: d.Dev, GUID: o.NewUUID(), Parts: map[int][2]string{}}
	for _, p := range t.PartitionTable.Partitions {
		_, num, err := bootdisk.Partition(o.Root, p.Node)
		if err != nil {
			return pl, fmt.Errorf("giving %s an identity: %w", d.Dev, err)
		}
		pl.Parts[num] = [2]string{strings.ToLower(p.UUID), o.NewUUID()}
	}
	b, err := json.Marshal(pl)
	if err != nil {
		return pl, err
	}
	if _, _, err := slotwriter.Install(context.Background(), bytes.NewReader(b), o.Root.Join(PlanFile), 0o600); err != nil {
		return pl, fmt.Errorf("giving %s an identity: %w", d.Dev, err)
	}
	return pl, nil
}

// withIdentity rewrites an `sfdisk --dump` script with the plan's disk GUID
// and partition UUIDs; every other field stays as dumped.
func withIdentity(dump string, o Options, pl plan) (string, error) {
	var out strings.Builder
	seen := 0
	for _, line := range strings.SplitAfter(dump, "\n") {
		switch {
		case strings.HasPrefix(line, "label-id:"):
			line = "label-id: " + pl.GUID + "\n"
		case strings.Contains(line, " : start="):
			node, _, _ := strings.Cut(line, " : ")
			_, num, err := bootdisk.Partition(o.Root, strings.TrimSpace(node))
			if err != nil {
				return "", err
			}
			u, ok := pl.Parts[num]
			i := strings.Index(line, "uuid=")
			if !ok || i < 0 {
				return "", fmt.Errorf("partition %d of the dump has no planned UUID: %q", num, line)
			}
			j := strings.IndexAny(line[i:], ",\n")
			if j < 0 {
				j = len(line) - i
			}
			line = line[:i] + "uuid=" + strings.ToUpper(u[1]) + line[i+j:]
			seen++
		}
		out.WriteString(line)
	}
	if seen != len(pl.Parts) {
		return "", fmt.Errorf("the dump lists %d partitions, the plan %d", seen, len(pl.Parts))
	}
	return out.String(), nil
}

// reconcileFstab makes the / and /efi lines that name a partition by
// PARTUUID name the UUIDs given for the root and the ESP (by label).
func reconcileFstab(o Options, uuidOf map[string]string) (bool, error) {
	path := o.Root.Join(Fstab)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", Fstab, err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	changed := false
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || !strings.HasPrefix(f[0], "PARTUUID=") {
			continue
		}
		label, ok := fstabParts[f[1]]
		if !ok || uuidOf[label] == "" || strings.EqualFold(f[0], "PARTUUID="+uuidOf[label]) {
			continue
		}
		lines[i] = strings.Replace(line, f[0], "PARTUUID="+uuidOf[label], 1)
		changed = true
	}
	if !changed {
		return false, nil
	}
	if _, _, err := slotwriter.Install(context.Background(), strings.NewReader(strings.Join(lines, "")), path, 0o644); err != nil {
		return false, fmt.Errorf("writing %s: %w", Fstab, err)
	}
	return true, nil
}
