package updater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/delta"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
)

// Refusals. Each one is decided before anything outside the download
// directory is written; errors.Is tells them apart. The signature and digest
// refusals are payload.ErrMissingSignature, payload.ErrBadSignature,
// repo.ErrDigestMismatch, repo.ErrTruncated and repo.ErrTooLarge.
var (
	ErrDowngrade       = errors.New("version is older than the booted one (--allow-downgrade to take it)")
	ErrBelowMinVersion = errors.New("booted version is below the update's minimum version")
	ErrVersionBad      = errors.New("version is recorded bad: its trial failed (--allow-bad VERSION to take it, hostctl update forget-bad VERSION to clear it)")
	ErrTargetBooted    = errors.New("target slot is the booted slot")
	ErrNotBlessed      = errors.New("the slot to write is the default (fallback) slot: the booted slot is not blessed yet")
	ErrVersionMismatch = errors.New("repository manifest names another version")
	ErrNoSource        = errors.New("no update repository: give --from or set url in /etc/bulkhead/update.yaml")
	ErrSlotIncomplete  = errors.New("slot is missing boot files on the ESP")
	ErrNoSpace         = errors.New("not enough free space")
)

// DownloadDir holds resumable downloads, one directory per version.
const DownloadDir = "/var/lib/bulkhead/updater/download"

// Updater changes the slots of the host under Root.
type Updater struct {
	Root   fsroot.Root
	Runner run.Runner // blkid fallback and systemctl reboot; nil for run.Exec
	Log    *slog.Logger
	HTTP   *http.Client      // nil for http.DefaultClient
	Open   slotwriter.Opener // nil for the real partitions
	// Progress, when set, is told how downloads, writes and read-backs go
	// ("download usr", "write usr", "verify usr", ...).
	Progress func(what string, done, total int64)
	// Notice, when set, is told what the user should know about the way
	// the update goes (a delta update falling back to the full payload).
	Notice func(msg string)
	Now    func() time.Time // nil for time.Now
	// LockWait bounds how long an upgrade, its payload downloaded, waits
	// for a bless or rollback to release the update lock (0 for
	// DefaultLockWait).
	LockWait time.Duration
}

// Options select the update.
type Options struct {
	Source         string // repository URL or directory; "" for update.yaml's url
	Channel        string // "" for update.yaml's channel (default stable)
	To             string // version; "" for the channel's
	AllowDowngrade bool
	// AllowBad names the one recorded-bad version the operator accepts
	// (`hostctl upgrade --allow-bad VERSION`); nothing else stages one.
	AllowBad string
	DryRun   bool
	// NoDelta downloads the full payload even where the repository offers
	// a delta (`hostctl upgrade --no-delta`): to rule the delta path out
	// when diagnosing, or to measure against it.
	NoDelta bool
	// HonourRollout makes the channel's staged rollout apply (hostd's
	// periodic checks). A person running hostctl upgrade is not held back.
	HonourRollout bool
}

// Partition is a slot partition in a Plan.
type Partition struct {
	Label string `json:"label"`
	Dev   string `json:"device"`
	UUID  string `json:"partuuid"`
	Size  int64  `json:"size"`
}

