package updater

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/delta"
	"github.com/bulkhead-os/bulkhead/updater/delta/chunker"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// testChunks keep the fake images' chunks small (about 100 per image).
var testChunks = chunker.Chunker{Params: chunker.Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}}

// deltaEnv is env booted from a 768 KiB pseudo-random usr image, readable
// as the booted /dev/mapper/usr, with a server that counts what it serves.
// The booted version, 1.0.0, is published with its chunk indexes (unless
// the test removes it): they locate the booted slot's chunks.
type deltaEnv struct {
	*env
	srv     *updatertest.Server
	notices []string
}

func newDeltaEnv(t *testing.T) *deltaEnv {
	t.Helper()
	e := newUnpublishedEnv(t)
	if _, err := repo.Publish(context.Background(), repo.PublishOptions{Repo: e.repoDir, Channel: "stable", OutDir: e.v1.Dir,
		Key: e.key.Private, Chunker: testChunks, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	return e
}

// newUnpublishedEnv is deltaEnv with the booted version not in the
// repository (a host made by `builder build` whose build was never
// published).
func newUnpublishedEnv(t *testing.T) *deltaEnv {
	t.Helper()
	e := &deltaEnv{env: &env{t: t, key: updatertest.NewKey(t), repoDir: filepath.Join(t.TempDir(), "repo")}}
	e.v1 = updatertest.MakeBuildFrom(t, t.TempDir(), "1.0.0", updatertest.RandomBytes(1, 768<<10))
	e.host = updatertest.MakeHost(t, e.v1, e.key)
	updatertest.WriteFile(t, e.host.Root.Join(BootedUsrDevice), e.v1.Usr)
	e.srv = updatertest.Serve(t, e.repoDir)
	e.env.srv = e.srv.Server
	e.u = &Updater{Root: e.host.Root, Log: quiet, Notice: func(s string) { e.notices = append(e.notices, s) }}
	return e
}

// publishEdit publishes version: v1's usr with 5000 bytes inserted at
// 300 KiB and a 4 KiB block changed at 600 KiB, cut back to v1's size.
func (e *deltaEnv) publishEdit(version string, noChunks bool) updatertest.Build {
	e.t.Helper()
	usr := slices.Concat(e.v1.Usr[:300<<10], updatertest.RandomBytes(7, 5000), e.v1.Usr[300<<10:])[:len(e.v1.Usr)]
	copy(usr[600<<10:], updatertest.RandomBytes(8, 4096))
	b := updatertest.MakeBuildFrom(e.t, e.t.TempDir(), version, usr)
	o := repo.PublishOptions{Repo: e.repoDir, Channel: "stable", OutDir: b.Dir, Key: e.key.Private, Log: quiet}
	if !noChunks {
		o.Chunker = testChunks
	}
	if _, err := repo.Publish(context.Background(), o); err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *deltaEnv) stagedSlotB(v2 updatertest.Build) {
	e.t.Helper()
	if got, want := e.bootState(), (bootcfg.State{Default: "a", Try: "b", TriesLeft: bootcfg.DefaultTries}); got != want {
		e.t.Errorf("got boot state %+v, want %+v", got, want)
	}
	if !bytes.HasPrefix(e.readPart("usr-b"), v2.Usr) || !bytes.HasPrefix(e.readPart("usr-b-verity"), v2.Verity) {
		e.t.Error("slot b partitions do not hold v2")
	}
	if k, _ := os.ReadFile(e.host.Root.Join("/efi/b/vmlinuz")); !bytes.Equal(k, v2.Kernel) {
		e.t.Error("kernel not installed in /efi/b")
	}
}

// partFiles are the file names of the parts in a repository.
var partFiles = map[string]string{payload.PartUsr: "usr.erofs", payload.PartVerity: "usr.verity", payload.PartKernel: "vmlinuz", payload.PartInitrd: "initrd.img"}

// upgradeDelta upgrades to v2, which must be a delta without notices.
func (e *deltaEnv) upgradeDelta(v2 updatertest.Build) *Plan {
	e.t.Helper()
	p, err := e.u.Upgrade(context.Background(), e.opts())
	if err != nil {
		e.t.Fatal(err)
	}
	e.stagedSlotB(v2)
	if !p.Delta || len(e.notices) > 0 {
		e.t.Errorf("delta %v, notices %q", p.Delta, e.notices)
	}
	return p
}

func (e *deltaEnv) noticed(part string) bool {
	return slices.ContainsFunc(e.notices, func(s string) bool { return strings.Contains(s, part) })
}

// TestDeltaUpgrade: the new usr image is assembled from the booted slot's
// chunks into its partition; only the chunks the booted slot lacks are
// served, never the full parts.
func TestDeltaUpgrade(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	var progress []string
	e.u.Progress = func(what string, done, total int64) {
		if done == total && !slices.Contains(progress, what) {
			progress = append(progress, what)
		}
	}
	e.upgradeDelta(v2)
	chunkBytes, chunkReqs := e.srv.Served("/chunks/")
	for _, part := range []string{"usr.erofs", "usr.verity", "vmlinuz", "initrd.img"} {
		if n, reqs := e.srv.ServedExactly("/versions/1.1.0/" + part); n != 0 || reqs != 0 {
			t.Errorf("the full %s was fetched (%d bytes)", part, n)
		}
	}
	// 5000 bytes inserted and one block changed, plus the whole verity
	// tree (its salt is new) and the tiny kernel and initrd.
	if chunkReqs == 0 || chunkBytes > int64(len(v2.Usr))/5 {
		t.Errorf("%d chunk bytes in %d requests for a %d-byte image", chunkBytes, chunkReqs, len(v2.Usr))
	}
	for _, want := range []string{"download usr", "write usr", "verify usr", "set trial"} {
		if !slices.Contains(progress, want) {
			t.Errorf("progress %q lacks %q", progress, want)
		}
	}
	if _, err := os.Stat(e.host.Root.Join(DownloadDir)); !os.IsNotExist(err) {
		t.Errorf("download directory left behind: %v", err)
	}
	e.keptIndexes("1.0.0", "1.1.0")
}

// TestNoDeltaFetchesFullPayload: with NoDelta (hostctl upgrade
// --no-delta) a repository with chunk indexes still gets the full payload:
// no chunk and no index is fetched, every part is, and the plan says why.
func TestNoDeltaFetchesFullPayload(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	o := e.opts()
	o.NoDelta = true
	p, err := e.u.Upgrade(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	e.stagedSlotB(v2)
	if p.Delta || !strings.Contains(p.DeltaNote, "--no-delta") || p.DownloadBytes != p.FullBytes {
		t.Errorf("plan: delta %v, note %q, %d of %d bytes; want the full payload and a note naming --no-delta", p.Delta, p.DeltaNote, p.DownloadBytes, p.FullBytes)
	}
	if n, reqs := e.srv.Served("/chunks/"); reqs != 0 {
		t.Errorf("%d chunk bytes fetched in %d requests", n, reqs)
	}
	for part, file := range partFiles {
		if n, _ := e.srv.ServedExactly("/versions/1.1.0/" + file); n != p.Manifest.Parts[part].Size {
			t.Errorf("%s: %d bytes served, want the whole part (%d)", file, n, p.Manifest.Parts[part].Size)
		}
		if _, reqs := e.srv.ServedExactly("/versions/1.1.0/" + payload.IndexFile(file)); reqs != 0 {
			t.Errorf("the chunk index of %s was fetched", file)
		}
	}
}

// keptIndexes checks that IndexDir holds the chunk indexes of exactly these
// versions, as the repository published them.
func (e *deltaEnv) keptIndexes(versions ...string) {
	e.t.Helper()
	ents, _ := os.ReadDir(e.host.Root.Join(IndexDir))
	var got []string
	for _, ent := range ents {
		got = append(got, ent.Name())
	}
	if !slices.Equal(got, versions) {
		e.t.Errorf("kept indexes of %q, want %q", got, versions)
	}
	for _, v := range versions {
		for part, file := range partFiles {
			kept, err := os.ReadFile(e.host.Root.Join(IndexDir, v, part+".caibx"))
			want, _ := os.ReadFile(filepath.Join(e.repoDir, "versions", v, payload.IndexFile(file)))
			if err != nil || len(want) == 0 || !bytes.Equal(kept, want) {
				e.t.Errorf("kept index of %s %s differs from the published one (%v)", v, part, err)
			}
		}
	}
}

// TestDeltaDryRunBytes: a dry run tells the bytes a delta update fetches
// (indexes and the missing chunks, uncompressed), fetches no chunk and
// writes nothing.
func TestDeltaDryRunBytes(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	p := e.dryRun()
	if _, n := e.srv.Served("/chunks/"); n != 0 {
		t.Errorf("dry run fetched %d chunks", n)
	}
	// The count worked out here: each part's index, and the chunks its
	// seed lacks.
	var want, full int64
	for _, name := range payload.RequiredParts {
		pt := p.Manifest.Parts[name]
		full += pt.Size
		ib, err := os.ReadFile(filepath.Join(e.repoDir, "versions/1.1.0", payload.IndexFile(pt.File)))
		if err != nil {
			t.Fatal(err)
		}
		want += int64(len(ib))
		idx, err := delta.ParseIndex(ib, pt.Size)
		if err != nil {
			t.Fatal(err)
		}
		// The booted slot's chunks, as v1's published index lists them.
		sb, err := os.ReadFile(filepath.Join(e.repoDir, "versions/1.0.0", payload.IndexFile(pt.File)))
		if err != nil {
			t.Fatal(err)
		}
		sidx, err := casync.ParseIndex(sb)
		if err != nil {
			t.Fatal(err)
		}
		have := map[casync.ChunkID]bool{}
		for _, c := range sidx.Chunks {
			have[c.ID] = true
		}
		for _, c := range idx.Chunks {
			if !have[c.ID] {
				want += int64(c.Size)
				have[c.ID] = true
			}
		}
	}
	if !p.Delta || p.DownloadBytes != want || p.FullBytes != full {
		t.Errorf("got delta %v, %d bytes of %d, want %d of %d", p.Delta, p.DownloadBytes, p.FullBytes, want, full)
	}
	if want >= int64(len(v2.Usr))/3 {
		t.Errorf("%d bytes to fetch of %d: the seed was not used", want, full)
	}
	var out bytes.Buffer
	p.Describe(&out)
	if !strings.Contains(out.String(), "delta: chunk indexes and the chunks the booted slot lacks") {
		t.Errorf("dry run output does not tell the delta:\n%s", out.String())
	}
}

// TestDeltaFallsBack: whatever breaks the delta path, the update goes on
// with the full payload and says why.
func TestDeltaFallsBack(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *deltaEnv)
		notice string
	}{
		{"no chunk index", func(e *deltaEnv) {}, "has no chunk index"},
		{"no chunk store", func(e *deltaEnv) {
			os.RemoveAll(filepath.Join(e.repoDir, repo.ChunksDir))
		}, repo.ErrNotFound.Error()},
		{"tampered chunk", func(e *deltaEnv) {
			tamperChunks(e.t, e.repoDir)
		}, delta.ErrBadChunk.Error()},
		{"index modified by a mirror", func(e *deltaEnv) {
			p := filepath.Join(e.repoDir, "versions/1.1.0/usr.erofs.caibx")
			b, _ := os.ReadFile(p)
			b[len(b)-10] ^= 1
			os.WriteFile(p, b, 0o644)
		}, repo.ErrDigestMismatch.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newDeltaEnv(t)
			v2 := e.publishEdit("1.1.0", c.name == "no chunk index")
			c.setup(e)
			p, err := e.u.Upgrade(context.Background(), e.opts())
			if err != nil {
				t.Fatal(err)
			}
			e.stagedSlotB(v2)
			if p.Delta || !e.noticed("downloading the full payload") || !e.noticed(c.notice) {
				t.Errorf("delta %v, notices %q, want a fallback naming %q", p.Delta, e.notices, c.notice)
			}
			if n, _ := e.srv.ServedExactly("/versions/1.1.0/usr.erofs"); n < int64(len(v2.Usr)) {
				t.Errorf("served %d bytes of usr.erofs, want the full %d", n, len(v2.Usr))
			}
		})
	}
}

