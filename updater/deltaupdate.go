package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/delta"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/repo"
)

// BootedUsrDevice is the booted slot's /usr as dm-verity serves it: every
// block read from it is checked against the booted root hash, so a delta
// update takes only verified bytes from the running slot.
const BootedUsrDevice = "/dev/mapper/usr"

// errDelta marks a failure of the delta path: the update goes on with the
// full payload.
var errDelta = errors.New("delta update failed")

// fallBack turns a delta plan into a full download after err.
func (u *Updater) fallBack(p *Plan, err error) {
	u.notice(fmt.Sprintf("delta update of %s failed, downloading the full payload: %v", p.To, err))
	p.Delta, p.deltas, p.DeltaNote, p.DownloadBytes = false, nil, err.Error(), p.FullBytes
}

// chunkCacheDir keeps a version's fetched chunks between tries.
func chunkCacheDir(p *Plan) string { return filepath.Join(p.DownloadDir, "chunks") }

func (u *Updater) notice(msg string) {
	u.log().Warn(msg)
	if u.Notice != nil {
		u.Notice(msg)
	}
}

// planDelta decides whether the update can be assembled from chunks: every
// part has a chunk index in the (verified) manifest and the index matches
// its digest there, and the booted version's index of at least one part is
// known (kept from its install, or published with it) to find its chunks in
// the booted slot. When it cannot, the plan keeps the full payload and says
// why. With o.NoDelta the plan keeps the full payload, and says so.
func (u *Updater) planDelta(ctx context.Context, o Options, p *Plan) error {
	p.FullBytes = p.DownloadBytes
	if o.NoDelta {
		p.DeltaNote = "the full payload was asked for (--no-delta)"
		return nil
	}
	err := u.tryPlanDelta(ctx, p)
	if err == nil || ctx.Err() != nil {
		return err
	}
	p.Delta, p.deltas, p.DeltaNote = false, nil, err.Error()
	u.notice(fmt.Sprintf("delta update unavailable, downloading the full payload: %v", err))
	return nil
}

func (u *Updater) tryPlanDelta(ctx context.Context, p *Plan) error {
	m := p.Manifest
	for _, name := range payload.RequiredParts {
		if _, ok := m.Parts[payload.IndexPart(name)]; !ok {
			return fmt.Errorf("%s has no chunk index for %s in the repository", p.To, name)
		}
	}
	client := &repo.Client{Base: p.Source, HTTP: u.HTTP, Log: u.log()}
	p.indexes = map[string][]byte{}
	idx := map[string]casync.Index{}
	var bytes int64
	for _, name := range payload.RequiredParts {
		pt := m.Parts[payload.IndexPart(name)]
		b, err := client.FetchPart(ctx, p.To, pt)
		if err != nil {
			return err
		}
		if idx[name], err = delta.ParseIndex(b, m.Parts[name].Size); err != nil {
			return fmt.Errorf("chunk index %s of %s: %w", pt.File, p.To, err)
		}
		p.indexes[name] = b
		bytes += int64(len(b))
	}
	seeds, err := u.seeds(ctx, p)
	if err != nil {
		return err
	}
	plans := map[string]*delta.Plan{}
	for _, name := range payload.RequiredParts {
		dp := delta.NewPlan(delta.Image{Name: name, Index: idx[name], Seeds: seeds[name], CacheDir: chunkCacheDir(p),
			Fetch: client.Chunk, Log: u.log(), Progress: u.Progress})
		plans[name] = dp
		bytes += dp.Stats.MissingBytes
	}
	p.Delta, p.deltas, p.DownloadBytes = true, plans, bytes+p.bootChainToFetch()
	return nil
}

// seeds are where each part's chunks may already be: the booted slot's
// /usr through dm-verity, its verity partition, its kernel and initrd, each
// with the booted version's chunk index of that part to find its chunks.
// A part whose booted index is unknown has no seed (the plan's SeedNote
// says so); with none known at all, there is no delta.
func (u *Updater) seeds(ctx context.Context, p *Plan) (map[string][]delta.Seed, error) {
	ver, err := u.findPartition(ctx, verityLabel(p.Booted))
	if err != nil {
		return nil, err
	}
	dir := u.host().ESP(bootcfg.SlotDir(p.Booted))
	paths := map[string]string{
		payload.PartUsr:    u.Root.Join(BootedUsrDevice),
		payload.PartVerity: ver.Dev,
		payload.PartKernel: filepath.Join(dir, bootcfg.KernelFile),
		payload.PartInitrd: filepath.Join(dir, bootcfg.InitrdFile),
	}
	known, err := u.bootedIndexes(ctx, p)
	if err != nil && len(known) == 0 {
		return nil, fmt.Errorf("no chunk index of the booted version %s, so the booted slot cannot seed the update: %w", p.From, err)
	}
	seeds := map[string][]delta.Seed{}
	var without []string
	for _, name := range payload.RequiredParts {
		idx, ok := known[name]
		if !ok {
			without = append(without, name)
			continue
		}
		seeds[name] = []delta.Seed{{Path: paths[name], Index: idx}}
	}
	if len(without) > 0 {
		p.SeedNote = fmt.Sprintf("no chunk index of the booted version %s for %s: those parts are fetched whole as chunks", p.From, strings.Join(without, ", "))
		if err != nil {
			p.SeedNote += fmt.Sprintf(" (%v)", err)
		}
		u.notice("delta update: " + p.SeedNote)
	}
	return seeds, nil
}

