package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/benchtable"
	"github.com/bulkhead-os/bulkhead/updater/casync"
	"github.com/bulkhead-os/bulkhead/updater/delta/chunker"
)

// BenchmarkDelta measures what a delta update downloads against the full
// payload, on real /usr images: v1 is the image `make image` built
// (out/default/payload, or $BULKHEAD_BENCH_PAYLOAD), v2 is v1 with only
// hostd rebuilt (another version string), v3 is v1 with one Debian package
// upgraded (libssl3 to the candidate apt offers). Each version also gets its
// own os-release, and its own filesystem UUID and verity salt as the builder
// derives them from the version. Each erofs layout (the builder's, and the
// changes to it weighed) is made with mkfs.erofs as the builder runs it,
// and the delta is taken for several chunk sizes:
// the bytes the host fetches (indexes and compressed chunks missing from the
// seeds: the booted slot's image, verity tree, kernel and initrd) and the
// time to plan, fetch from a local store and assemble, several runs each.
// The seeds are located by v1's index, as a host does with the index
// published with its booted version.
// The kernel and initrd are those of v1 for every version (the builder makes
// them byte for byte the same when their inputs are: out/update-* shows it).
// That understates v3 when the upgraded package is one the initrd holds,
// which changes the initrd too: BenchmarkUpdate (qemu-tests) builds real
// versions and measures that.
func BenchmarkDelta(b *testing.B) {
	payload := os.Getenv("BULKHEAD_BENCH_PAYLOAD")
	if payload == "" {
		payload = filepath.Join("..", "..", "out", "default", "payload")
	}
	for _, f := range []string{"usr.erofs", "vmlinuz", "initrd.img"} {
		if _, err := os.Stat(filepath.Join(payload, f)); err != nil {
			b.Fatalf("BenchmarkDelta needs a built image's payload (make image, or $BULKHEAD_BENCH_PAYLOAD): %v", err)
		}
	}
	ctx := context.Background()
	work := b.TempDir()
	trees := benchTrees(b, payload, work)
	// The builder's layout, then changes to it: tail packing, no
	// compression, and a verity salt that stays the same across versions.
	layouts := []benchLayout{
		{"lz4hc (builder)", "-zlz4hc", false},
		{"lz4hc, verity salt per image name", "-zlz4hc", true},
		{"lz4hc ztailpacking", "-zlz4hc -Eztailpacking", false},
		{"uncompressed", "", false},
	}
	// $BULKHEAD_BENCH_LAYOUTS keeps the layouts whose name contains one of
	// its comma-separated words (all by default).
	if only := os.Getenv("BULKHEAD_BENCH_LAYOUTS"); only != "" {
		layouts = slices.DeleteFunc(layouts, func(l benchLayout) bool {
			return !slices.ContainsFunc(strings.Split(only, ","), func(w string) bool { return strings.Contains(l.name, w) })
		})
	}
	sizes := []chunker.Params{
		{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10},
		{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10},
		{Min: 8 << 10, Avg: 32 << 10, Max: 128 << 10},
		{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
	}
	parts := []string{"usr", "verity", "kernel", "initrd"}
	const runs = 3
	boot := map[string]string{"kernel": filepath.Join(payload, "vmlinuz"), "initrd": filepath.Join(payload, "initrd.img")}
	for b.Loop() {
		for _, l := range layouts {
			mb := benchtable.New("MB")
			pct := benchtable.New("% of full")
			secs := benchtable.New("s")
			imgs := map[string]map[string]string{}
			for _, v := range []string{"v1", "v2", "v3"} {
				imgs[v] = benchImage(b, work, l.flags, l.saltPerName, v, trees[v])
				for k, f := range boot {
					imgs[v][k] = f
				}
			}
			for _, p := range sizes {
				store := filepath.Join(work, "store")
				os.RemoveAll(store)
				ck := chunker.Chunker{Params: p}
				// The seeds' indexes: those published with v1.
				seedIdx := map[string]casync.Index{}
				for _, part := range parts {
					seedIdx[part] = benchIndex(b, ctx, ck, imgs["v1"][part])
				}
				for _, to := range []string{"v2", "v3"} {
					var full, indexBytes int64
					idx := map[string]casync.Index{}
					for _, part := range parts {
						st, err := os.Stat(imgs[to][part])
						if err != nil {
							b.Fatal(err)
						}
						full += st.Size()
						ib, err := ck.Index(ctx, imgs[to][part])
						if err != nil {
							b.Fatal(err)
						}
						if err := ck.Store(ctx, imgs[to][part], ib, store); err != nil {
							b.Fatal(err)
						}
						if idx[part], err = ParseIndex(ib, st.Size()); err != nil {
							b.Fatal(err)
						}
						indexBytes += int64(len(ib))
					}
					row := fmt.Sprintf("%s, chunks %d/%d/%d KiB, v1->%s", l.name, p.Min>>10, p.Avg>>10, p.Max>>10, to)
					for range runs {
						start := time.Now()
						fetched := map[string]int64{}
						cache := b.TempDir()
						for _, part := range parts {
							fetched[part] = benchAssemble(b, ctx, Image{Name: part, Index: idx[part], Seeds: []Seed{{Path: imgs["v1"][part], Index: seedIdx[part]}},
								CacheDir: cache, Fetch: storeFetcher(store)}, imgs[to][part])
						}
						secs.Add(row+": plan+fetch+assemble", time.Since(start).Seconds())
						total := indexBytes + fetched["usr"] + fetched["verity"] + fetched["kernel"] + fetched["initrd"]
						mb.Add(row+": full payload", float64(full)/1e6)
						mb.Add(row+": delta download", float64(total)/1e6)
						mb.Add(row+":   usr chunks", float64(fetched["usr"])/1e6)
						mb.Add(row+":   verity chunks", float64(fetched["verity"])/1e6)
						mb.Add(row+":   kernel+initrd chunks", float64(fetched["kernel"]+fetched["initrd"])/1e6)
						mb.Add(row+":   indexes", float64(indexBytes)/1e6)
						pct.Add(row+": delta/full", 100*float64(total)/float64(full))
					}
				}
			}
			// One table per layout, printed as soon as it is measured.
			var out strings.Builder
			fmt.Fprintf(&out, "\ndelta updates, erofs %s (%d runs each)\n", l.name, runs)
			mb.Write(&out)
			out.WriteString("\n")
			pct.Write(&out)
			out.WriteString("\n")
			secs.Write(&out)
			fmt.Print(out.String())
		}
	}
}

// benchLayout is an erofs layout the benchmark weighs.
type benchLayout struct {
	name, flags string
	saltPerName bool // the verity salt from the image name, not the version
}

// benchAssemble plans, fetches and assembles one image into a file, checks
// it is the target byte for byte, and returns the bytes fetched.
func benchAssemble(b *testing.B, ctx context.Context, img Image, want string) int64 {
	p := NewPlan(img)
	if err := p.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(filepath.Join(b.TempDir(), img.Name))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if err := p.Assemble(ctx, out, "assemble "+img.Name); err != nil {
		b.Fatal(err)
	}
	if sumFile(b, out.Name()) != sumFile(b, want) {
		b.Fatalf("assembled %s differs from %s", img.Name, want)
	}
	return p.Stats.FetchedBytes
}

// benchIndex is the index desync makes of a file, as ours reads it.
func benchIndex(b *testing.B, ctx context.Context, ck chunker.Chunker, file string) casync.Index {
	ib, err := ck.Index(ctx, file)
	if err != nil {
		b.Fatal(err)
	}
	idx, err := casync.ParseIndex(ib)
	if err != nil {
		b.Fatal(err)
	}
	return idx
}

// storeFetcher reads chunks from a local store directory.
func storeFetcher(dir string) Fetcher {
	return func(_ context.Context, p string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
	}
}

func sumFile(b *testing.B, f string) [32]byte {
	d, err := os.ReadFile(f)
	if err != nil {
		b.Fatal(err)
	}
	return sha256.Sum256(d)
}

// benchRun runs a command, failing the benchmark with its output.
func benchRun(b *testing.B, dir, name string, args ...string) {
	b.Helper()
	cmd := exec.Command("nice", append([]string{"-n", "19", name}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// benchTrees extracts v1's /usr and derives v2 and v3 from it.
func benchTrees(b *testing.B, payload, work string) map[string]string {
	trees := map[string]string{}
	for _, v := range []string{"v1", "v2", "v3"} {
		trees[v] = filepath.Join(work, "tree-"+v)
	}
	benchRun(b, work, "fsck.erofs", "--extract="+trees["v1"], filepath.Join(payload, "usr.erofs"))
	for _, v := range []string{"v2", "v3"} {
		benchRun(b, work, "cp", "-a", trees["v1"], trees[v])
		osr := filepath.Join(trees[v], "lib", "os-release")
		rel, err := os.ReadFile(osr)
		if err != nil {
			b.Fatal(err)
		}
		ver := map[string]string{"v2": "1.0.1", "v3": "1.0.2"}[v]
		if err := os.WriteFile(osr, bytes.ReplaceAll(rel, []byte("1.0.0"), []byte(ver)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// v2: hostd built with another version string, as a release with only
	// hostd changed would be, from the source v1 was built from
	// ($BULKHEAD_BENCH_SRC, default this checkout).
	modRoot := os.Getenv("BULKHEAD_BENCH_SRC")
	if modRoot == "" {
		var err error
		if modRoot, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
			b.Fatal(err)
		}
	}
	// As the Makefile builds it.
	benchRun(b, modRoot, "env", "CGO_ENABLED=1", "go", "build", "-trimpath", "-buildvcs=false", "-tags", "seccomp",
		"-ldflags", "-s -w -X github.com/bulkhead-os/bulkhead/hostd.Version=9.9.9",
		"-o", filepath.Join(trees["v2"], "bin", "hostd"), "./cmd/hostd")
	// v3: one Debian package upgraded.
	debs := filepath.Join(work, "debs")
	os.MkdirAll(debs, 0o755)
	benchRun(b, debs, "apt-get", "download", "libssl3")
	matches, _ := filepath.Glob(filepath.Join(debs, "libssl3_*.deb"))
	if len(matches) != 1 {
		b.Fatalf("apt-get download libssl3 gave %v", matches)
	}
	x := filepath.Join(work, "deb-x")
	benchRun(b, work, "dpkg-deb", "-x", matches[0], x)
	benchRun(b, work, "cp", "-a", filepath.Join(x, "usr")+"/.", trees["v3"]+"/")
	return trees
}

// benchImage makes a version's usr image with mkfs.erofs (the builder's
// -T and -U, the layout's compression flags) and its verity tree, with
// UUID and salt derived from the version as the builder does (the salt from
// the image name alone when saltPerName).
func benchImage(b *testing.B, work, flags string, saltPerName bool, version, tree string) map[string]string {
	dir := filepath.Join(work, "img"+strings.NewReplacer(" ", "", "-", "_").Replace(flags), version)
	os.MkdirAll(dir, 0o755)
	usr := filepath.Join(dir, "usr.erofs")
	ver := filepath.Join(dir, fmt.Sprintf("usr.verity-%v", saltPerName))
	id := func(purpose string) [32]byte { return sha256.Sum256([]byte(version + "\x00" + purpose)) }
	if _, err := os.Stat(usr); err != nil {
		u := id("usr-fs")
		u[6], u[8] = u[6]&0x0f|0x80, u[8]&0x3f|0x80
		uuid := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		benchRun(b, dir, "mkfs.erofs", append(strings.Fields(flags), "-T1767225600", "-U"+uuid, "--quiet", usr, tree)...)
	}
	salt := id("verity-salt")
	if saltPerName {
		salt = sha256.Sum256([]byte("default\x00verity-salt"))
	}
	benchRun(b, dir, "veritysetup", "format", "--data-block-size=4096", "--hash-block-size=4096",
		fmt.Sprintf("--salt=%x", salt), usr, ver)
	return map[string]string{"usr": usr, "verity": ver}
}