// tamperChunks makes every stored chunk another chunk's bytes: valid zstd,
// the wrong content for its id.
func tamperChunks(t *testing.T, repoDir string) {
	var files []string
	filepath.Walk(filepath.Join(repoDir, repo.ChunksDir), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if len(files) < 2 {
		t.Fatalf("store holds %d chunks", len(files))
	}
	first, _ := os.ReadFile(files[0])
	for i, f := range files {
		next := first
		if i+1 < len(files) {
			next, _ = os.ReadFile(files[i+1])
		}
		os.WriteFile(f, next, 0o644)
	}
}

// TestDeltaAndFullPayloadTampered: a tampered chunk and a tampered full
// payload: the update fails on the digest and nothing is put on trial.
func TestDeltaAndFullPayloadTampered(t *testing.T) {
	e := newDeltaEnv(t)
	e.publishEdit("1.1.0", false)
	tamperChunks(t, e.repoDir)
	p := filepath.Join(e.repoDir, "versions/1.1.0/usr.erofs")
	b, _ := os.ReadFile(p)
	b[5000] ^= 1
	os.WriteFile(p, b, 0o644)
	before := e.host.Snapshot(t)
	if _, err := e.u.Upgrade(context.Background(), e.opts()); !errors.Is(err, repo.ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
	if st := e.bootState(); st != (bootcfg.State{Default: "a"}) {
		t.Errorf("boot state %+v after a refused update", st)
	}
	if !e.noticed(delta.ErrBadChunk.Error()) {
		t.Errorf("notices %q do not name the bad chunk", e.notices)
	}
}

// TestDeltaResumes: an upgrade cut during the chunk download keeps the
// chunks fetched; the next one asks for none of them again.
func TestDeltaResumes(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	n := 0
	e.srv.SetHook(func(path string) bool {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(path, "/chunks/") {
			if n++; n == 6 {
				cancel()
				return false
			}
		}
		return true
	})
	if _, err := e.u.Upgrade(ctx, e.opts()); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the cut", err)
	}
	if e.bootState().Try != "" {
		t.Fatal("a cut download put a slot on trial")
	}
	e.srv.SetHook(nil)
	// What the cut run kept: no request for any of it again.
	cached := cachedChunks(t, e.host.Root.Join(DownloadDir, "1.1.0", "chunks"), "/"+repo.ChunksDir+"/")
	if len(cached) == 0 {
		t.Fatal("the cut run kept no chunk")
	}
	before := e.srv.Requests()
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	e.stagedSlotB(v2)
	after := e.srv.Requests()
	for p := range cached {
		if after[p] != before[p] {
			t.Errorf("%s was kept by the cut run and fetched again", p)
		}
	}
}

// cachedChunks lists the chunk files under dir as the paths a server
// serves them at (prefix + <4 hex>/<id>.cacnk).
func cachedChunks(t *testing.T, dir, prefix string) map[string]bool {
	out := map[string]bool{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, casync.ChunkExt) {
			rel, _ := filepath.Rel(dir, p)
			out[prefix+filepath.ToSlash(rel)] = true
		}
		return nil
	})
	return out
}

