package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
)

// ErrVersionExists means the repository already holds a different build of
// the version: a published version is immutable, hosts may have half of it.
var ErrVersionExists = errors.New("version already published with different content")

// PublishOptions say what to publish where.
type PublishOptions struct {
	Repo    string             // repository directory
	Channel string             // "" publishes the version without pointing a channel at it
	OutDir  string             // the build output, out/<name>
	Key     ed25519.PrivateKey // signs the pre-TUF manifest.json.sig, for hosts not on TUF yet
	// Keys sign the TUF metadata: each role with those of them the root
	// lists for it (a threshold > 1 needs several). Empty: Key alone.
	Keys    []ed25519.PrivateKey
	Expiry  Expiry           // zero fields: DefaultExpiry
	Now     time.Time        // zero: time.Now
	MinFrom string           // oldest version that may update to this one; "" for any
	Rollout *rollout.Rollout // nil: every host at once
	// Chunker, when set, cuts each part into chunks for delta updates:
	// the chunks go to the store (ChunksDir), the part's index is a part of
	// the version. Nil publishes full parts only.
	Chunker Chunker
	Log     *slog.Logger
}

// Chunker makes the chunk indexes and store of delta updates. It is an
// interface so that this package, whose client every host links, does not
// link the chunker (package updater/delta/chunker, through desync, which
// brings cloud storage SDKs): the builder passes one in.
type Chunker interface {
	// Index chunks file and returns its casync index (.caibx).
	Index(ctx context.Context, file string) ([]byte, error)
	// Store adds the chunks of file that index lists, compressed, to the
	// chunk store in dir, keeping those already there.
	Store(ctx context.Context, file string, index []byte, dir string) error
}

// buildParts maps update parts to the build outputs they come from.
var buildParts = map[string]string{
	payload.PartUsr:    manifest.PartUsr,
	payload.PartVerity: manifest.PartVerity,
	payload.PartKernel: manifest.PartKernel,
	payload.PartInitrd: manifest.PartInitrd,
}

// buildPart is the build-manifest part an update part comes from: the
// chain's parts have the same names in both.
func buildPart(name string) string {
	if bp, ok := buildParts[name]; ok {
		return bp
	}
	return name
}

// publishedParts are the update parts of a build: the required ones and,
// when the build has it, the boot chain (builds from before it have none,
// and publish as they did). Chain parts are published whole: they are
// small, and a host installs them only from complete, verified files.
func publishedParts(bm *manifest.Build) []string {
	names := slices.Clone(payload.RequiredParts)
	for _, f := range bootabi.ChainFiles {
		if _, ok := bm.Parts[bootabi.ChainPart(f.Name)]; ok {
			names = append(names, bootabi.ChainPart(f.Name))
		}
	}
	return names
}

