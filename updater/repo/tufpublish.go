package repo

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/payload"
)

// Expiry is how long each role's metadata stays valid after it is signed.
// The timestamp is short-lived: a host that sees no fresh timestamp for
// longer than that knows it is being held back (ErrFreeze); the publisher
// re-signs it on a schedule (builder publish --refresh-timestamp).
type Expiry struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiry: a year for root, three months for targets and snapshot,
// a week for the timestamp.
var DefaultExpiry = Expiry{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour, Snapshot: 90 * 24 * time.Hour, Timestamp: 7 * 24 * time.Hour}

func (e Expiry) orDefault() Expiry {
	d := DefaultExpiry
	for _, p := range []struct{ v, d *time.Duration }{{&e.Root, &d.Root}, {&e.Targets, &d.Targets}, {&e.Snapshot, &d.Snapshot}, {&e.Timestamp, &d.Timestamp}} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	return e
}

// ErrNotEnoughKeys means the signing keys given do not reach a role's
// threshold: nothing is written.
var ErrNotEnoughKeys = errors.New("signing keys do not reach the role's threshold")

// Roles are the TUF top-level roles builder keys accepts.
var Roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// tufRepo is a repository's current TUF metadata, changed in memory and
// written by commit: nothing reaches the disk until every role is signed.
type tufRepo struct {
	dir       string
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	keys      []ed25519.PrivateKey
	now       time.Time
	exp       Expiry
	files     map[string][]byte // tuf/<name> to write, timestamp.json last
	newRoot   bool
}

func (r *tufRepo) path(name string) string {
	return filepath.Join(r.dir, filepath.FromSlash(TUFPath(name)))
}

