package updater

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// BenchmarkUpgradeOnFiles measures download (HTTP on loopback) + write +
// read-back verification + ESP install of a 64 MiB slot image into plain
// files: the updater's own cost, without the disk and network of a host.
func BenchmarkUpgradeOnFiles(b *testing.B) {
	const blocks = 16384 // 64 MiB
	dir := b.TempDir()
	key := updatertest.NewKey(b)
	v1 := updatertest.MakeBuild(b, dir, "1.0.0", 4)
	v2 := updatertest.MakeBuild(b, dir, "2.0.0", blocks)
	repoDir := filepath.Join(dir, "repo")
	if _, err := repo.Publish(context.Background(), repo.PublishOptions{Repo: repoDir, Channel: "stable", OutDir: v2.Dir, Key: key.Private, Log: quiet}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	defer srv.Close()
	b.SetBytes(int64(len(v2.Usr) + len(v2.Verity)))
	for b.Loop() {
		b.StopTimer()
		h := updatertest.MakeHost(b, v1, key)
		if err := os.Truncate(h.Root.Join("/parts/usr-b"), 80<<20); err != nil {
			b.Fatal(err)
		}
		u := &Updater{Root: h.Root, Log: quiet}
		b.StartTimer()
		if _, err := u.Upgrade(context.Background(), Options{Source: srv.URL}); err != nil {
			b.Fatal(err)
		}
	}
}