// Plan is what an upgrade would do, decided from the verified manifest.
type Plan struct {
	Source        string            `json:"source"`
	Channel       string            `json:"channel,omitempty"`
	Booted        bootcfg.Slot      `json:"booted"`
	Target        bootcfg.Slot      `json:"target"`
	From          string            `json:"from"`
	To            string            `json:"to"`
	UpToDate      bool              `json:"upToDate,omitempty"`
	AlreadyStaged bool              `json:"alreadyStaged,omitempty"` // the target slot already waits on trial with this version
	Downgrade     bool              `json:"downgrade,omitempty"`
	Held          string            `json:"held,omitempty"`   // why the rollout holds this host back
	Pinned        string            `json:"pinned,omitempty"` // the operator's pin the periodic check followed
	Policy        string            `json:"policy,omitempty"` // update.yaml's policy, for periodic checks
	DryRun        bool              `json:"dryRun,omitempty"` // planned only: nothing written
	failedTrial   string            // the version GRUB fell back from in this boot, if any
	Tries         int               `json:"tries"` // boots the new version gets (update.yaml's tries)
	SignedBy      string            `json:"signedBy,omitempty"`
	Manifest      *payload.Manifest `json:"manifest,omitempty"`
	Usr           Partition         `json:"usr"`
	Verity        Partition         `json:"verity"`
	Entry         bootcfg.Entry     `json:"-"`
	OldCmdline    string            `json:"oldCmdline"`
	NewCmdline    string            `json:"newCmdline"`
	DownloadDir   string            `json:"downloadDir"`
	DownloadBytes int64             `json:"downloadBytes"` // still to fetch
	// Delta: the parts are assembled from chunks the host has (the booted
	// slot, earlier downloads) and missing chunks fetched from the
	// repository's chunk store; DownloadBytes counts the chunk indexes and
	// the missing chunks uncompressed (what is fetched is compressed, so
	// less). DeltaNote says why not, when the repository offers no delta.
	Delta     bool   `json:"delta,omitempty"`
	DeltaNote string `json:"deltaNote,omitempty"`
	FullBytes int64  `json:"fullBytes,omitempty"` // the full payload still to fetch
	// SeedNote says which parts the booted slot cannot seed: their booted
	// version's chunk index is unknown (neither kept nor in the repository).
	SeedNote string `json:"seedNote,omitempty"`
	deltas   map[string]*delta.Plan
	// indexes and bootedIndexes are the verified chunk indexes (.caibx) of
	// the new and the booted version by part, kept after the install.
	indexes, bootedIndexes map[string][]byte
	FreeDownload           int64 `json:"freeDownload"`
	ESPBytes               int64 `json:"espBytes"`
	FreeESP                int64 `json:"freeESP"`
	// BootChain is what the update does to the boot chain.
	BootChain *BootChainPlan `json:"bootChain,omitempty"`
}

// Ready tells whether the plan calls for writing the slot.
func (p *Plan) Ready() bool { return !p.UpToDate && !p.AlreadyStaged && p.Held == "" }

func (u *Updater) log() *slog.Logger {
	if u.Log == nil {
		return slog.Default()
	}
	return u.Log
}

func (u *Updater) progress(what string, done, total int64) {
	if u.Progress != nil {
		u.Progress(what, done, total)
	}
}

func (u *Updater) now() time.Time {
	if u.Now == nil {
		return time.Now()
	}
	return u.Now()
}

func (u *Updater) host() slots.Host { return slots.Host{Root: u.Root} }

// bootedVersion is the version in the booted slot's release file, or the
// os-release VERSION_ID of the running /usr when the slot has none.
func (u *Updater) bootedVersion(booted bootcfg.Slot) (string, error) {
	rel, err := u.host().Release(booted)
	if err != nil {
		return "", err
	}
	if v := rel["VERSION"]; v != "" {
		return v, nil
	}
	b, err := os.ReadFile(u.Root.Join("/usr/lib/os-release"))
	if err != nil {
		return "", fmt.Errorf("reading booted version: %w", err)
	}
	return strings.Trim(bootcfg.ParseRelease(b)["VERSION_ID"], `"`), nil
}

