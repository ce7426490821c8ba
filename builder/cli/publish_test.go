package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/delta"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

func runBuilder(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := NewRootCmd(Deps{Log: slog.New(slog.DiscardHandler), Stdout: &out, Stderr: &out})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestKeygenPublish(t *testing.T) {
	dir := t.TempDir()
	if _, err := runBuilder(t, "keygen", "--dir", dir, "release"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "release.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("got %v, %v, want release.key with mode 0600", st, err)
	}
	if _, err := runBuilder(t, "keygen", "--dir", dir, "release"); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Errorf("second keygen: got %v, want a refusal to overwrite", err)
	}
	b := updatertest.MakeBuild(t, dir, "1.1.0", 8)
	repoDir := filepath.Join(dir, "repo")
	out, err := runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), "--min-from", "1.0.0", "--rollout", "24h", b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "published default 1.1.0 to " + repoDir + " (channel stable)\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	c := &repo.Client{Base: repoDir}
	ch, err := c.Channel(context.Background(), "stable")
	if err != nil || ch.Version != "1.1.0" || ch.Rollout == nil || ch.Rollout.Duration.String() != "24h0m0s" {
		t.Fatalf("got channel %+v, %v", ch, err)
	}
	sm, err := c.Manifest(context.Background(), "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := payload.LoadPublicKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := payload.Verify(sm.Body, sm.Sig, keys); err != nil {
		t.Errorf("published manifest does not verify with the keygen public key: %v", err)
	}
}

func TestPublishNeedsKey(t *testing.T) {
	t.Setenv(SigningKeyEnv, "")
	_, err := runBuilder(t, "publish", "--repo", t.TempDir(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Errorf("got %v, want a missing-key error", err)
	}
}

// TestKeysAndRefresh: keys add with a threshold of 2 makes a one-key
// publish fail with nothing written; keys revoke takes the key out again;
// --refresh-timestamp re-signs only the timestamp.
func TestKeysAndRefresh(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b"} {
		if _, err := runBuilder(t, "keygen", "--dir", dir, n); err != nil {
			t.Fatal(err)
		}
	}
	ka, kb := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	repoDir := filepath.Join(dir, "repo")
	if _, err := runBuilder(t, "publish", "--repo", repoDir, "--key", ka, updatertest.MakeBuild(t, t.TempDir(), "1.1.0", 8).Dir); err != nil {
		t.Fatal(err)
	}
	out, err := runBuilder(t, "keys", "add", "--repo", repoDir, "--role", "targets", "--pub", filepath.Join(dir, "b.pub"), "--threshold", "2", "--key", ka, "--key", kb)
	if err != nil || !strings.HasPrefix(out, "root version 2: key ") {
		t.Fatalf("keys add: got %q, %v", out, err)
	}
	if _, err := runBuilder(t, "publish", "--repo", repoDir, "--key", ka, updatertest.MakeBuild(t, t.TempDir(), "1.2.0", 8).Dir); !errors.Is(err, repo.ErrNotEnoughKeys) {
		t.Errorf("one key of a threshold of 2: got %v, want ErrNotEnoughKeys", err)
	}
	if _, err := os.Stat(filepath.Join(repoDir, "versions/1.2.0")); err == nil {
		t.Error("a refused publish wrote the version")
	}
	if _, err := runBuilder(t, "keys", "revoke", "--repo", repoDir, "--role", "targets", "--pub", filepath.Join(dir, "b.pub"), "--threshold", "1", "--key", ka, "--key", kb); err != nil {
		t.Fatal(err)
	}
	if _, err := runBuilder(t, "keys", "add", "--repo", repoDir, "--role", "bogus", "--pub", filepath.Join(dir, "b.pub"), "--key", ka); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown role: got %v", err)
	}
	others := func() string {
		ents, _ := os.ReadDir(filepath.Join(repoDir, "tuf"))
		var s strings.Builder
		for _, e := range ents {
			if e.Name() != "timestamp.json" {
				b, _ := os.ReadFile(filepath.Join(repoDir, "tuf", e.Name()))
				s.WriteString(e.Name() + string(b))
			}
		}
		return s.String()
	}
	snap := others()
	before, _ := os.ReadFile(filepath.Join(repoDir, "tuf/timestamp.json"))
	if out, err := runBuilder(t, "publish", "--repo", repoDir, "--key", ka, "--refresh-timestamp"); err != nil || !strings.HasPrefix(out, "refreshed") {
		t.Fatalf("refresh: got %q, %v", out, err)
	}
	after, _ := os.ReadFile(filepath.Join(repoDir, "tuf/timestamp.json"))
	if bytes.Equal(before, after) || others() != snap {
		t.Error("--refresh-timestamp did not re-sign the timestamp alone")
	}
}

// TestPublishChunks: publish stores each part's chunks and its chunk index,
// and the index is a part of the signed manifest and a TUF target of its
// length and sha256, which a host resolving the version accepts; with
// --no-chunks there is neither.
func TestPublishChunks(t *testing.T) {
	dir := t.TempDir()
	if _, err := runBuilder(t, "keygen", "--dir", dir, "release"); err != nil {
		t.Fatal(err)
	}
	b := updatertest.MakeBuild(t, dir, "1.1.0", 64)
	repoDir := filepath.Join(dir, "repo")
	if _, err := runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), b.Dir); err != nil {
		t.Fatal(err)
	}
	targets, err := metadata.Targets().FromFile(filepath.Join(repoDir, "tuf/1.targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := &repo.Client{Base: repoDir}
	rel, err := c.Resolve(context.Background(), repo.ResolveRequest{Channel: "stable", Image: "default",
		TrustedDir: t.TempDir(), KeysDir: dir, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range payload.RequiredParts {
		pt, ok := rel.Manifest.Parts[payload.IndexPart(name)]
		if !ok {
			t.Fatalf("signed manifest has no index of %s: %v", name, rel.Manifest.Parts)
		}
		ib, err := c.FetchPart(context.Background(), "1.1.0", pt)
		if err != nil {
			t.Fatal(err)
		}
		tgt := targets.Signed.Targets[repo.VersionPath("1.1.0", pt.File)]
		sum := sha256.Sum256(ib)
		if tgt == nil || tgt.Length != int64(len(ib)) || !bytes.Equal(tgt.Hashes["sha256"], sum[:]) {
			t.Errorf("index %s is not a TUF target of its length and sha256: %+v", pt.File, tgt)
		}
		idx, err := delta.ParseIndex(ib, rel.Manifest.Parts[name].Size)
		if err != nil {
			t.Fatalf("index of %s: %v", name, err)
		}
		for _, ch := range idx.Chunks {
			if _, err := c.Chunk(context.Background(), casync.StorePath(ch.ID)); err != nil {
				t.Errorf("chunk %s of %s: %v", ch.ID, name, err)
			}
		}
	}
	b2 := updatertest.MakeBuild(t, dir, "1.2.0", 64)
	if _, err := runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), "--no-chunks", b2.Dir); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(repoDir, "versions/1.2.0/manifest.json"))
	if err != nil || bytes.Contains(m, []byte(".caibx")) {
		t.Errorf("--no-chunks manifest names chunk indexes (%v):\n%s", err, m)
	}
}
