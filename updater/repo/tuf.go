package repo

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/payload"
)

// TUF metadata lives under tuf/ in the repository (TUF specification 1.0,
// https://theupdateframework.github.io/specification/latest/): root.json and
// every <N>.root.json, timestamp.json, and with consistent snapshots
// <N>.snapshot.json and <N>.targets.json, so a host never pairs a new
// timestamp with a half-written snapshot.
const (
	TUFDir = "tuf"
	// TrustedDir is where a host keeps the last metadata it trusted.
	TrustedDir = "/var/lib/bulkhead/updater/tuf"
)

// TrustedPath is where metadata trusted from the repository at base is
// kept under dir: one directory per repository URL, so that pointing a host
// at another repository (signed with the same image key, with its own
// version numbers) starts from that repository's first root instead of
// mixing two repositories' metadata. Rollback protection holds per URL;
// the URL is the operator's configuration, not something a mirror or a
// man in the middle chooses.
func TrustedPath(dir, base string) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(base, "/")))
	return filepath.Join(dir, hex.EncodeToString(sum[:8]))
}

// TUFPath is tuf/<name>.
func TUFPath(name string) string { return path.Join(TUFDir, name) }

// Errors that name the attack a refused repository looks like, so that
// `hostctl status` tells an operator why the host does not update.
var (
	// ErrFreeze: metadata has expired. A mirror or a man in the middle
	// serving old (validly signed) metadata would hold hosts on an old
	// version while they report "up to date".
	ErrFreeze = errors.New("freeze attack: repository metadata has expired")
	// ErrRollback: metadata is older than metadata this host already trusted.
	ErrRollback = errors.New("rollback attack: repository metadata is older than what this host already trusted")
	// ErrMixAndMatch: snapshot or targets metadata is not the one the signed
	// timestamp or snapshot lists.
	ErrMixAndMatch = errors.New("mix-and-match attack: metadata does not match what the signed timestamp/snapshot lists")
	// ErrUntrustedMetadata: not signed by a threshold of the trusted keys
	// (a revoked key, a foreign repository).
	ErrUntrustedMetadata = errors.New("repository metadata is not signed by a threshold of trusted keys")
	// ErrWrongImage: the channel or version belongs to another image or
	// channel than the one asked for.
	ErrWrongImage = errors.New("update is bound to another image or channel")
	// ErrTUFGone: this host trusted TUF metadata from its repository before
	// and the repository now serves none: refused, not read as the old
	// unsigned-channel format (a downgrade of the protocol).
	ErrTUFGone = errors.New("repository serves no TUF metadata but this host trusted TUF metadata before")
)

// ChannelCustom is the custom field of a channel's target
// (channels/<channel>.json) in targets metadata: the channel's version,
// rollout and pause flag are signed with the targets key, bound to an image.
type ChannelCustom struct {
	Bulkhead Channel `json:"bulkhead"`
}

// Release is a verified answer to "what should this host run".
type Release struct {
	Channel  *Channel // nil when a version was asked for by name
	Manifest *payload.Manifest
	Format   string // "tuf" or "legacy"
	SignedBy string
}

// ResolveRequest says what to resolve and where trust comes from.
type ResolveRequest struct {
	Channel string // channel name; the version comes from it when Version is ""
	Version string // a version asked for by name
	Image   string // the booted image's name: updates of other images are refused
	// TrustedDir keeps the last trusted metadata (root-joined TrustedDir).
	TrustedDir string
	// KeysDir holds the image's trusted keys (root-joined payload.KeysDir):
	// the root of trust for the first root metadata and for the legacy format.
	KeysDir string
	Now     time.Time
}