// Plan checks the repository and decides the update without writing
// anything (beyond reading the repository). Every refusal is returned here.
func (u *Updater) Plan(ctx context.Context, o Options) (*Plan, error) {
	h := u.host()
	booted, err := h.Booted()
	if err != nil {
		return nil, err
	}
	// bulkhead-record-trial.service records a failed trial early in boot;
	// doing it here too means no check can ever take a spent trial for a
	// slot to refill with the same version (hostd restarted, the unit
	// masked). A dry run only takes it into account.
	failed, err := h.FailedTrial()
	if err != nil {
		return nil, err
	}
	if failed != "" && !o.DryRun {
		if err := h.MarkBad(failed); err != nil {
			return nil, err
		}
		u.log().Warn("trial failed: version recorded bad", "version", failed)
	}
	st, _, err := h.BootState()
	if err != nil {
		return nil, err
	}
	p := &Plan{Booted: booted, Target: booted.Other()}
	if st.Default == p.Target {
		return nil, fmt.Errorf("updating slot %s: %w", p.Target, ErrNotBlessed)
	}
	if p.From, err = u.bootedVersion(booted); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(u.Root)
	if err != nil {
		return nil, err
	}
	p.Tries = cfg.TrialTries()
	if err := p.setSource(cfg, o.Source, o.Channel); err != nil {
		return nil, err
	}
	image, err := u.bootedImage(booted)
	if err != nil {
		return nil, err
	}
	// Resolve verifies the repository's TUF metadata (or, for a repository
	// in the format before TUF, the signed manifest) and the image binding.
	rel, err := u.resolve(ctx, p, o.To, image)
	if err != nil {
		return nil, err
	}
	p.To, p.Manifest, p.SignedBy = rel.Manifest.Version, rel.Manifest, rel.SignedBy
	if o.To == "" && o.HonourRollout && rel.Channel.Rollout != nil {
		w, err := rollout.HostWariness(u.Root, cfg.RolloutWariness)
		if err != nil {
			return nil, err
		}
		if d := rollout.Decide(*rel.Channel.Rollout, w, u.now()); !d.Allowed {
			p.Held = d.Reason
		}
	}
	p.failedTrial = failed
	return p, u.decide(ctx, o, p, st)
}

// setSource sets the repository and channel: the given ones, else
// update.yaml's.
func (p *Plan) setSource(cfg Config, source, channel string) error {
	p.Source, p.Channel = source, channel
	if p.Source == "" {
		p.Source = cfg.URL
	}
	if p.Channel == "" {
		p.Channel = cfg.Channel
	}
	if p.Source == "" {
		return ErrNoSource
	}
	return nil
}

// resolve verifies the repository's metadata and returns the release of
// version (or of p's channel, for ""), for the booted image.
func (u *Updater) resolve(ctx context.Context, p *Plan, version, image string) (*repo.Release, error) {
	client := &repo.Client{Base: p.Source, HTTP: u.HTTP, Log: u.log()}
	return client.Resolve(ctx, repo.ResolveRequest{Channel: p.Channel, Version: version, Image: image,
		TrustedDir: u.Root.Join(repo.TrustedDir), KeysDir: u.Root.Join(payload.KeysDir), Now: u.now()})
}

// bootedImage is the image name in the booted slot's release file: updates
// of other images are refused (repo.ErrWrongImage).
func (u *Updater) bootedImage(booted bootcfg.Slot) (string, error) {
	rel, err := u.host().Release(booted)
	if err != nil {
		return "", err
	}
	if rel["NAME"] == "" {
		return "", fmt.Errorf("booted slot %s: its release file names no image", booted)
	}
	return rel["NAME"], nil
}

