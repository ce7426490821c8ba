package repo

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// tufEnv is a TUF repository served over HTTP and a host that trusts the
// image key.
type tufEnv struct {
	repoDir, keysDir, trusted string
	key                       updatertest.Key
	srv                       *httptest.Server
}

func newTUFEnv(t *testing.T) *tufEnv {
	t.Helper()
	e := &tufEnv{repoDir: filepath.Join(t.TempDir(), "repo"), keysDir: t.TempDir(), trusted: t.TempDir(), key: updatertest.NewKey(t)}
	updatertest.WriteFile(t, filepath.Join(e.keysDir, "release.pub"), e.key.PubFile)
	os.MkdirAll(e.repoDir, 0o755)
	e.srv = httptest.NewServer(http.FileServer(http.Dir(e.repoDir)))
	t.Cleanup(e.srv.Close)
	return e
}

// publish publishes a build of version to channel, signed with keys (the
// env's key when none).
func (e *tufEnv) publish(t *testing.T, version, channel string, now time.Time, keys ...ed25519.PrivateKey) error {
	t.Helper()
	if len(keys) == 0 {
		keys = []ed25519.PrivateKey{e.key.Private}
	}
	b := updatertest.MakeBuild(t, t.TempDir(), version, 8)
	_, err := Publish(context.Background(), PublishOptions{Repo: e.repoDir, Channel: channel, OutDir: b.Dir, Keys: keys, Now: now,
		Expiry: Expiry{Timestamp: 24 * time.Hour}, Log: quiet})
	return err
}

func (e *tufEnv) resolve(channel string, now time.Time) (*Release, error) {
	c := &Client{Base: e.srv.URL, Retry: Retry{Attempts: 1}, Log: quiet}
	return c.Resolve(context.Background(), ResolveRequest{Channel: channel, Image: "default", TrustedDir: e.trusted, KeysDir: e.keysDir, Now: now})
}

func (e *tufEnv) file(name string) string { return filepath.Join(e.repoDir, TUFDir, name) }

func mustResolve(t *testing.T, e *tufEnv, now time.Time, want string) {
	t.Helper()
	rel, err := e.resolve("stable", now)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Format != "tuf" || rel.Manifest.Version != want || rel.Channel.Version != want || rel.Channel.Image != "default" {
		t.Fatalf("got %s release %s (channel %+v), want TUF %s", rel.Format, rel.Manifest.Version, rel.Channel, want)
	}
}

func TestResolveTUF(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, e, t0.Add(time.Hour), "1.2.0")
	for _, f := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		if _, err := os.Stat(filepath.Join(TrustedPath(e.trusted, e.srv.URL), f)); err != nil {
			t.Errorf("trusted %s not kept: %v", f, err)
		}
	}
	// The host's image name is bound: another image's host refuses it.
	c := &Client{Base: e.srv.URL, Log: quiet}
	if _, err := c.Resolve(context.Background(), ResolveRequest{Channel: "stable", Image: "edge", TrustedDir: e.trusted, KeysDir: e.keysDir, Now: t0}); !errors.Is(err, ErrWrongImage) {
		t.Errorf("another image: got %v, want ErrWrongImage", err)
	}
}

// TestExpiredTimestampRefused: a repository frozen at a validly signed but
// expired timestamp is a freeze attack; a refreshed timestamp is taken.
func TestExpiredTimestampRefused(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, e, t0.Add(time.Hour), "1.2.0")
	late := t0.Add(25 * time.Hour)
	if _, err := e.resolve("stable", late); !errors.Is(err, ErrFreeze) || Attack(err) != "freeze" {
		t.Fatalf("got %v, want ErrFreeze", err)
	}
	if err := RefreshTimestamp(e.repoDir, []ed25519.PrivateKey{e.key.Private}, late, Expiry{Timestamp: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, e, late, "1.2.0")
}