// Resolve verifies the repository's metadata and returns the release for
// the channel (or the version asked for). A repository with TUF metadata is
// read through TUF only; one without (the format before TUF) is read the
// old way, channel file and signed manifest, unless this host trusted TUF
// metadata before (ErrTUFGone).
func (c *Client) Resolve(ctx context.Context, r ResolveRequest) (*Release, error) {
	if r.Image == "" {
		return nil, fmt.Errorf("resolving an update: %w: the booted image has no name", ErrWrongImage)
	}
	if err := CheckChannelName(r.Channel); err != nil && r.Version == "" {
		return nil, err
	}
	r.TrustedDir = TrustedPath(r.TrustedDir, c.Base)
	tm, err := c.refresh(ctx, r)
	if errors.Is(err, errNoTUF) {
		return c.resolveLegacy(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	return c.resolveTUF(ctx, r, tm)
}

var errNoTUF = errors.New("no TUF metadata")

// refresh runs the TUF client workflow (specification §5.3-5.6) and keeps
// every metadata file it trusts under r.TrustedDir.
func (c *Client) refresh(ctx context.Context, r ResolveRequest) (*trustedmetadata.TrustedMetadata, error) {
	trustedRoot, err := os.ReadFile(filepath.Join(r.TrustedDir, "root.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		trustedRoot, err = c.bootstrapRoot(ctx, r.KeysDir)
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("reading trusted update metadata: %w", err)
	}
	tm, err := trustedmetadata.New(trustedRoot)
	if err != nil {
		return nil, fmt.Errorf("loading trusted root metadata: %w", classify(err))
	}
	tm.RefTime = r.Now
	if err := c.save(r.TrustedDir, "root.json", trustedRoot); err != nil {
		return nil, err
	}
	// §5.3: walk root versions one by one; each must be signed by a
	// threshold of the previous root's keys and of its own.
	for {
		next := tm.Root.Signed.Version + 1
		b, err := c.get(ctx, TUFPath(strconv.FormatInt(next, 10)+".root.json"))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if _, err := tm.UpdateRoot(b); err != nil {
			return nil, fmt.Errorf("root metadata version %d from %s: %w", next, c.Base, classify(err))
		}
		if err := c.save(r.TrustedDir, "root.json", b); err != nil {
			return nil, err
		}
	}
	// §5.4 timestamp: the trusted one first, for rollback protection.
	if b, err := os.ReadFile(filepath.Join(r.TrustedDir, "timestamp.json")); err == nil {
		// An expired trusted timestamp still guards versions; one signed
		// by a key rotated out since does not load and guards nothing.
		tm.UpdateTimestamp(b)
	}
	b, err := c.get(ctx, TUFPath("timestamp.json"))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w (%w)", c.Base, ErrTUFGone, err)
	}
	if err != nil {
		return nil, err
	}
	_, err = tm.UpdateTimestamp(b)
	equal := errors.Is(err, &metadata.ErrEqualVersionNumber{})
	if err != nil && !equal {
		return nil, fmt.Errorf("timestamp metadata from %s: %w", c.Base, classify(err))
	}
	if tm.Timestamp.Signed.IsExpired(r.Now) {
		return nil, fmt.Errorf("timestamp metadata version %d from %s expired %s: %w", tm.Timestamp.Signed.Version, c.Base,
			tm.Timestamp.Signed.Expires.Format(time.RFC3339), ErrFreeze)
	}
	if !equal {
		if err := c.save(r.TrustedDir, "timestamp.json", b); err != nil {
			return nil, err
		}
	}
	// §5.5 snapshot.
	var oldSnap int64
	if b, err := os.ReadFile(filepath.Join(r.TrustedDir, "snapshot.json")); err == nil {
		tm.UpdateSnapshot(b, true) // loaded even when not final: guards versions
		if tm.Snapshot != nil {
			oldSnap = tm.Snapshot.Signed.Version
		}
	}
	want := tm.Timestamp.Signed.Meta["snapshot.json"].Version
	if tm.Snapshot == nil || tm.Snapshot.Signed.Version != want || tm.Snapshot.Signed.IsExpired(r.Now) {
		b, err := c.get(ctx, TUFPath(strconv.FormatInt(want, 10)+".snapshot.json"))
		if err != nil {
			return nil, err
		}
		if _, err := tm.UpdateSnapshot(b, false); err != nil {
			return nil, fmt.Errorf("snapshot metadata version %d from %s: %w", want, c.Base, classifyVersioned(err, b, oldSnap))
		}
		if err := c.save(r.TrustedDir, "snapshot.json", b); err != nil {
			return nil, err
		}
	}
	// §5.6 targets.
	want = tm.Snapshot.Signed.Meta["targets.json"].Version
	b, err = os.ReadFile(filepath.Join(r.TrustedDir, "targets.json"))
	var oldTargets int64
	if err == nil {
		if t, err := tm.UpdateTargets(b); err == nil {
			oldTargets = t.Signed.Version
		} else if t, perr := metadata.Targets().FromBytes(b); perr == nil {
			oldTargets = t.Signed.Version
		}
	}
	if tm.Targets[metadata.TARGETS] == nil {
		b, err := c.get(ctx, TUFPath(strconv.FormatInt(want, 10)+".targets.json"))
		if err != nil {
			return nil, err
		}
		if _, err := tm.UpdateTargets(b); err != nil {
			return nil, fmt.Errorf("targets metadata version %d from %s: %w", want, c.Base, classifyVersioned(err, b, oldTargets))
		}
		if err := c.save(r.TrustedDir, "targets.json", b); err != nil {
			return nil, err
		}
	}
	return tm, nil
}

// bootstrapRoot fetches tuf/1.root.json and trusts it when a threshold of
// its root role's signatures are by keys the image carries in KeysDir: the
// image's keys stay the root of trust across the move to TUF.
func (c *Client) bootstrapRoot(ctx context.Context, keysDir string) ([]byte, error) {
	b, err := c.get(ctx, TUFPath("1.root.json"))
	if errors.Is(err, ErrNotFound) {
		return nil, errNoTUF
	}
	if err != nil {
		return nil, err
	}
	keys, err := payload.LoadPublicKeys(keysDir)
	if err != nil {
		return nil, err
	}
	cand, err := metadata.Root().FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("reading root metadata from %s: %w", c.Base, err)
	}
	anchor := metadata.Root(time.Now().Add(time.Hour))
	for _, k := range keys {
		tk, err := metadata.KeyFromPublicKey(ed25519.PublicKey(k.Key))
		if err != nil {
			return nil, err
		}
		if err := anchor.Signed.AddKey(tk, metadata.ROOT); err != nil {
			return nil, err
		}
	}
	if role := cand.Signed.Roles[metadata.ROOT]; role != nil {
		anchor.Signed.Roles[metadata.ROOT].Threshold = role.Threshold
	}
	if err := anchor.VerifyDelegate(metadata.ROOT, cand); err != nil {
		return nil, fmt.Errorf("first root metadata of %s is not signed by the image's keys in %s: %w (%w)", c.Base, keysDir, ErrUntrustedMetadata, err)
	}
	return b, nil
}

// legacyForbidden tells whether dir holds TUF metadata trusted before.
func legacyForbidden(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "timestamp.json"))
	return err == nil
}