// decide applies the version rules and fills in partitions, entry and space.
func (u *Updater) decide(ctx context.Context, o Options, p *Plan, st bootcfg.State) error {
	h := u.host()
	m := p.Manifest
	bad, err := h.BadVersions()
	if err != nil {
		return err
	}
	if (slices.Contains(bad, m.Version) || p.failedTrial == m.Version) && o.AllowBad != m.Version {
		return fmt.Errorf("updating to %s: %w", m.Version, ErrVersionBad)
	}
	switch c := payload.CompareVersions(m.Version, p.From); {
	case c == 0:
		p.UpToDate = true
		return nil
	case c < 0 && !o.AllowDowngrade:
		return fmt.Errorf("updating from %s to %s: %w", p.From, m.Version, ErrDowngrade)
	case c < 0:
		p.Downgrade = true
	}
	if m.MinFromVersion != "" && payload.CompareVersions(p.From, m.MinFromVersion) < 0 {
		return fmt.Errorf("updating from %s to %s (needs at least %s): %w", p.From, m.Version, m.MinFromVersion, ErrBelowMinVersion)
	}
	if rel, err := h.Release(p.Target); err == nil && rel["VERSION"] == m.Version && st.Try == p.Target && st.TriesLeft > 0 {
		p.AlreadyStaged = true
	}
	usr, err := u.findPartition(ctx, usrLabel(p.Target))
	if err != nil {
		return err
	}
	ver, err := u.findPartition(ctx, verityLabel(p.Target))
	if err != nil {
		return err
	}
	for _, label := range []string{usrLabel(p.Booted), verityLabel(p.Booted)} {
		b, err := u.findPartition(ctx, label)
		if err != nil {
			return err
		}
		// Two labels resolving to one device means a broken disk layout;
		// writing would overwrite the running /usr.
		if b.Dev == usr.Dev || b.Dev == ver.Dev {
			return fmt.Errorf("slot %s partition %s is %s, which slot %s uses: %w", p.Target, usr.Label, u.Root.Rel(b.Dev), p.Booted, ErrTargetBooted)
		}
	}
	p.Usr = Partition{Label: usr.Label, Dev: u.Root.Rel(usr.Dev), UUID: usr.UUID, Size: usr.Size}
	p.Verity = Partition{Label: ver.Label, Dev: u.Root.Rel(ver.Dev), UUID: ver.UUID, Size: ver.Size}
	for _, c := range []struct {
		part Partition
		img  string
	}{{p.Usr, payload.PartUsr}, {p.Verity, payload.PartVerity}} {
		if c.part.Size < m.Parts[c.img].Size {
			return fmt.Errorf("%s needs %d bytes, partition %s has %d: %w", c.img, m.Parts[c.img].Size, c.part.Label, c.part.Size, slotwriter.ErrTooSmall)
		}
	}
	cmdline, err := h.Cmdline()
	if err != nil {
		return err
	}
	rootUUID, err := u.rootPartUUID(ctx, cmdline)
	if err != nil {
		return err
	}
	p.Entry = bootcfg.Entry{
		Slot: p.Target, Version: m.Version, RootPartUUID: rootUUID, UsrPartUUID: usr.UUID,
		VerityPartUUID: ver.UUID, RootHash: m.RootHash, Args: m.KernelArgs,
		VerityOptions: h.VerityOptions(),
	}
	// With the partitions' numbers the entry follows the boot disk's
	// PARTUUIDs as GRUB reads them at boot.
	if root, err := u.findPartition(ctx, "root"); err == nil && usr.Num > 0 && ver.Num > 0 {
		p.Entry.RootPart, p.Entry.UsrPart, p.Entry.VerityPart = root.Num, usr.Num, ver.Num
	}
	p.OldCmdline, p.NewCmdline = cmdline, p.Entry.Cmdline()
	p.DownloadDir = u.Root.Join(DownloadDir, m.Version)
	for _, name := range payload.RequiredParts {
		part := m.Parts[name]
		p.DownloadBytes += part.Size
		if st, err := os.Stat(filepath.Join(p.DownloadDir, part.File)); err == nil && st.Size() == part.Size {
			p.DownloadBytes -= part.Size
		} else if st, err := os.Stat(filepath.Join(p.DownloadDir, part.File) + ".partial"); err == nil && st.Size() <= part.Size {
			p.DownloadBytes -= st.Size()
		}
	}
	p.ESPBytes = m.Parts[payload.PartKernel].Size + m.Parts[payload.PartInitrd].Size
	if err := u.planBootChainBytes(ctx, p); err != nil {
		return err
	}
	if p.FreeDownload, err = freeBytes(p.DownloadDir); err != nil {
		return err
	}
	if p.FreeESP, err = freeBytes(h.ESP()); err != nil {
		return err
	}
	return checkSpace(p, h.ESP(bootcfg.SlotDir(p.Target)))
}