// bootedIndexes are the chunk indexes of the booted version's parts: those
// kept when it was installed (IndexDir), else those the repository published
// with it, read through the same verification as an update (TUF targets,
// then the manifest's digests). They only say where to look in the booted
// slot: every chunk read there is checked against the new index's id.
func (u *Updater) bootedIndexes(ctx context.Context, p *Plan) (map[string]casync.Index, error) {
	out := map[string]casync.Index{}
	p.bootedIndexes = map[string][]byte{}
	if err := payload.CheckVersion(p.From); err != nil {
		return out, fmt.Errorf("booted version %q: %w", p.From, err)
	}
	for _, name := range payload.RequiredParts {
		b, err := os.ReadFile(u.Root.Join(IndexDir, p.From, name+".caibx"))
		if err != nil {
			continue
		}
		idx, err := casync.ParseIndex(b)
		if err != nil {
			u.log().Warn("kept chunk index unreadable, not used", "version", p.From, "part", name, "err", err)
			continue
		}
		out[name], p.bootedIndexes[name] = idx, b
	}
	if len(out) == len(payload.RequiredParts) {
		return out, nil
	}
	image, err := u.bootedImage(p.Booted)
	if err != nil {
		return out, err
	}
	rel, err := u.resolve(ctx, p, p.From, image)
	if err != nil {
		return out, fmt.Errorf("looking up %s in the repository: %w", p.From, err)
	}
	var errs []error
	for _, name := range payload.RequiredParts {
		if _, ok := out[name]; ok {
			continue
		}
		pt, ok := rel.Manifest.Parts[payload.IndexPart(name)]
		if !ok {
			errs = append(errs, fmt.Errorf("%s was published without a chunk index for %s", p.From, name))
			continue
		}
		b, err := (&repo.Client{Base: p.Source, HTTP: u.HTTP, Log: u.log()}).FetchPart(ctx, p.From, pt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		idx, err := delta.ParseIndex(b, rel.Manifest.Parts[name].Size)
		if err != nil {
			errs = append(errs, fmt.Errorf("chunk index %s of %s: %w", pt.File, p.From, err))
			continue
		}
		out[name], p.bootedIndexes[name] = idx, b
	}
	return out, errors.Join(errs...)
}

// IndexDir keeps the chunk indexes of the versions in the slots,
// <version>/<part>.caibx, so that the next update finds the booted slot's
// chunks without asking the repository (which may have dropped the
// version). Keyed by version: after a rollback the booted slot holds the
// older one.
const IndexDir = "/var/lib/bulkhead/updater/indexes"

// keepIndexes stores the chunk indexes of the version just installed and
// of the booted one, and removes those of every other version. It only
// helps the next update, so it logs instead of failing this one.
func (u *Updater) keepIndexes(p *Plan) {
	dir := u.Root.Join(IndexDir)
	for ver, idx := range map[string]map[string][]byte{p.From: p.bootedIndexes, p.To: p.indexes} {
		for name, b := range idx {
			if err := fsroot.WriteFile(filepath.Join(dir, ver, name+".caibx"), b, 0o644); err != nil {
				u.log().Warn("keeping chunk index", "version", ver, "part", name, "err", err)
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != p.From && e.Name() != p.To {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				u.log().Warn("removing chunk indexes", "version", e.Name(), "err", err)
			}
		}
	}
}

// fetchDelta fetches the missing chunks of every part into the chunk cache
// and assembles the small parts (verity tree, kernel, initrd) into the
// download directory, each checked against the manifest. The usr image is
// assembled later, straight into its partition (fillUsr).
func (u *Updater) fetchDelta(ctx context.Context, p *Plan) (map[string]string, error) {
	for _, name := range payload.RequiredParts {
		if err := p.deltas[name].Fetch(ctx); err != nil {
			return nil, err
		}
	}
	files := map[string]string{}
	for _, name := range []string{payload.PartVerity, payload.PartKernel, payload.PartInitrd} {
		pt := p.Manifest.Parts[name]
		final := filepath.Join(p.DownloadDir, pt.File)
		if n, sum, err := manifest.HashFile(final); err == nil && n == pt.Size && sum == pt.SHA256 {
			files[name] = final
			continue
		}
		if err := u.assembleFile(ctx, p.deltas[name], name, final+".assembling", pt); err != nil {
			return nil, fmt.Errorf("assembling %s of %s: %w", name, p.To, err)
		}
		if err := os.Rename(final+".assembling", final); err != nil {
			return nil, err
		}
		files[name] = final
	}
	return files, nil
}

// assembleFile writes a part from its chunks into a file and checks it
// against the manifest's size and sha256.
func (u *Updater) assembleFile(ctx context.Context, dp *delta.Plan, name, file string, pt payload.Part) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := dp.Assemble(ctx, f, "assemble "+name); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", file, err)
	}
	n, sum, err := manifest.HashFile(file)
	if err != nil {
		return err
	}
	if n != pt.Size || sum != pt.SHA256 {
		return fmt.Errorf("assembled %d bytes sha256 %s, want %d %s: %w", n, sum, pt.Size, pt.SHA256, repo.ErrDigestMismatch)
	}
	return nil
}

// fillUsr assembles the usr image into its partition; WriteSlot then reads
// it back and checks it against its sha256 and the verity root hash.
func fillUsr(p *Plan) func(ctx context.Context, dev io.WriterAt) error {
	return func(ctx context.Context, dev io.WriterAt) error {
		if err := p.deltas[payload.PartUsr].Assemble(ctx, dev, "write "+payload.PartUsr); err != nil {
			return fmt.Errorf("%w: %w", errDelta, err)
		}
		return nil
	}
}

// deltaSummary reports how a delta update went, for the log.
func deltaSummary(p *Plan) []any {
	var fetched, seeded int64
	for _, dp := range p.deltas {
		fetched += dp.Stats.FetchedBytes
		seeded += dp.Stats.SeedBytes
	}
	return []any{"fetchedBytes", fetched, "seedBytes", seeded, "fullBytes", p.FullBytes}
}