// save keeps a trusted metadata file.
func (c *Client) save(dir, name string, b []byte) error {
	if err := fsroot.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return fmt.Errorf("keeping trusted update metadata: %w", err)
	}
	return nil
}

// classify maps go-tuf's errors onto the attacks they reveal.
func classify(err error) error {
	switch {
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return fmt.Errorf("%w: %w", ErrFreeze, err)
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		return fmt.Errorf("%w: %w", ErrRollback, err)
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		return fmt.Errorf("%w: %w", ErrMixAndMatch, err)
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		return fmt.Errorf("%w: %w", ErrUntrustedMetadata, err)
	}
	return err
}

// classifyVersioned classifies a refused snapshot or targets file: older
// than the trusted one is a rollback, any other mismatch with what the
// signed metadata above it lists is mix-and-match.
func classifyVersioned(err error, b []byte, trusted int64) error {
	var v struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(b, &v) == nil && trusted > 0 && v.Signed.Version < trusted {
		return fmt.Errorf("%w: version %d, trusted %d: %w", ErrRollback, v.Signed.Version, trusted, err)
	}
	switch {
	case errors.Is(err, &metadata.ErrBadVersionNumber{}), errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		return fmt.Errorf("%w: %w", ErrMixAndMatch, err)
	}
	return classify(err)
}

// resolveTUF finds the channel (or version) in verified targets metadata
// and fetches the version's manifest as a target (length and sha256 checked).
func (c *Client) resolveTUF(ctx context.Context, r ResolveRequest, tm *trustedmetadata.TrustedMetadata) (*Release, error) {
	targets := tm.Targets[metadata.TARGETS].Signed.Targets
	rel := &Release{Format: "tuf", SignedBy: signedBy(tm, r.KeysDir)}
	version := r.Version
	if version == "" {
		t, ok := targets[ChannelPath(r.Channel)]
		if !ok || t.Custom == nil {
			return nil, fmt.Errorf("channel %s in %s: %w", r.Channel, c.Base, ErrNotFound)
		}
		var cc ChannelCustom
		if err := json.Unmarshal(*t.Custom, &cc); err != nil {
			return nil, fmt.Errorf("channel %s in %s: %w: %w", r.Channel, c.Base, ErrInvalidChannel, err)
		}
		ch := cc.Bulkhead
		if _, err := ParseChannel(mustJSON(ch)); err != nil {
			return nil, fmt.Errorf("channel %s in %s: %w", r.Channel, c.Base, err)
		}
		if ch.Channel != r.Channel || ch.Image != r.Image {
			return nil, fmt.Errorf("channel %s of image %s in %s is signed as channel %q of image %q: %w",
				r.Channel, r.Image, c.Base, ch.Channel, ch.Image, ErrWrongImage)
		}
		rel.Channel = &ch
		version = ch.Version
	}
	if err := payload.CheckVersion(version); err != nil {
		return nil, fmt.Errorf("resolving %q: %w", version, err)
	}
	mp := VersionPath(version, ManifestName)
	t, ok := targets[mp]
	if !ok {
		return nil, fmt.Errorf("version %s in %s: %w", version, c.Base, ErrNotFound)
	}
	if t.Length > maxSmall {
		return nil, fmt.Errorf("version %s in %s: manifest of %d bytes: %w", version, c.Base, t.Length, ErrTooLarge)
	}
	body, err := c.get(ctx, mp)
	if err != nil {
		return nil, err
	}
	if err := t.VerifyLengthHashes(body); err != nil {
		return nil, fmt.Errorf("manifest of %s from %s: %w", version, c.Base, classify(err))
	}
	m, err := payload.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s from %s: %w", version, c.Base, err)
	}
	if m.Version != version || m.Name != r.Image {
		return nil, fmt.Errorf("manifest of %s from %s is version %s of image %q, this host runs image %q: %w",
			version, c.Base, m.Version, m.Name, r.Image, ErrWrongImage)
	}
	// Every part must be a target of the same length and sha256: the
	// manifest says what to write, the targets metadata vouches for it.
	for name, pt := range m.Parts {
		tp, ok := targets[VersionPath(version, pt.File)]
		if !ok || tp.Length != pt.Size || tp.Hashes["sha256"].String() != pt.SHA256 {
			return nil, fmt.Errorf("part %s of %s in %s: %w: not a target of that length and sha256", name, version, c.Base, ErrMixAndMatch)
		}
	}
	rel.Manifest = m
	return rel, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// resolveLegacy reads a repository in the format before TUF: an unsigned