// checkSpace refuses an update that cannot fit: the downloads in the state
// directory, and the new kernel and initrd on the ESP, where the target
// slot's old ones are removed first.
func checkSpace(p *Plan, slotDir string) error {
	if p.DownloadBytes > p.FreeDownload {
		return fmt.Errorf("downloading %s: %s needed in %s, %s free: %w", p.To, HumanBytes(p.DownloadBytes), p.DownloadDir, HumanBytes(p.FreeDownload), ErrNoSpace)
	}
	reclaim := int64(0)
	for _, f := range []string{bootcfg.KernelFile, bootcfg.InitrdFile} {
		if st, err := os.Stat(filepath.Join(slotDir, f)); err == nil {
			reclaim += st.Size()
		}
	}
	// Install writes each file beside the old one before the rename, but
	// clearSlot has removed the old ones by then.
	need := p.ESPBytes
	if p.BootChain != nil && p.BootChain.Install {
		need += p.BootChain.ESPBytes
	}
	if need > p.FreeESP+reclaim {
		return fmt.Errorf("installing %s on the ESP: %s needed, %s free: %w", p.To, HumanBytes(need), HumanBytes(p.FreeESP+reclaim), ErrNoSpace)
	}
	return nil
}

// Upgrade plans and, unless the plan says otherwise (up to date, already
// staged, held by the rollout, dry run), applies the update:
//
//  1. download every part (resumable) and check its size and sha256; or,
//     for a delta update, fetch only the chunks of each part that neither
//     the booted slot nor an earlier try holds, each checked against its
//     id, and assemble verity tree, kernel and initrd, checked likewise
//     (any failure there falls back to the full payload);
//  2. make the target slot read as empty: cancel a trial of it in the GRUB
//     environment, remove its release, entry and kernel from the ESP;
//  3. write and read back its partitions, verified against the root hash
//     (a delta update assembles usr straight into its partition; if that
//     or the read-back fails, the full payload is downloaded and written);
//  4. install kernel, initrd, entry.cfg and, last, release on the ESP;
//  5. put the slot on trial (bootcfg.SetNext) in the GRUB environment.
//
// A power cut anywhere leaves GRUB booting the booted slot: until step 5 the
// environment names the target neither as default nor as trial (step 2 only
// removes a trial), and the booted slot's partitions and ESP files are never
// opened for writing.
//
// The download (step 1) runs under the download lock only, so a stalled
// repository never holds up bless or rollback; the update lock, which they
// take, is held from step 2 on, after the boot state is checked again.
func (u *Updater) Upgrade(ctx context.Context, o Options) (*Plan, error) {
	if o.DryRun {
		p, err := u.Plan(ctx, o)
		if p != nil {
			p.DryRun = true
		}
		if err == nil && p.Ready() {
			err = u.planDelta(ctx, o, p)
		}
		return p, err
	}
	dl, err := tryLockFile(u.Root, DownloadLockFile)
	if err != nil {
		return nil, err
	}
	defer dl.Unlock()
	p, err := u.Plan(ctx, o)
	if err != nil || !p.Ready() {
		return p, err
	}
	if err := u.planDelta(ctx, o, p); err != nil {
		return p, err
	}
	files, err := u.download(ctx, p)
	if err != nil {
		return p, err
	}
	err = u.apply(ctx, o, p, files)
	if p.Delta && (errors.Is(err, errDelta) || errors.Is(err, slotwriter.ErrReadBack)) && ctx.Err() == nil {
		// The slot is cleared and not on trial: write it again from the
		// full payload.
		u.fallBack(p, err)
		if files, err = u.download(ctx, p); err != nil {
			return p, err
		}
		err = u.apply(ctx, o, p, files)
	}
	if err != nil {
		return p, err
	}
	if err := os.RemoveAll(u.Root.Join(DownloadDir)); err != nil {
		u.log().Warn("removing downloads", "err", err)
	}
	return p, nil
}

