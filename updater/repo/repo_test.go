package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/delta"
	"github.com/bulkhead-os/bulkhead/updater/delta/chunker"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

var quiet = slog.New(slog.DiscardHandler)

func publish(t *testing.T, version string) (string, updatertest.Build, updatertest.Key) {
	t.Helper()
	dir := t.TempDir()
	b := updatertest.MakeBuild(t, dir, version, 40)
	key := updatertest.NewKey(t)
	repoDir := filepath.Join(dir, "repo")
	if _, err := Publish(context.Background(), PublishOptions{Repo: repoDir, Channel: "stable", OutDir: b.Dir, Key: key.Private, MinFrom: "1.0.0",
		Chunker: chunker.Chunker{}, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	return repoDir, b, key
}

func TestPublishLayout(t *testing.T) {
	repoDir, b, key := publish(t, "1.2.0")
	var files []string
	filepath.Walk(repoDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(repoDir, p)
			files = append(files, rel)
		}
		return err
	})
	var chunks int
	files = slices.DeleteFunc(files, func(f string) bool {
		if strings.HasPrefix(f, ChunksDir+"/") {
			chunks++
			return true
		}
		return false
	})
	want := "channels/stable.json tuf/1.root.json tuf/1.snapshot.json tuf/1.targets.json tuf/root.json tuf/timestamp.json " +
		"versions/1.2.0/initrd.img versions/1.2.0/initrd.img.caibx versions/1.2.0/manifest.json versions/1.2.0/manifest.json.sig " +
		"versions/1.2.0/usr.erofs versions/1.2.0/usr.erofs.caibx versions/1.2.0/usr.verity versions/1.2.0/usr.verity.caibx " +
		"versions/1.2.0/vmlinuz versions/1.2.0/vmlinuz.caibx"
	if got := strings.Join(files, " "); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Each index lists chunks the store holds, and nothing else is there.
	listed := map[string]bool{}
	for _, part := range payload.RequiredParts {
		file := map[string]string{payload.PartUsr: "usr.erofs", payload.PartVerity: "usr.verity", payload.PartKernel: "vmlinuz", payload.PartInitrd: "initrd.img"}[part]
		ib, err := os.ReadFile(filepath.Join(repoDir, "versions/1.2.0", payload.IndexFile(file)))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(repoDir, "versions/1.2.0", file))
		idx, err := delta.ParseIndex(ib, st.Size())
		if err != nil {
			t.Fatalf("index of %s: %v", file, err)
		}
		for _, c := range idx.Chunks {
			listed[casync.StorePath(c.ID)] = true
			if _, err := os.Stat(filepath.Join(repoDir, ChunksDir, casync.StorePath(c.ID))); err != nil {
				t.Errorf("chunk of %s at %d: %v", file, c.Start, err)
			}
		}
	}
	if chunks != len(listed) {
		t.Errorf("store holds %d chunks, the indexes list %d", chunks, len(listed))
	}
	c := &Client{Base: repoDir}
	ch, err := c.Channel(context.Background(), "stable")
	if err != nil || ch.Version != "1.2.0" {
		t.Fatalf("got %+v, %v", ch, err)
	}
	sm, err := c.Manifest(context.Background(), "1.2.0")
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := payload.ParsePublicKey(key.PubFile)
	if _, err := payload.Verify(sm.Body, sm.Sig, []payload.PublicKey{pk}); err != nil {
		t.Fatal(err)
	}
	m, err := payload.Parse(sm.Body)
	if err != nil {
		t.Fatal(err)
	}
	if m.RootHash != b.RootHash || m.MinFromVersion != "1.0.0" || m.Parts[payload.PartUsr].Size != int64(len(b.Usr)) {
		t.Errorf("got %+v", m)
	}
}

// TestPublishRefusesChangedVersion publishes a different build under a
// published version: refused, and every published file (parts, manifest,
// signature, channel) is byte for byte and mtime as it was.
func TestPublishRefusesChangedVersion(t *testing.T) {
	repoDir, _, key := publish(t, "1.2.0")
	before := snapshotTree(t, repoDir)
	other := updatertest.MakeBuild(t, t.TempDir(), "1.2.0", 41)
	_, err := Publish(context.Background(), PublishOptions{Repo: repoDir, Channel: "stable", OutDir: other.Dir, Key: key.Private, Log: quiet})
	if !errors.Is(err, ErrVersionExists) || !strings.Contains(err.Error(), "1.2.0") {
		t.Errorf("got %v, want ErrVersionExists naming 1.2.0", err)
	}
	if after := snapshotTree(t, repoDir); after != before {
		t.Errorf("published files changed by a refused publish:\nbefore %s\nafter  %s", before, after)
	}
}