// channel file and a manifest signed by a key in KeysDir.
func (c *Client) resolveLegacy(ctx context.Context, r ResolveRequest) (*Release, error) {
	if legacyForbidden(r.TrustedDir) {
		return nil, fmt.Errorf("%s: %w", c.Base, ErrTUFGone)
	}
	rel := &Release{Format: "legacy"}
	version := r.Version
	if version == "" {
		ch, err := c.Channel(ctx, r.Channel)
		if err != nil {
			return nil, err
		}
		rel.Channel, version = ch, ch.Version
	}
	sm, err := c.Manifest(ctx, version)
	if err != nil {
		return nil, err
	}
	keys, err := payload.LoadPublicKeys(r.KeysDir)
	if err != nil {
		return nil, err
	}
	key, err := payload.Verify(sm.Body, sm.Sig, keys)
	if err != nil {
		return nil, fmt.Errorf("verifying manifest of %s from %s: %w", version, c.Base, err)
	}
	rel.SignedBy = key.ID()
	if key.Comment != "" {
		rel.SignedBy += " (" + key.Comment + ")"
	}
	if rel.Manifest, err = payload.Parse(sm.Body); err != nil {
		return nil, fmt.Errorf("reading manifest of %s from %s: %w", version, c.Base, err)
	}
	if rel.Manifest.Version != version {
		return nil, fmt.Errorf("manifest of %s says %s: %w", version, rel.Manifest.Version, ErrWrongImage)
	}
	return rel, nil
}

// signedBy names the keys whose signatures on the targets metadata the
// root lists for the role, as payload key ids with the comment of the
// image's key file when it is one of them.
func signedBy(tm *trustedmetadata.TrustedMetadata, keysDir string) string {
	comments := map[string]string{}
	if keys, err := payload.LoadPublicKeys(keysDir); err == nil {
		for _, k := range keys {
			comments[k.ID()] = k.Comment
		}
	}
	var out []string
	for _, sig := range tm.Targets[metadata.TARGETS].Signatures {
		k, ok := tm.Root.Signed.Keys[sig.KeyID]
		if !ok || !slices.Contains(tm.Root.Signed.Roles[metadata.TARGETS].KeyIDs, sig.KeyID) {
			continue
		}
		pub, err := k.ToPublicKey()
		ek, isEd := pub.(ed25519.PublicKey)
		if err != nil || !isEd {
			continue
		}
		id := payload.KeyID(ek)
		if c := comments[id]; c != "" {
			id += " (" + c + ")"
		}
		out = append(out, id)
	}
	return strings.Join(out, ", ")
}

// Attack names the attack a Resolve error reports ("freeze", "rollback",
// "mix-and-match", "untrusted-metadata", "wrong-image", "tuf-gone"), or ""
// for other errors: for status output that scripts and tests can match.
func Attack(err error) string {
	for _, a := range []struct {
		err  error
		name string
	}{{ErrFreeze, "freeze"}, {ErrRollback, "rollback"}, {ErrMixAndMatch, "mix-and-match"},
		{ErrUntrustedMetadata, "untrusted-metadata"}, {ErrWrongImage, "wrong-image"}, {ErrTUFGone, "tuf-gone"}} {
		if errors.Is(err, a.err) {
			return a.name
		}
	}
	return ""
}