// apply writes the downloaded update into the target slot and puts it on
// trial (steps 2 to 5 of Upgrade), under the update lock.
func (u *Updater) apply(ctx context.Context, o Options, p *Plan, files map[string]string) error {
	log := u.log().With("version", p.To, "slot", p.Target)
	wait := u.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	lock, err := WaitLockFor(ctx, u.Root, wait)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := u.recheck(o, p); err != nil {
		return err
	}
	log.Info("payload downloaded and verified", "delta", p.Delta)
	chain, err := u.loadBootChain(p, files)
	if err != nil {
		return err
	}
	if err := u.clearSlot(p.Target); err != nil {
		return err
	}
	m := p.Manifest
	usr := slotwriter.Image{Name: payload.PartUsr, Src: files[payload.PartUsr], Dev: u.Root.Join(p.Usr.Dev),
		Size: m.Parts[payload.PartUsr].Size, SHA256: m.Parts[payload.PartUsr].SHA256}
	if p.Delta {
		usr.Fill = fillUsr(p)
	}
	w := slotwriter.Writer{Open: u.Open, Log: u.log(), Progress: u.Progress}
	err = w.WriteSlot(ctx, slotwriter.Slot{
		Usr: usr,
		Verity: slotwriter.Image{Name: payload.PartVerity, Src: files[payload.PartVerity], Dev: u.Root.Join(p.Verity.Dev),
			Size: m.Parts[payload.PartVerity].Size, SHA256: m.Parts[payload.PartVerity].SHA256},
		RootHash: m.RootHash,
	})
	if err != nil {
		return fmt.Errorf("writing slot %s: %w", p.Target, err)
	}
	if p.Delta {
		log.Info("slot assembled from chunks and verified against its root hash", deltaSummary(p)...)
	} else {
		log.Info("slot written and verified against its root hash")
	}
	u.progress("install boot files", 0, p.ESPBytes)
	if err := u.installESP(ctx, p, files); err != nil {
		return err
	}
	u.progress("install boot files", p.ESPBytes, p.ESPBytes)
	if err := u.installBootChain(ctx, p, chain); err != nil {
		return err
	}
	if err := u.commit(p); err != nil {
		return err
	}
	u.progress("set trial", 1, 1)
	log.Info("slot on trial", "tries", p.Tries)
	u.keepIndexes(p)
	return nil
}

// DefaultLockWait bounds how long an upgrade with its payload downloaded
// waits for a bless or rollback to finish before giving up (the download
// stays for the next try).
const DefaultLockWait = 2 * time.Minute

// recheck repeats, under the update lock, the decisions Plan made from the
// boot state before the download: a rollback, a bless or another upgrade may
// have run in the meantime.
func (u *Updater) recheck(o Options, p *Plan) error {
	h := u.host()
	booted, err := h.Booted()
	if err != nil {
		return err
	}
	st, _, err := h.BootState()
	if err != nil {
		return err
	}
	if booted != p.Booted || st.Default == p.Target {
		return fmt.Errorf("updating slot %s: %w", p.Target, ErrNotBlessed)
	}
	bad, err := h.BadVersions()
	if err != nil {
		return err
	}
	if slices.Contains(bad, p.To) && o.AllowBad != p.To {
		return fmt.Errorf("updating to %s: %w", p.To, ErrVersionBad)
	}
	return nil
}

// download fetches every part into the version's download directory, after
// removing downloads of other versions: the missing chunks of a delta
// update, or else the full payload (also when the delta path fails).
func (u *Updater) download(ctx context.Context, p *Plan) (map[string]string, error) {
	if ents, err := os.ReadDir(u.Root.Join(DownloadDir)); err == nil {
		for _, e := range ents {
			if e.Name() != p.To {
				os.RemoveAll(u.Root.Join(DownloadDir, e.Name()))
			}
		}
	}
	if p.Delta {
		files, err := u.fetchDelta(ctx, p)
		if err == nil {
			return files, u.downloadBootChain(ctx, p, files)
		}
		if ctx.Err() != nil {
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("downloading %s: %w (%w)", p.To, ctx.Err(), err)
			}
			return nil, err
		}
		u.fallBack(p, err)
	}
	client := &repo.Client{Base: p.Source, HTTP: u.HTTP, Log: u.log()}
	files := map[string]string{}
	for _, name := range payload.RequiredParts {
		req := repo.DownloadRequest{Version: p.To, Name: name, Part: p.Manifest.Parts[name], Dir: p.DownloadDir}
		if u.Progress != nil {
			req.Progress = func(part string, done, total int64) { u.Progress("download "+part, done, total) }
		}
		path, err := client.Download(ctx, req)
		if err != nil {
			return nil, err
		}
		files[name] = path
	}
	return files, u.downloadBootChain(ctx, p, files)
}