// Publish copies a build's payload into the repository, writes its signed
// manifest and points the channel at it. Parts are hashed while copied and
// must match the build manifest, so a damaged output is never signed. The
// channel file is written last: until then no host sees the version.
func Publish(ctx context.Context, o PublishOptions) (*payload.Manifest, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if len(o.Keys) == 0 && o.Key != nil {
		o.Keys = []ed25519.PrivateKey{o.Key}
	}
	if o.Key == nil && len(o.Keys) > 0 {
		o.Key = o.Keys[0]
	}
	if o.Key == nil {
		return nil, errors.New("publishing: no signing key")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Channel != "" {
		if err := CheckChannelName(o.Channel); err != nil {
			return nil, err
		}
	}
	bm, err := manifest.Read(o.OutDir)
	if err != nil {
		return nil, err
	}
	m := &payload.Manifest{
		Format: payload.FormatVersion, Name: bm.Name, Version: bm.Version, MinFromVersion: o.MinFrom,
		KernelVersion: bm.KernelVersion, KernelArgs: bm.KernelArgs, RootHash: bm.RootHash,
		VeritySalt: bm.VeritySalt, Parts: map[string]payload.Part{},
	}
	if m.KernelArgs == nil {
		m.KernelArgs = []string{}
	}
	if err := payload.CheckVersion(m.Version); err != nil {
		return nil, fmt.Errorf("publishing %s: version %q: %w", o.OutDir, m.Version, err)
	}
	if o.MinFrom != "" && payload.CompareVersions(o.MinFrom, m.Version) > 0 {
		return nil, fmt.Errorf("publishing %s: minimum version %s is above the version itself", m.Version, o.MinFrom)
	}
	verDir := filepath.Join(o.Repo, filepath.FromSlash(VersionPath(m.Version, "")))
	// Hash the build's parts first and decide everything before the first
	// write: a version already in the repository is immutable, and hosts may
	// hold half of it, so a different build under its number is refused
	// while every published file is still as it was.
	src := map[string]string{}
	names := publishedParts(bm)
	for _, name := range names {
		bp, ok := bm.Parts[buildPart(name)]
		if !ok {
			return nil, fmt.Errorf("publishing %s: build manifest has no %q part", o.OutDir, buildPart(name))
		}
		src[name] = filepath.Join(o.OutDir, bp.File)
		size, sum, err := manifest.HashFile(src[name])
		if err != nil {
			return nil, fmt.Errorf("publishing %s: %w", m.Version, err)
		}
		if size != bp.Size || sum != bp.SHA256 {
			return nil, fmt.Errorf("publishing %s: %s is %d bytes sha256 %s, the build manifest says %d bytes %s",
				m.Version, bp.File, size, sum, bp.Size, bp.SHA256)
		}
		file := filepath.Base(bp.File)
		if strings.HasPrefix(name, bootabi.ChainPartPrefix) {
			file = name // bootchain.grub.cfg: the chain's names alone are ambiguous
		}
		m.Parts[name] = payload.Part{File: file, Size: size, SHA256: sum}
	}
	// Chunk indexes are parts of the manifest, so they are signed with it
	// and are TUF targets like the others. Made from the hashed files, in
	// memory; the chunks are stored after every check.
	indexes := map[string][]byte{}
	if o.Chunker != nil {
		for _, name := range payload.RequiredParts {
			b, err := o.Chunker.Index(ctx, src[name])
			if err != nil {
				return nil, fmt.Errorf("publishing %s: %w", m.Version, err)
			}
			file := payload.IndexFile(m.Parts[name].File)
			// Hosts read it with casync: refuse here what they would.
			idx, err := casync.ParseIndex(b)
			if err == nil && idx.Length() != m.Parts[name].Size {
				err = fmt.Errorf("its chunks make %d bytes, the part is %d", idx.Length(), m.Parts[name].Size)
			}
			if err != nil {
				return nil, fmt.Errorf("publishing %s: chunk index %s: %w", m.Version, file, err)
			}
			indexes[file] = b
			sum := sha256.Sum256(b)
			m.Parts[payload.IndexPart(name)] = payload.Part{File: file, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
		}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("publishing %s: %w", o.OutDir, err)
	}
	body, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	mPath := filepath.Join(verDir, ManifestName)
	if err := checkImmutable(verDir, body, m); err != nil {
		return nil, fmt.Errorf("publishing %s to %s: %w", m.Version, o.Repo, err)
	}
	// Sign the TUF metadata in memory before the first write: keys that
	// do not reach a threshold refuse the publish with nothing changed.
	tr, err := openTUF(o.Repo, o.Keys, o.Now, o.Expiry)
	if err != nil {
		return nil, err
	}
	if err := tr.addVersion(m, body); err != nil {
		return nil, err
	}
	var chFile []byte
	if o.Channel != "" {
		ch := Channel{Format: ChannelFormat, Channel: o.Channel, Image: m.Name, Version: m.Version, Rollout: o.Rollout}
		if chFile, err = jsonIndent(ch); err != nil {
			return nil, err
		}
		if err := tr.setChannel(ch, chFile); err != nil {
			return nil, err
		}
	}
	if err := tr.bumpTargets(); err != nil {
		return nil, fmt.Errorf("publishing %s to %s: %w", m.Version, o.Repo, err)
	}
	for _, name := range names {
		pt := m.Parts[name]
		dst := filepath.Join(verDir, pt.File)
		if size, sum, err := manifest.HashFile(dst); err == nil && size == pt.Size && sum == pt.SHA256 {
			continue // published before, unchanged: leave it alone
		}
		size, sum, err := slotwriter.InstallFile(ctx, src[name], dst, 0o644)
		if err != nil {
			return nil, err
		}
		if size != pt.Size || sum != pt.SHA256 {
			return nil, fmt.Errorf("publishing %s: %s changed while it was copied: %d bytes sha256 %s, hashed before as %d bytes %s",
				m.Version, src[name], size, sum, pt.Size, pt.SHA256)
		}
	}
	// The chunks, then the indexes naming them: an index is never published
	// before its chunks are in the store.
	if len(indexes) > 0 {
		store := filepath.Join(o.Repo, ChunksDir)
		for _, name := range payload.RequiredParts {
			file := payload.IndexFile(m.Parts[name].File)
			if err := o.Chunker.Store(ctx, src[name], indexes[file], store); err != nil {
				return nil, fmt.Errorf("publishing %s: %w", m.Version, err)
			}
			if _, _, err := slotwriter.Install(ctx, bytes.NewReader(indexes[file]), filepath.Join(verDir, file), 0o644); err != nil {
				return nil, err
			}
		}
		log.Info("chunked parts into the store", "version", m.Version, "store", store)
	}
	// The signature goes first: a reader that finds the manifest finds its
	// signature too.
	if err := fsroot.WriteFile(filepath.Join(verDir, SigName), payload.Sign(body, o.Key), 0o644); err != nil {
		return nil, err
	}
	if err := fsroot.WriteFile(mPath, body, 0o644); err != nil {
		return nil, err
	}
	if o.Channel != "" {
		// The pre-TUF channel file, for hosts still on that format: the
		// same bytes the signed channel target describes.
		if err := fsroot.WriteFile(filepath.Join(o.Repo, filepath.FromSlash(ChannelPath(o.Channel))), chFile, 0o644); err != nil {
			return nil, err
		}
	}
	// The timestamp goes last: until then no TUF host sees the version.
	if err := tr.commit(); err != nil {
		return nil, err
	}
	log.Info("published version", "version", m.Version, "repo", o.Repo, "channel", o.Channel)
	return m, nil
}

// SetChannel points a channel at a published version (its rollout and
// pause flag with it): the channel's TUF target, signed with keys, and the
// pre-TUF channel file. The image the channel is bound to is the version's.
func SetChannel(repoDir string, c Channel, keys []ed25519.PrivateKey, now time.Time) error {
	if err := CheckChannelName(c.Channel); err != nil {
		return err
	}
	body, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(VersionPath(c.Version, ManifestName))))
	if err != nil {
		return fmt.Errorf("pointing channel %s at %s: the version is not published: %w", c.Channel, c.Version, err)
	}
	m, err := payload.Parse(body)
	if err != nil {
		return fmt.Errorf("pointing channel %s at %s: %w", c.Channel, c.Version, err)
	}
	c.Format, c.Image = ChannelFormat, m.Name
	b, err := jsonIndent(c)
	if err != nil {
		return err
	}
	tr, err := openTUF(repoDir, keys, now, Expiry{})
	if err != nil {
		return err
	}
	if tr.newRoot {
		return fmt.Errorf("pointing channel %s at %s: %s has no TUF metadata (publish first)", c.Channel, c.Version, repoDir)
	}
	if err := tr.setChannel(c, b); err != nil {
		return err
	}
	if err := tr.bumpTargets(); err != nil {
		return fmt.Errorf("pointing channel %s at %s: %w", c.Channel, c.Version, err)
	}
	if err := fsroot.WriteFile(filepath.Join(repoDir, filepath.FromSlash(ChannelPath(c.Channel))), b, 0o644); err != nil {
		return err
	}
	return tr.commit()
}

// checkImmutable refuses a publish whose manifest differs from the one the
// repository holds for the version, or (for a version whose manifest never
// got written) whose parts differ from part files already there.
func checkImmutable(verDir string, body []byte, m *payload.Manifest) error {
	old, err := os.ReadFile(filepath.Join(verDir, ManifestName))
	switch {
	case err == nil && !bytes.Equal(old, body):
		return fmt.Errorf("%w: %s differs from the manifest of this build", ErrVersionExists, filepath.Join(verDir, ManifestName))
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("reading the published manifest: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Parts)) {
		pt := m.Parts[name]
		p := filepath.Join(verDir, pt.File)
		size, sum, err := manifest.HashFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if size != pt.Size || sum != pt.SHA256 {
			return fmt.Errorf("%w: %s is %d bytes sha256 %s, this build's is %d bytes %s", ErrVersionExists, p, size, sum, pt.Size, pt.SHA256)
		}
	}
	return nil
}
