package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// BenchmarkBuild measures a cold build (no cached root tree; the .deb cache
// is kept so the mirror's speed does not count) and a warm rebuild where
// only the hostd binary changed, and reports the qcow2 size. Root only.
// Run with `make bench`.
func BenchmarkBuild(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root: mmdebstrap, chroot and file ownership")
	}
	cache := b.TempDir()
	shared := "/var/cache/bulkhead/debs"
	if err := os.MkdirAll(filepath.Join(cache, "debs"), 0o755); err != nil {
		b.Fatal(err)
	}
	// Reuse downloaded .debs (hard links: same filesystem, or copies).
	if ents, err := os.ReadDir(shared); err == nil {
		for _, e := range ents {
			src, dst := filepath.Join(shared, e.Name()), filepath.Join(cache, "debs", e.Name())
			if os.Link(src, dst) != nil {
				if data, err := os.ReadFile(src); err == nil {
					_ = os.WriteFile(dst, data, 0o644)
				}
			}
		}
	}
	bin := b.TempDir()
	writeBins := func(tag string) {
		for _, n := range Binaries {
			if err := os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\necho "+n+" "+tag+"\n"), 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	def, err := images.Default()
	if err != nil {
		b.Fatal(err)
	}
	// The default names keys/dev.pub relative to the working directory:
	// sign with a key of the benchmark's own, never one made in the tree.
	keyDir := b.TempDir()
	if _, pub, err := GenerateSigningKey(keyDir, "dev", ""); err != nil {
		b.Fatal(err)
	} else {
		def.Keys = []string{pub}
	}
	out := filepath.Join(b.TempDir(), "out")
	build := func(name, tag string) {
		writeBins(tag)
		bd := &Builder{Runner: run.Exec{}, CacheDir: cache, BinDir: bin, Epoch: DefaultEpoch}
		b.Run(name, func(b *testing.B) {
			start := time.Now()
			m, err := bd.Build(context.Background(), def, out)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds(), "s/build")
			b.ReportMetric(float64(m.Parts[manifest.PartQcow2].Size)/1e6, "qcow2-MB")
			b.ReportMetric(float64(m.Parts[manifest.PartUsr].Size)/1e6, "usr-MB")
		})
	}
	build("cold", "one")
	build("warm-hostd-changed", fmt.Sprint(time.Now().UnixNano()))
}