// clearSlot makes slot read as empty before its partitions change: a trial of
// it is cancelled (the only environment write before the commit, and one
// that moves toward the booted slot), then its release and boot files go, so
// neither GRUB, `hostctl rollback` nor status trusts a half-written slot.
func (u *Updater) clearSlot(s bootcfg.Slot) error {
	h := u.host()
	st, env, err := h.BootState()
	if err != nil {
		return err
	}
	if st.Try == s || env[bootcfg.VarSpare] == string(s) {
		// Nor may GRUB move to it as the spare slot meanwhile.
		env = maps.Clone(env)
		if env[bootcfg.VarSpare] == string(s) {
			env[bootcfg.VarSpare] = ""
		}
		if err := h.WriteBootState(bootcfg.State{Default: st.Default}, env); err != nil {
			return fmt.Errorf("cancelling trial of slot %s: %w", s, err)
		}
	}
	if err := h.ForgetBlessed(s); err != nil {
		return err
	}
	dir := h.ESP(bootcfg.SlotDir(s))
	for _, f := range []string{bootcfg.ReleaseFile, bootcfg.EntryFile, bootcfg.KernelFile, bootcfg.InitrdFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clearing slot %s: %w", s, err)
		}
	}
	// The slot's directory may never have existed: sync the ESP by its root.
	return slotwriter.SyncFS(h.ESP())
}

// installESP writes the slot's boot files; release goes last because it is
// what makes the slot count as holding a version.
func (u *Updater) installESP(ctx context.Context, p *Plan, files map[string]string) error {
	dir := u.host().ESP(bootcfg.SlotDir(p.Target))
	m := p.Manifest
	for _, f := range []struct{ part, name string }{{payload.PartKernel, bootcfg.KernelFile}, {payload.PartInitrd, bootcfg.InitrdFile}} {
		size, sum, err := slotwriter.InstallFile(ctx, files[f.part], filepath.Join(dir, f.name), 0o644)
		if err != nil {
			return err
		}
		if size != m.Parts[f.part].Size || sum != m.Parts[f.part].SHA256 {
			return fmt.Errorf("installing %s in slot %s: read back %d bytes sha256 %s, want %d %s: %w",
				f.name, p.Target, size, sum, m.Parts[f.part].Size, m.Parts[f.part].SHA256, slotwriter.ErrReadBack)
		}
	}
	if _, _, err := slotwriter.Install(ctx, strings.NewReader(p.Entry.GrubConfig()), filepath.Join(dir, bootcfg.EntryFile), 0o644); err != nil {
		return err
	}
	if _, _, err := slotwriter.Install(ctx, strings.NewReader(p.Entry.Release(m.Name)), filepath.Join(dir, bootcfg.ReleaseFile), 0o644); err != nil {
		return err
	}
	// The files must be on disk before commit points GRUB at them.
	return slotwriter.SyncFS(dir)
}

// commit puts the target on trial: the one write that makes GRUB boot it.
func (u *Updater) commit(p *Plan) error {
	h := u.host()
	st, env, err := h.BootState()
	if err != nil {
		return err
	}
	next, err := bootcfg.SetNext(st, p.Target, p.Tries)
	if err != nil {
		return err
	}
	if err := h.WriteBootState(next, env); err != nil {
		return fmt.Errorf("putting slot %s on trial: %w", p.Target, err)
	}
	return nil
}