// TestDeltaSeedChangesDuringWrite: seed bytes that stop matching between
// planning and writing (dm-verity would answer EIO) are not written: the
// chunk comes from the store and the slot verifies.
func TestDeltaSeedChangesDuringWrite(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	seed := e.host.Root.Join(BootedUsrDevice)
	e.u.Open = func(p string) (slotwriter.Device, error) {
		if strings.HasSuffix(p, "/usr-b") {
			b := bytes.Clone(e.v1.Usr)
			copy(b[100<<10:], bytes.Repeat([]byte{0xff}, 64<<10))
			if err := os.WriteFile(seed, b, 0o644); err != nil {
				return nil, err
			}
		}
		return slotwriter.OpenDevice(p)
	}
	p, err := e.u.Upgrade(context.Background(), e.opts())
	if err != nil {
		t.Fatal(err)
	}
	e.stagedSlotB(v2)
	if p.deltas != nil && p.deltas[payload.PartUsr].Stats.SeedMisses == 0 {
		t.Error("no seed chunk was found changed")
	}
	if !p.Delta {
		t.Errorf("fell back to the full payload: %q", e.notices)
	}
}

// TestDeltaBootedVersionUnpublished: the booted version is not in the
// repository and no index of it is kept, so nothing locates the booted
// slot's chunks: the full payload is downloaded and the output says why.
// The new version's indexes are kept, so the upgrade after it (booted
// into 1.1.0) is a delta seeded through them, without asking the
// repository for them.
func TestDeltaBootedVersionUnpublished(t *testing.T) {
	e := newUnpublishedEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	p, err := e.u.Upgrade(context.Background(), e.opts())
	if err != nil {
		t.Fatal(err)
	}
	e.stagedSlotB(v2)
	const why = "no chunk index of the booted version 1.0.0"
	if p.Delta || !strings.Contains(p.DeltaNote, why) || !e.noticed("downloading the full payload") || !e.noticed(why) {
		t.Errorf("delta %v, note %q, notices %q: want the full payload and why", p.Delta, p.DeltaNote, e.notices)
	}
	if n, _ := e.srv.ServedExactly("/versions/1.1.0/usr.erofs"); n < int64(len(v2.Usr)) {
		t.Errorf("served %d bytes of usr.erofs, want the full %d", n, len(v2.Usr))
	}
	e.keptIndexes("1.1.0")

	// Reboot into b (1.1.0), bless it; its slot's /usr is the verity device.
	e.boot(bootcfg.SlotB, v2)
	if _, err := (slots.Host{Root: e.host.Root}).Bless(); err != nil {
		t.Fatal(err)
	}
	updatertest.WriteFile(t, e.host.Root.Join(BootedUsrDevice), v2.Usr)
	indexReqs := func() (n int) {
		for _, f := range []string{"usr.erofs", "usr.verity", "vmlinuz", "initrd.img"} {
			_, reqs := e.srv.ServedExactly("/versions/1.1.0/" + payload.IndexFile(f))
			n += reqs
		}
		return n
	}
	reqsBefore := indexReqs()
	e.notices = nil
	usr := bytes.Clone(v2.Usr)
	copy(usr[100<<10:], updatertest.RandomBytes(9, 4096))
	v3 := updatertest.MakeBuildFrom(t, t.TempDir(), "1.2.0", usr)
	if _, err := repo.Publish(context.Background(), repo.PublishOptions{Repo: e.repoDir, Channel: "stable", OutDir: v3.Dir,
		Key: e.key.Private, Chunker: testChunks, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	chunksBefore, _ := e.srv.Served("/chunks/")
	p, err = e.u.Upgrade(context.Background(), e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Delta || p.Target != bootcfg.SlotA || len(e.notices) > 0 {
		t.Fatalf("delta %v into %s, notices %q: want a delta into a seeded from the kept 1.1.0 indexes", p.Delta, p.Target, e.notices)
	}
	if n := indexReqs() - reqsBefore; n != 0 {
		t.Errorf("1.1.0's indexes fetched %d times, want them read from the kept copy", n)
	}
	if !bytes.HasPrefix(e.readPart("usr-a"), v3.Usr) {
		t.Error("slot a does not hold 1.2.0")
	}
	if chunks, _ := e.srv.Served("/chunks/"); chunks-chunksBefore > int64(len(v3.Usr))/4 {
		t.Errorf("fetched %d chunk bytes for a 4 KiB change: the kept indexes were not used", chunks-chunksBefore)
	}
	e.keptIndexes("1.1.0", "1.2.0")
}

// TestDeltaSeedIndexFromKeptCopy: the booted version's indexes kept on the
// host are used without asking the repository; a damaged kept index is
// not used, and that part's index is read from the repository instead.
func TestDeltaSeedIndexFromKeptCopy(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	for part, f := range partFiles {
		b, err := os.ReadFile(filepath.Join(e.repoDir, "versions/1.0.0", payload.IndexFile(f)))
		if err != nil {
			t.Fatal(err)
		}
		if part == payload.PartUsr {
			b = b[:len(b)-7] // truncated: not used
		}
		updatertest.WriteFile(t, e.host.Root.Join(IndexDir, "1.0.0", part+".caibx"), b)
	}
	updatertest.WriteFile(t, e.host.Root.Join(IndexDir, "0.9.0", "usr.caibx"), []byte("stale"))
	e.upgradeDelta(v2)
	for part, f := range partFiles {
		_, reqs := e.srv.ServedExactly("/versions/1.0.0/" + payload.IndexFile(f))
		if want := part == payload.PartUsr; (reqs > 0) != want {
			t.Errorf("%s: the booted version's index fetched %d times, want fetched %v", part, reqs, want)
		}
	}
	if chunks, _ := e.srv.Served("/chunks/"); chunks > int64(len(v2.Usr))/5 {
		t.Errorf("%d chunk bytes: the seeds were not used", chunks)
	}
	// The damaged copy is replaced, the stale version's removed.
	e.keptIndexes("1.0.0", "1.1.0")
}

// TestDeltaBootedIndexPartlyMissing: the repository lost the booted
// version's usr index: usr has no seed (fetched whole as chunks, and the
// plan says so), the other parts are still seeded.
func TestDeltaBootedIndexPartlyMissing(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	os.Remove(filepath.Join(e.repoDir, "versions/1.0.0/usr.erofs.caibx"))
	p := e.dryRun()
	var out bytes.Buffer
	p.Describe(&out)
	const why = "no chunk index of the booted version 1.0.0 for usr"
	if !p.Delta || !strings.Contains(p.SeedNote, why) || !strings.Contains(out.String(), why) {
		t.Errorf("delta %v, seed note %q, dry run:\n%s", p.Delta, p.SeedNote, out.String())
	}
	e.notices = nil
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	e.stagedSlotB(v2)
	if chunks, _ := e.srv.Served("/chunks/"); chunks < int64(len(v2.Usr))/2 {
		t.Errorf("%d chunk bytes for a %d-byte usr without a seed", chunks, len(v2.Usr))
	}
}

// TestDeltaAfterRollback: upgraded to 1.1.0 and rolled back to 1.0.0 in
// slot a, the host seeds the next upgrade (into b) from slot a by the kept
// 1.0.0 indexes: kept by version, not by slot, so the rollback does not
// make it use 1.1.0's indexes on 1.0.0's bytes.
func TestDeltaAfterRollback(t *testing.T) {
	e := newDeltaEnv(t)
	v2 := e.publishEdit("1.1.0", false)
	e.upgradeDelta(v2)
	e.boot(bootcfg.SlotB, v2)
	if _, err := (slots.Host{Root: e.host.Root}).Bless(); err != nil {
		t.Fatal(err)
	}
	if r, err := e.u.Rollback(context.Background(), RollbackOptions{}); err != nil || r.To != bootcfg.SlotA {
		t.Fatalf("rollback: got %+v, %v", r, err)
	}
	e.boot(bootcfg.SlotA, e.v1) // /dev/mapper/usr is v1's again
	usr := bytes.Clone(e.v1.Usr)
	copy(usr[200<<10:], updatertest.RandomBytes(10, 4096))
	v3 := updatertest.MakeBuildFrom(t, t.TempDir(), "1.2.0", usr)
	if _, err := repo.Publish(context.Background(), repo.PublishOptions{Repo: e.repoDir, Channel: "stable", OutDir: v3.Dir,
		Key: e.key.Private, Chunker: testChunks, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	chunksBefore, _ := e.srv.Served("/chunks/")
	o := e.opts()
	o.To = "1.2.0"
	p, err := e.u.Upgrade(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if p.From != "1.0.0" || p.Target != bootcfg.SlotB || !p.Delta || p.SeedNote != "" {
		t.Fatalf("got %s -> %s into %s, delta %v, seed note %q", p.From, p.To, p.Target, p.Delta, p.SeedNote)
	}
	if !bytes.HasPrefix(e.readPart("usr-b"), v3.Usr) {
		t.Error("slot b does not hold 1.2.0")
	}
	if chunks, _ := e.srv.Served("/chunks/"); chunks-chunksBefore > int64(len(v3.Usr))/4 {
		t.Errorf("fetched %d chunk bytes for a 4 KiB change: slot a was not seeded by 1.0.0's index", chunks-chunksBefore)
	}
	e.keptIndexes("1.0.0", "1.2.0")
}