// openTUF loads the repository's metadata, or starts it (root version 1,
// every role held by the given keys, threshold 1) when it has none.
func openTUF(dir string, keys []ed25519.PrivateKey, now time.Time, exp Expiry) (*tufRepo, error) {
	r := &tufRepo{dir: dir, keys: keys, now: now, exp: exp.orDefault(), files: map[string][]byte{}}
	b, err := os.ReadFile(r.path("root.json"))
	if errors.Is(err, os.ErrNotExist) {
		if len(keys) == 0 {
			return nil, fmt.Errorf("starting TUF metadata in %s: no signing key", dir)
		}
		r.root = metadata.Root(now.Add(r.exp.Root))
		for _, k := range keys {
			tk, err := metadata.KeyFromPublicKey(k.Public())
			if err != nil {
				return nil, err
			}
			for _, role := range Roles {
				if err := r.root.Signed.AddKey(tk, role); err != nil {
					return nil, err
				}
			}
		}
		r.newRoot = true
		r.targets = metadata.Targets(now.Add(r.exp.Targets))
		r.targets.Signed.Version = 0 // commit makes it 1
		r.snapshot = metadata.Snapshot(now.Add(r.exp.Snapshot))
		r.snapshot.Signed.Version = 0
		r.timestamp = metadata.Timestamp(now.Add(r.exp.Timestamp))
		r.timestamp.Signed.Version = 0
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading TUF metadata of %s: %w", dir, err)
	}
	if r.root, err = metadata.Root().FromBytes(b); err != nil {
		return nil, fmt.Errorf("reading %s: %w", r.path("root.json"), err)
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(r.path("timestamp.json")); err != nil {
		return nil, fmt.Errorf("reading %s: %w", r.path("timestamp.json"), err)
	}
	sv := r.timestamp.Signed.Meta["snapshot.json"].Version
	if r.snapshot, err = metadata.Snapshot().FromFile(r.path(strconv.FormatInt(sv, 10) + ".snapshot.json")); err != nil {
		return nil, fmt.Errorf("reading snapshot version %d in %s: %w", sv, dir, err)
	}
	tv := r.snapshot.Signed.Meta["targets.json"].Version
	if r.targets, err = metadata.Targets().FromFile(r.path(strconv.FormatInt(tv, 10) + ".targets.json")); err != nil {
		return nil, fmt.Errorf("reading targets version %d in %s: %w", tv, dir, err)
	}
	return r, nil
}

// signAs signs md for role with every given key the root lists for it and
// fails unless they reach the threshold.
func signAs[T metadata.Roles](r *tufRepo, root *metadata.Metadata[metadata.RootType], role string, md *metadata.Metadata[T]) error {
	md.ClearSignatures()
	rl := root.Signed.Roles[role]
	n := 0
	for _, k := range r.keys {
		tk, err := metadata.KeyFromPublicKey(k.Public())
		if err != nil {
			return err
		}
		id, err := tk.ID()
		if err != nil {
			return err
		}
		if !slices.Contains(rl.KeyIDs, id) {
			continue
		}
		s, err := signature.LoadED25519Signer(k)
		if err != nil {
			return err
		}
		if _, err := md.Sign(s); err != nil {
			return fmt.Errorf("signing %s metadata: %w", role, err)
		}
		n++
	}
	if n < rl.Threshold {
		return fmt.Errorf("signing %s metadata: %d of the given keys hold the role, its threshold is %d: %w", role, n, rl.Threshold, ErrNotEnoughKeys)
	}
	return nil
}

// metaFile describes a signed metadata file for the role above it.
func metaFile(version int64, b []byte) *metadata.MetaFiles {
	mf, _ := metadata.TargetFile().FromBytes("", b, "sha256")
	f := metadata.MetaFile(version)
	f.Length, f.Hashes = mf.Length, mf.Hashes
	return f
}

// bumpTargets re-signs targets, snapshot and timestamp with new versions.
func (r *tufRepo) bumpTargets() error {
	r.targets.Signed.Version++
	r.targets.Signed.Expires = r.now.Add(r.exp.Targets)
	if err := signAs(r, r.root, metadata.TARGETS, r.targets); err != nil {
		return err
	}
	tb, err := r.targets.ToBytes(true)
	if err != nil {
		return err
	}
	r.files[strconv.FormatInt(r.targets.Signed.Version, 10)+".targets.json"] = tb
	r.snapshot.Signed.Meta["targets.json"] = metaFile(r.targets.Signed.Version, tb)
	r.snapshot.Signed.Version++
	r.snapshot.Signed.Expires = r.now.Add(r.exp.Snapshot)
	if err := signAs(r, r.root, metadata.SNAPSHOT, r.snapshot); err != nil {
		return err
	}
	sb, err := r.snapshot.ToBytes(true)
	if err != nil {
		return err
	}
	r.files[strconv.FormatInt(r.snapshot.Signed.Version, 10)+".snapshot.json"] = sb
	return r.bumpTimestamp()
}

// bumpTimestamp re-signs the timestamp, pointing at the current snapshot.
func (r *tufRepo) bumpTimestamp() error {
	sb, err := r.snapshot.ToBytes(true)
	if err != nil {
		return err
	}
	r.timestamp.Signed.Meta["snapshot.json"] = metaFile(r.snapshot.Signed.Version, sb)
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = r.now.Add(r.exp.Timestamp)
	if err := signAs(r, r.root, metadata.TIMESTAMP, r.timestamp); err != nil {
		return err
	}
	b, err := r.timestamp.ToBytes(true)
	if err != nil {
		return err
	}
	r.files["timestamp.json"] = b
	return nil
}

// commit writes the signed files: versioned ones first (new names, never
// overwritten), root.json, then timestamp.json, the one a host reads first.
func (r *tufRepo) commit() error {
	if r.newRoot {
		if err := signAs(r, r.root, metadata.ROOT, r.root); err != nil {
			return err
		}
		b, err := r.root.ToBytes(true)
		if err != nil {
			return err
		}
		r.files[strconv.FormatInt(r.root.Signed.Version, 10)+".root.json"] = b
		r.files["root.json"] = b
	}
	var names []string
	for n := range r.files {
		if n != "timestamp.json" && n != "root.json" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if _, err := os.Stat(r.path(n)); err == nil {
			return fmt.Errorf("writing %s: %w: it exists", r.path(n), ErrVersionExists)
		}
	}
	for _, n := range append(names, "root.json", "timestamp.json") {
		b, ok := r.files[n]
		if !ok {
			continue
		}
		if err := fsroot.WriteFile(r.path(n), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// target describes a file for targets metadata.
func target(size int64, sha256Hex string) (*metadata.TargetFiles, error) {
	h, err := hex.DecodeString(sha256Hex)
	if err != nil {
		return nil, fmt.Errorf("target sha256 %q: %w", sha256Hex, err)
	}
	t := metadata.TargetFile()
	t.Length = size
	t.Hashes = metadata.Hashes{"sha256": h}
	return t, nil
}

// addVersion adds a version's manifest and parts as targets.
func (r *tufRepo) addVersion(m *payload.Manifest, body []byte) error {
	mt, err := metadata.TargetFile().FromBytes(VersionPath(m.Version, ManifestName), body, "sha256")
	if err != nil {
		return err
	}
	r.targets.Signed.Targets[mt.Path] = mt
	for _, pt := range m.Parts {
		t, err := target(pt.Size, pt.SHA256)
		if err != nil {
			return err
		}
		t.Path = VersionPath(m.Version, pt.File)
		r.targets.Signed.Targets[t.Path] = t
	}
	return nil
}

// setChannel makes channels/<channel>.json a target whose custom field is
// the channel: version, rollout (with its pause flag) and image, signed.
func (r *tufRepo) setChannel(c Channel, file []byte) error {
	t, err := metadata.TargetFile().FromBytes(ChannelPath(c.Channel), file, "sha256")
	if err != nil {
		return err
	}
	raw, err := json.Marshal(ChannelCustom{Bulkhead: c})
	if err != nil {
		return err
	}
	rm := json.RawMessage(raw)
	t.Custom = &rm
	r.targets.Signed.Targets[t.Path] = t
	return nil
}

// RefreshTimestamp re-signs only the timestamp metadata with a new version
// and expiry: run it more often than Expiry.Timestamp so hosts keep
// updating, without publishing anything.
func RefreshTimestamp(repoDir string, keys []ed25519.PrivateKey, now time.Time, exp Expiry) error {
	r, err := openTUF(repoDir, keys, now, exp)
	if err != nil {
		return err
	}
	if r.newRoot {
		return fmt.Errorf("refreshing the timestamp of %s: the repository has no TUF metadata yet (publish first)", repoDir)
	}
	if err := r.bumpTimestamp(); err != nil {
		return err
	}
	return r.commit()
}

// KeyChange adds a key to a role or revokes one, through a new root.
type KeyChange struct {
	Repo      string
	Role      string            // root, targets, snapshot or timestamp
	Key       ed25519.PublicKey // the key added or revoked
	Revoke    bool
	Threshold int // > 0: the role's new threshold
	// Signers sign the new root (a threshold of the old root's keys and of
	// the new root's) and re-sign the metadata of a changed role other than
	// root, so hosts never see it signed by a revoked key.
	Signers []ed25519.PrivateKey
	Now     time.Time
	Expiry  Expiry
}

// ChangeKey writes root version N+1 with the role's keys changed. Every
// check (thresholds reachable, signatures enough) is made before a file is
// written. It returns the new root version.
func ChangeKey(kc KeyChange) (int64, error) {
	if !slices.Contains(Roles, kc.Role) {
		return 0, fmt.Errorf("changing keys: role %q: want one of %s", kc.Role, strings.Join(Roles, ", "))
	}
	r, err := openTUF(kc.Repo, kc.Signers, kc.Now, kc.Expiry)
	if err != nil {
		return 0, err
	}
	if r.newRoot {
		return 0, fmt.Errorf("changing keys of %s: the repository has no TUF metadata yet (publish first)", kc.Repo)
	}
	old := r.root
	b, err := old.ToBytes(false)
	if err != nil {
		return 0, err
	}
	nr, err := metadata.Root().FromBytes(b)
	if err != nil {
		return 0, err
	}
	tk, err := metadata.KeyFromPublicKey(kc.Key)
	if err != nil {
		return 0, err
	}
	id, err := tk.ID()
	if err != nil {
		return 0, err
	}
	if kc.Revoke {
		if err := nr.Signed.RevokeKey(id, kc.Role); err != nil {
			return 0, fmt.Errorf("revoking key %s from %s: %w", payload.KeyID(kc.Key), kc.Role, err)
		}
	} else if err := nr.Signed.AddKey(tk, kc.Role); err != nil {
		return 0, fmt.Errorf("adding key %s to %s: %w", payload.KeyID(kc.Key), kc.Role, err)
	}
	rl := nr.Signed.Roles[kc.Role]
	if kc.Threshold > 0 {
		rl.Threshold = kc.Threshold
	}
	if rl.Threshold > len(rl.KeyIDs) {
		return 0, fmt.Errorf("changing keys of %s: threshold %d above its %d keys: hosts could never verify it", kc.Role, rl.Threshold, len(rl.KeyIDs))
	}
	nr.Signed.Version++
	nr.Signed.Expires = r.now.Add(r.exp.Root)
	// TUF §5.3.4: a new root verifies with the old root's keys and its own.
	nr.ClearSignatures()
	for _, k := range kc.Signers {
		tk, _ := metadata.KeyFromPublicKey(k.Public())
		kid, _ := tk.ID()
		if !slices.Contains(old.Signed.Roles[metadata.ROOT].KeyIDs, kid) && !slices.Contains(nr.Signed.Roles[metadata.ROOT].KeyIDs, kid) {
			continue
		}
		s, err := signature.LoadED25519Signer(k)
		if err != nil {
			return 0, err
		}
		if _, err := nr.Sign(s); err != nil {
			return 0, err
		}
	}
	if err := old.VerifyDelegate(metadata.ROOT, nr); err != nil {
		return 0, fmt.Errorf("signing root version %d: not a threshold of the old root keys: %w (%w)", nr.Signed.Version, ErrNotEnoughKeys, err)
	}
	if err := nr.VerifyDelegate(metadata.ROOT, nr); err != nil {
		return 0, fmt.Errorf("signing root version %d: not a threshold of its own root keys: %w (%w)", nr.Signed.Version, ErrNotEnoughKeys, err)
	}
	nb, err := nr.ToBytes(true)
	if err != nil {
		return 0, err
	}
	r.root = nr
	if kc.Role != metadata.ROOT {
		if err := r.bumpTargets(); err != nil {
			return 0, err
		}
	}
	r.files[strconv.FormatInt(nr.Signed.Version, 10)+".root.json"] = nb
	r.files["root.json"] = nb
	if err := r.commit(); err != nil {
		return 0, err
	}
	return nr.Signed.Version, nil
}
