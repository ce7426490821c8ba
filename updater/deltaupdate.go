package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
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
// its digest there. It chunks the seeds to count what is missing. When it
// cannot, the plan keeps the full payload and says why.
func (u *Updater) planDelta(ctx context.Context, p *Plan) error {
	p.FullBytes = p.DownloadBytes
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
	seeds, err := u.seeds(ctx, p)
	if err != nil {
		return err
	}
	client := &repo.Client{Base: p.Source, HTTP: u.HTTP, Log: u.log()}
	plans := map[string]*delta.Plan{}
	var bytes int64
	for _, name := range payload.RequiredParts {
		b, err := client.FetchPart(ctx, p.To, m.Parts[payload.IndexPart(name)])
		if err != nil {
			return err
		}
		idx, err := delta.ParseIndex(b, m.Parts[name].Size)
		if err != nil {
			return fmt.Errorf("chunk index of %s %s: %w", p.To, name, err)
		}
		dp, err := delta.NewPlan(ctx, delta.Image{Name: name, Index: idx, Seeds: seeds[name], CacheDir: chunkCacheDir(p),
			Fetch: client.Chunk, Log: u.log(), Progress: u.Progress})
		if err != nil {
			return err
		}
		plans[name] = dp
		bytes += int64(len(b)) + dp.Stats.MissingBytes
	}
	p.Delta, p.deltas, p.DownloadBytes = true, plans, bytes
	return nil
}

// seeds are where each part's chunks may already be: the booted slot's
// /usr through dm-verity, its verity partition, its kernel and initrd.
func (u *Updater) seeds(ctx context.Context, p *Plan) (map[string][]string, error) {
	ver, err := u.findPartition(ctx, verityLabel(p.Booted))
	if err != nil {
		return nil, err
	}
	dir := u.host().ESP(bootcfg.SlotDir(p.Booted))
	return map[string][]string{
		payload.PartUsr:    {u.Root.Join(BootedUsrDevice)},
		payload.PartVerity: {ver.Dev},
		payload.PartKernel: {filepath.Join(dir, bootcfg.KernelFile)},
		payload.PartInitrd: {filepath.Join(dir, bootcfg.InitrdFile)},
	}, nil
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