// TestPublishRefusesPartOfUnfinishedVersion: a version whose parts were
// copied but whose manifest never got written is refused too when a part
// differs, before anything is written.
func TestPublishRefusesPartOfUnfinishedVersion(t *testing.T) {
	repoDir, _, key := publish(t, "1.2.0")
	os.Remove(filepath.Join(repoDir, "versions/1.2.0/manifest.json"))
	before := snapshotTree(t, repoDir)
	other := updatertest.MakeBuild(t, t.TempDir(), "1.2.0", 41)
	_, err := Publish(context.Background(), PublishOptions{Repo: repoDir, Channel: "stable", OutDir: other.Dir, Key: key.Private, Log: quiet})
	if !errors.Is(err, ErrVersionExists) {
		t.Errorf("got %v, want ErrVersionExists", err)
	}
	if after := snapshotTree(t, repoDir); after != before {
		t.Errorf("published files changed by a refused publish")
	}
}

// snapshotTree renders every file under dir with its content hash and mtime.
func snapshotTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %x %d; ", strings.TrimPrefix(p, dir), sha256.Sum256(data), fi.ModTime().UnixNano())
		return nil
	})
	return b.String()
}

func TestPublishRefusesDamagedOutput(t *testing.T) {
	dir := t.TempDir()
	b := updatertest.MakeBuild(t, dir, "1.2.0", 4)
	os.WriteFile(filepath.Join(b.Dir, "payload/vmlinuz"), []byte("changed after the build"), 0o644)
	_, err := Publish(context.Background(), PublishOptions{Repo: filepath.Join(dir, "repo"), Channel: "stable", OutDir: b.Dir, Key: updatertest.NewKey(t).Private, Log: quiet})
	if err == nil || !strings.Contains(err.Error(), "build manifest says") {
		t.Errorf("got %v, want a digest refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "repo", "channels")); !os.IsNotExist(err) {
		t.Error("channel written for a refused publish")
	}
}

func TestChannelRollout(t *testing.T) {
	repoDir, _, key := publish(t, "1.2.0")
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if err := SetChannel(repoDir, Channel{Channel: "beta", Version: "1.2.0", Rollout: &rollout.Rollout{Start: start, Duration: 48 * time.Hour, Paused: true}},
		[]ed25519.PrivateKey{key.Private}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The pre-TUF channel file and the signed channel say the same.
	ch, err := (&Client{Base: "file://" + repoDir}).Channel(context.Background(), "beta")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Rollout == nil || !ch.Rollout.Start.Equal(start) || ch.Rollout.Duration != 48*time.Hour || !ch.Rollout.Paused || ch.Image != "default" {
		t.Errorf("got channel %+v rollout %+v", ch, ch.Rollout)
	}
	keys := t.TempDir()
	updatertest.WriteFile(t, filepath.Join(keys, "k.pub"), key.PubFile)
	rel, err := (&Client{Base: repoDir}).Resolve(context.Background(), ResolveRequest{Channel: "beta", Image: "default", TrustedDir: t.TempDir(), KeysDir: keys, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if r := rel.Channel.Rollout; r == nil || !r.Paused || !r.Start.Equal(start) {
		t.Errorf("got signed rollout %+v", r)
	}
	if err := SetChannel(repoDir, Channel{Channel: "beta", Version: "9.9.9"}, []ed25519.PrivateKey{key.Private}, time.Now()); err == nil {
		t.Error("a channel pointed at an unpublished version")
	}
	if _, err := (&Client{Base: repoDir}).Channel(context.Background(), "../etc"); !errors.Is(err, ErrInvalidChannel) {
		t.Errorf("got %v, want ErrInvalidChannel", err)
	}
}

// server serves a repository directory with http.FileServer (which honours
// Range) and can cut responses short or ignore Range.
type server struct {
	dir       string
	cutAfter  atomic.Int64 // > 0: close the body after this many bytes, once
	noRange   bool
	ranges    atomic.Int64
	requests  atomic.Int64
	corrupted bool
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Header.Get("Range") != "" {
		s.ranges.Add(1)
		if s.noRange {
			r.Header.Del("Range")
		}
	}
	if !strings.HasSuffix(r.URL.Path, ".erofs") {
		http.FileServer(http.Dir(s.dir)).ServeHTTP(w, r)
		return
	}
	if n := s.cutAfter.Swap(0); n > 0 {
		b, _ := os.ReadFile(filepath.Join(s.dir, r.URL.Path))
		// Promise the whole file, send part of it: a dropped connection.
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		w.Write(b[:n])
		panic(http.ErrAbortHandler)
	}
	if s.corrupted {
		b, _ := os.ReadFile(filepath.Join(s.dir, r.URL.Path))
		b[10] ^= 1
		http.ServeContent(w, r, "x", time.Time{}, bytes.NewReader(b))
		return
	}
	http.FileServer(http.Dir(s.dir)).ServeHTTP(w, r)
}

// manifestOf fetches and parses version 1.2.0's manifest.
func manifestOf(t *testing.T, c *Client) *payload.Manifest {
	t.Helper()
	sm, err := c.Manifest(context.Background(), "1.2.0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := payload.Parse(sm.Body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDownloadResumes(t *testing.T) {
	repoDir, b, _ := publish(t, "1.2.0")
	srv := &server{dir: repoDir}
	srv.cutAfter.Store(50000)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &Client{Base: ts.URL, Retry: Retry{Attempts: 1}}
	m := manifestOf(t, c)
	dl := t.TempDir()
	var last int64
	req := DownloadRequest{Version: "1.2.0", Name: "usr", Part: m.Parts["usr"], Dir: dl, Progress: func(_ string, done, _ int64) { last = done }}
	if _, err := c.Download(context.Background(), req); err == nil {
		t.Fatal("got nil error from a cut connection")
	}
	st, err := os.Stat(filepath.Join(dl, "usr.erofs.partial"))
	if err != nil || st.Size() != 50000 {
		t.Fatalf("got partial %v, %v, want 50000 bytes kept", st, err)
	}
	p, err := c.Download(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if srv.ranges.Load() != 1 {
		t.Errorf("got %d Range requests, want 1", srv.ranges.Load())
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, b.Usr) || last != int64(len(b.Usr)) {
		t.Errorf("resumed download differs (progress %d of %d)", last, len(b.Usr))
	}
}

// A power cut after a download finished but before its rename reached the
// disk leaves a complete .partial file: the next run keeps it without a
// request (and so never asks for a range past the end).
func TestDownloadCompletePartial(t *testing.T) {
	repoDir, b, _ := publish(t, "1.2.0")
	srv := &server{dir: repoDir}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &Client{Base: ts.URL}
	m := manifestOf(t, c)
	dl := t.TempDir()
	if err := os.WriteFile(filepath.Join(dl, "usr.erofs.partial"), b.Usr, 0o644); err != nil {
		t.Fatal(err)
	}
	before := srv.requests.Load()
	p, err := c.Download(context.Background(), DownloadRequest{Version: "1.2.0", Name: "usr", Part: m.Parts["usr"], Dir: dl})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, b.Usr) {
		t.Error("kept download differs")
	}
	if n := srv.requests.Load() - before; n != 0 {
		t.Errorf("got %d requests, want none", n)
	}
}

func TestDownloadRefusals(t *testing.T) {
	repoDir, _, _ := publish(t, "1.2.0")
	m := manifestOf(t, &Client{Base: repoDir})
	good := m.Parts["usr"]
	cases := []struct {
		name string
		srv  *server
		part payload.Part
		want error
	}{
		{"digest mismatch", &server{corrupted: true}, good, ErrDigestMismatch},
		{"truncated file in the repository", &server{}, payload.Part{File: good.File, Size: good.Size + 4096, SHA256: good.SHA256}, ErrTruncated},
		{"longer than the manifest says", &server{}, payload.Part{File: good.File, Size: good.Size - 1, SHA256: good.SHA256}, ErrTooLarge},
		{"missing file", &server{}, payload.Part{File: "nope", Size: 1, SHA256: good.SHA256}, ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.srv.dir = repoDir
			ts := httptest.NewServer(c.srv)
			defer ts.Close()
			dl := t.TempDir()
			_, err := (&Client{Base: ts.URL}).Download(context.Background(), DownloadRequest{Version: "1.2.0", Name: "usr", Part: c.part, Dir: dl})
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
			if _, err := os.Stat(filepath.Join(dl, c.part.File)); err == nil {
				t.Error("a refused download left a complete file")
			}
		})
	}
}

// TestDownloadServerIgnoresRange: a server that answers a Range request
// with 200 and the whole file must not be appended to the partial file.
func TestDownloadServerIgnoresRange(t *testing.T) {
	repoDir, b, _ := publish(t, "1.2.0")
	srv := &server{dir: repoDir, noRange: true}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &Client{Base: ts.URL}
	m := manifestOf(t, c)
	dl := t.TempDir()
	os.WriteFile(filepath.Join(dl, "usr.erofs.partial"), b.Usr[:1000], 0o644)
	p, err := c.Download(context.Background(), DownloadRequest{Version: "1.2.0", Name: "usr", Part: m.Parts["usr"], Dir: dl})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, b.Usr) {
		t.Error("download differs")
	}
}

func FuzzParseChannel(f *testing.F) {
	f.Add([]byte(`{"format":1,"channel":"stable","version":"1.2.0","rollout":{"start":"2026-11-01T00:00:00Z","duration":"48h"}}`))
	f.Add([]byte(`{"format":1,"version":"../../etc"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChannel(b)
		if err != nil {
			return
		}
		if payload.CheckVersion(c.Version) != nil {
			t.Errorf("accepted version %q", c.Version)
		}
	})
}

// TestDownloadFromDirectory: a plain directory and a file:// URL serve the
// same repository, resuming from a partial file too.
func TestDownloadFromDirectory(t *testing.T) {
	repoDir, b, _ := publish(t, "1.2.0")
	for _, base := range []string{repoDir, "file://" + repoDir} {
		c := &Client{Base: base}
		m := manifestOf(t, c)
		dl := t.TempDir()
		os.WriteFile(filepath.Join(dl, "usr.erofs.partial"), b.Usr[:4096], 0o644)
		p, err := c.Download(context.Background(), DownloadRequest{Version: "1.2.0", Name: "usr", Part: m.Parts["usr"], Dir: dl})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, b.Usr) {
			t.Errorf("%s: download differs", base)
		}
	}
}

// fastRetry keeps retry tests quick.
var fastRetry = Retry{Attempts: 3, Backoff: backoff.Policy{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}}

// TestDownloadRetriesAndResumes: one Download call survives a dropped
// connection: the retry resumes with a Range request from the kept bytes.
func TestDownloadRetriesAndResumes(t *testing.T) {
	repoDir, b, _ := publish(t, "1.2.0")
	srv := &server{dir: repoDir}
	srv.cutAfter.Store(50000)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &Client{Base: ts.URL, Retry: fastRetry, Log: quiet}
	m := manifestOf(t, c)
	p, err := c.Download(context.Background(), DownloadRequest{Version: "1.2.0", Name: "usr", Part: m.Parts["usr"], Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, b.Usr) || srv.ranges.Load() != 1 {
		t.Errorf("download differs or was not resumed (%d Range requests)", srv.ranges.Load())
	}
}

// TestGetRetriesServerErrors: a 503 is transient, a 404 is not retried.
func TestGetRetriesServerErrors(t *testing.T) {
	repoDir, _, _ := publish(t, "1.2.0")
	var failures atomic.Int64
	failures.Store(2)
	var requests atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if failures.Add(-1) >= 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		http.FileServer(http.Dir(repoDir)).ServeHTTP(w, r)
	}))
	defer ts.Close()
	c := &Client{Base: ts.URL, Retry: fastRetry, Log: quiet}
	if _, err := c.Channel(context.Background(), "stable"); err != nil {
		t.Fatalf("got %v after two 503s, want the channel", err)
	}
	requests.Store(0)
	if _, err := c.Channel(context.Background(), "nope"); !errors.Is(err, ErrNotFound) || requests.Load() != 1 {
		t.Errorf("got %v after %d requests, want ErrNotFound after 1", err, requests.Load())
	}
}

// stallServer sends the headers and the first half of every body, then
// stalls until the client gives up.
func stallServer(t *testing.T, body []byte) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	return ts
}

// returnsWithin runs f and fails the test if it has not returned after d:
// the bound is generous, the point is that a stalled server cannot hold
// the caller for ever.
func returnsWithin(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("still waiting on a stalled server after %s", d)
		return nil
	}
}

// TestStalledBodyTimesOut: a server that stops sending mid-body makes both
// a metadata fetch and a part download fail with ErrTimeout (after the
// retries), and the download keeps the bytes it got.
func TestStalledBodyTimesOut(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1<<16)
	ts := stallServer(t, body)
	c := &Client{Base: ts.URL, Timeouts: Timeouts{Idle: 200 * time.Millisecond}, Retry: Retry{Attempts: 2, Backoff: fastRetry.Backoff}, Log: quiet}
	err := returnsWithin(t, time.Minute, func() error {
		_, err := c.Channel(context.Background(), "stable")
		return err
	})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("channel: got %v, want ErrTimeout", err)
	}
	dl := t.TempDir()
	part := payload.Part{File: "usr.erofs", Size: int64(len(body)), SHA256: strings.Repeat("0", 64)}
	err = returnsWithin(t, time.Minute, func() error {
		_, err := c.Download(context.Background(), DownloadRequest{Version: "1.2.0", Name: "usr", Part: part, Dir: dl})
		return err
	})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("download: got %v, want ErrTimeout", err)
	}
	if st, err := os.Stat(filepath.Join(dl, "usr.erofs.partial")); err != nil || st.Size() == 0 {
		t.Errorf("got partial %v, %v, want the received bytes kept", st, err)
	}
}

// TestWholeRequestBound: a server that trickles a byte at a time never
// trips the idle bound, but the whole-request bound ends it.
func TestWholeRequestBound(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer ts.Close()
	c := &Client{Base: ts.URL, Timeouts: Timeouts{Idle: 5 * time.Second, Request: 300 * time.Millisecond}, Retry: Retry{Attempts: 1}, Log: quiet}
	err := returnsWithin(t, time.Minute, func() error {
		_, err := c.Channel(context.Background(), "stable")
		return err
	})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "whole request") {
		t.Errorf("got %v, want ErrTimeout for the whole request", err)
	}
}

// truncating is a chunker whose indexes lose their last byte.
type truncating struct{ chunker.Chunker }

func (c truncating) Index(ctx context.Context, file string) ([]byte, error) {
	b, err := c.Chunker.Index(ctx, file)
	return b[:len(b)-1], err
}

// TestPublishRefusesBadIndex: a chunk index that does not parse is refused
// before anything is published, naming the index file.
func TestPublishRefusesBadIndex(t *testing.T) {
	dir := t.TempDir()
	b := updatertest.MakeBuild(t, dir, "1.2.0", 40)
	repoDir := filepath.Join(dir, "repo")
	_, err := Publish(context.Background(), PublishOptions{Repo: repoDir, Channel: "stable", OutDir: b.Dir,
		Key: updatertest.NewKey(t).Private, Chunker: truncating{}, Log: quiet})
	if !errors.Is(err, casync.ErrBadIndex) || !strings.Contains(err.Error(), "usr.erofs.caibx") {
		t.Fatalf("got %v, want ErrBadIndex naming usr.erofs.caibx", err)
	}
	if _, err := os.Stat(filepath.Join(repoDir, "versions/1.2.0")); !os.IsNotExist(err) {
		t.Errorf("a version with a bad index was published: %v", err)
	}
}

// TestPublishBootChain: a build's boot chain is published whole (no chunk
// index) as parts bootchain.<file>, each a signed TUF target.
func TestPublishBootChain(t *testing.T) {
	dir := t.TempDir()
	b := updatertest.MakeBuild(t, dir, "1.2.0", 40)
	chain := updatertest.BootChain("new", 20)
	updatertest.AddBootChain(t, b, chain)
	key := updatertest.NewKey(t)
	repoDir := filepath.Join(dir, "repo")
	m, err := Publish(context.Background(), PublishOptions{Repo: repoDir, Channel: "stable", OutDir: b.Dir, Key: key.Private, Chunker: chunker.Chunker{}, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	parts, ok := m.BootChain()
	if !ok || len(parts) != len(chain) {
		t.Fatalf("published chain parts %v, want %d", parts, len(chain))
	}
	for name, data := range chain {
		pt := parts[name]
		if pt.File != "bootchain."+name || pt.Size != int64(len(data)) {
			t.Errorf("part %s: %+v", name, pt)
		}
		got, err := os.ReadFile(filepath.Join(repoDir, "versions/1.2.0", pt.File))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("published %s: %v", pt.File, err)
		}
		if _, err := os.Stat(filepath.Join(repoDir, "versions/1.2.0", pt.File+".caibx")); err == nil {
			t.Errorf("%s was chunked", pt.File)
		}
	}
	keys := t.TempDir()
	updatertest.WriteFile(t, filepath.Join(keys, "k.pub"), key.PubFile)
	rel, err := (&Client{Base: repoDir}).Resolve(context.Background(), ResolveRequest{Channel: "stable", Image: "default",
		TrustedDir: t.TempDir(), KeysDir: keys, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Manifest.BootChainVersion() != m.BootChainVersion() || m.BootChainVersion() == "" {
		t.Errorf("resolved chain %q, published %q", rel.Manifest.BootChainVersion(), m.BootChainVersion())
	}
}