// TestOlderMetadataRefused: once a host trusted snapshot version 2, an older
// timestamp or an older snapshot under the current name is a rollback.
func TestOlderMetadataRefused(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	oldTimestamp, _ := os.ReadFile(e.file("timestamp.json"))
	oldSnapshot, _ := os.ReadFile(e.file("1.snapshot.json"))
	if err := e.publish(t, "1.3.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, e, t0.Add(time.Hour), "1.3.0")

	newTimestamp, _ := os.ReadFile(e.file("timestamp.json"))
	os.WriteFile(e.file("timestamp.json"), oldTimestamp, 0o644)
	if _, err := e.resolve("stable", t0.Add(time.Hour)); !errors.Is(err, ErrRollback) {
		t.Errorf("older timestamp: got %v, want ErrRollback", err)
	}
	os.WriteFile(e.file("timestamp.json"), newTimestamp, 0o644)

	// A newer timestamp with snapshot version 1 served as version 3.
	if err := e.publish(t, "1.4.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.file("3.snapshot.json"), oldSnapshot, 0o644)
	_, err := e.resolve("stable", t0.Add(time.Hour))
	if !errors.Is(err, ErrRollback) {
		t.Errorf("older snapshot: got %v, want ErrRollback", err)
	}
}

// TestTargetsFromAnotherChannelRefused: targets metadata signed with the
// same key but from another channel's repository does not match what the
// snapshot lists.
func TestTargetsFromAnotherChannelRefused(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	beta := filepath.Join(t.TempDir(), "beta")
	b := updatertest.MakeBuild(t, t.TempDir(), "2.0.0", 8)
	if _, err := Publish(context.Background(), PublishOptions{Repo: beta, Channel: "stable", OutDir: b.Dir, Keys: []ed25519.PrivateKey{e.key.Private}, Now: t0, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	swapped, _ := os.ReadFile(filepath.Join(beta, TUFDir, "1.targets.json"))
	os.WriteFile(e.file("1.targets.json"), swapped, 0o644)
	if _, err := e.resolve("stable", t0.Add(time.Hour)); !errors.Is(err, ErrMixAndMatch) {
		t.Errorf("got %v, want ErrMixAndMatch", err)
	}
}

// TestKeyRotation: root version 2 adds a key (signed by old and new),
// root version 3 revokes the first key from the timestamp role; a host
// that trusted version 1 follows, and a timestamp signed by the revoked key
// is refused.
func TestKeyRotation(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, e, t0, "1.2.0")
	k2 := updatertest.NewKey(t)
	both := []ed25519.PrivateKey{e.key.Private, k2.Private}
	for _, role := range Roles {
		if _, err := ChangeKey(KeyChange{Repo: e.repoDir, Role: role, Key: k2.Private.Public().(ed25519.PublicKey), Signers: both, Now: t0}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := ChangeKey(KeyChange{Repo: e.repoDir, Role: metadata.TIMESTAMP, Key: e.key.Private.Public().(ed25519.PublicKey), Revoke: true, Signers: both, Now: t0})
	if err != nil || v != 6 {
		t.Fatalf("got root version %d, %v, want 6", v, err)
	}
	mustResolve(t, e, t0.Add(time.Hour), "1.2.0")

	// The revoked key signs a newer timestamp.
	ts, err := metadata.Timestamp().FromFile(e.file("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version++
	ts.ClearSignatures()
	s, _ := signature.LoadED25519Signer(e.key.Private)
	ts.Sign(s)
	ts.ToFile(e.file("timestamp.json"), true)
	if _, err := e.resolve("stable", t0.Add(time.Hour)); !errors.Is(err, ErrUntrustedMetadata) {
		t.Errorf("timestamp by a revoked key: got %v, want ErrUntrustedMetadata", err)
	}
}

// TestThreshold: with a targets threshold of 2, a publish with one key is
// refused before any file changes; with both it is taken by hosts.
func TestThreshold(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	k2 := updatertest.NewKey(t)
	both := []ed25519.PrivateKey{e.key.Private, k2.Private}
	if _, err := ChangeKey(KeyChange{Repo: e.repoDir, Role: metadata.TARGETS, Key: k2.Private.Public().(ed25519.PublicKey), Threshold: 2, Signers: both, Now: t0}); err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, e.repoDir)
	if err := e.publish(t, "1.3.0", "stable", t0); !errors.Is(err, ErrNotEnoughKeys) {
		t.Errorf("one key of two: got %v, want ErrNotEnoughKeys", err)
	}
	if snapshotTree(t, e.repoDir) != before {
		t.Error("a refused publish changed the repository")
	}
	if err := e.publish(t, "1.3.0", "stable", t0, both...); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, e, t0.Add(time.Hour), "1.3.0")
	if _, err := ChangeKey(KeyChange{Repo: e.repoDir, Role: metadata.TARGETS, Key: k2.Private.Public().(ed25519.PublicKey), Threshold: 3, Signers: both, Now: t0}); err == nil {
		t.Error("a threshold above the role's keys was accepted")
	}
}

// TestMigration: a repository in the pre-TUF format still resolves (signed
// manifest, image keys); once a host trusted TUF metadata, a repository
// without it is refused; a first root not signed by the image's keys is
// refused.
func TestMigration(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	tufFiles := filepath.Join(t.TempDir(), "tuf")
	os.Rename(filepath.Join(e.repoDir, TUFDir), tufFiles)
	rel, err := e.resolve("stable", t0)
	if err != nil || rel.Format != "legacy" || rel.Manifest.Version != "1.2.0" {
		t.Fatalf("legacy repository: got %+v, %v", rel, err)
	}
	os.Rename(tufFiles, filepath.Join(e.repoDir, TUFDir))
	mustResolve(t, e, t0, "1.2.0")
	os.RemoveAll(filepath.Join(e.repoDir, TUFDir))
	if _, err := e.resolve("stable", t0); !errors.Is(err, ErrTUFGone) {
		t.Errorf("TUF gone: got %v, want ErrTUFGone", err)
	}

	other := newTUFEnv(t)
	updatertest.WriteFile(t, filepath.Join(other.keysDir, "release.pub"), updatertest.NewKey(t).PubFile)
	if err := other.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := other.resolve("stable", t0); !errors.Is(err, ErrUntrustedMetadata) {
		t.Errorf("foreign root: got %v, want ErrUntrustedMetadata", err)
	}
}

// TestChannelBoundToItsName: targets metadata that signs beta's channel
// under stable's path (a publisher's mistake or a swap by someone holding
// the targets key for beta only) is refused for stable.
func TestChannelBoundToItsName(t *testing.T) {
	e := newTUFEnv(t)
	if err := e.publish(t, "1.2.0", "stable", t0); err != nil {
		t.Fatal(err)
	}
	tr, err := openTUF(e.repoDir, []ed25519.PrivateKey{e.key.Private}, t0, Expiry{})
	if err != nil {
		t.Fatal(err)
	}
	beta := Channel{Format: ChannelFormat, Channel: "beta", Image: "default", Version: "1.2.0"}
	if err := tr.setChannel(beta, mustJSON(beta)); err != nil {
		t.Fatal(err)
	}
	tr.targets.Signed.Targets[ChannelPath("stable")] = tr.targets.Signed.Targets[ChannelPath("beta")]
	if err := tr.bumpTargets(); err != nil {
		t.Fatal(err)
	}
	if err := tr.commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.resolve("stable", t0); !errors.Is(err, ErrWrongImage) {
		t.Errorf("got %v, want ErrWrongImage", err)
	}
	if _, err := e.resolve("beta", t0); err != nil {
		t.Errorf("beta itself: %v", err)
	}
}
