package qemutests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/benchtable"
	"github.com/bulkhead-os/bulkhead/updater/payload"
)

// The versions BenchmarkUpdate publishes beside v1, the image under test,
// all three from images/default.yaml.
const (
	benchV2 = "1.1.1" // v1 with only hostd changed (rebuilt with its own version string)
	benchV3 = "1.1.2" // v1 with one Debian package added
)

// benchAddedPackage is the Debian package v3 adds: less, one package whose
// dependencies the image already has.
const benchAddedPackage = "less"

// updateBenchRuns is how many times BenchmarkUpdate runs each case.
const updateBenchRuns = 3

// BenchmarkUpdate measures updates from v1 to v2 (hostd changed) and to v3
// (one Debian package added), each as a delta and as the full payload
// (hostctl upgrade --no-delta) from a server on this host, updateBenchRuns
// times each, interleaved so that the machine's noise falls on every case
// alike. All in one guest booted from v1 under TCG (KVM where it works),
// which stays on v1: every upgrade rewrites slot b. For each: the bytes the
// guest downloaded (counted by the server), their share of the version's
// full payload, the time hostctl upgrade takes (download, write, read back
// against the root hash, boot files), and the peak growth of /var during it
// (df, sampled every 0.3 s in the guest). Then one reboot into the version
// last staged: the downtime to hostd ready. Run with -benchtime 1x.
func BenchmarkUpdate(b *testing.B) {
	repos, full := benchUpdateRepos(b)
	srv := newCountingServer(b, repos)
	cases := []struct {
		name, repo, version string
		noDelta             bool
	}{
		{"v1->v2 (hostd changed), delta", "v2", benchV2, false},
		{"v1->v3 (" + benchAddedPackage + " added), delta", "v3", benchV3, false},
		{"v1->v2 (hostd changed), full payload", "v2", benchV2, true},
		{"v1->v3 (" + benchAddedPackage + " added), full payload", "v3", benchV3, true},
	}
	secs, mb, pct := benchtable.New("s"), benchtable.New("MB"), benchtable.New("% of full")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		vm := bootVM(b, BootOpts{Firmware: BIOS})
		waitReady(b, vm)
		waitUnit(b, vm, "bulkhead-bless.service")
		g := &qemuGuest{vm: vm}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
		if out, err := g.Run(ctx, "systemd-run --unit=bench-var-used sh -c "+
			"'while :; do df -B1 --output=used /var | tail -n1 >>/run/bench-var-used; sleep 0.3; done'"); err != nil {
			b.Fatalf("starting the /var sampler: %v\n%s", err, out)
		}
		b.StartTimer()
		var last string
		for run := 0; run < updateBenchRuns; run++ {
			for _, c := range cases {
				base := guestInt(b, g, ctx, ": >/run/bench-var-used; df -B1 --output=used /var | tail -n1")
				srv.reset()
				cmd := "hostctl upgrade --from " + srv.url + "/" + c.repo
				if c.noDelta {
					cmd += " --no-delta"
				}
				start := time.Now()
				out, err := g.Run(ctx, cmd)
				took := time.Since(start)
				if err != nil || !strings.Contains(out, "Version "+c.version+" written to slot b") {
					b.Fatalf("%s: %v\n%s", c.name, err, out)
				}
				if !c.noDelta && strings.Contains(out, "full payload") {
					b.Fatalf("%s: the delta update fell back to the full payload:\n%s", c.name, out)
				}
				peak := guestInt(b, g, ctx, "sort -n /run/bench-var-used | tail -n1")
				got := srv.served.Load()
				secs.Add(c.name+": apply", took.Seconds())
				mb.Add(c.name+": downloaded", float64(got)/1e6)
				mb.Add(c.name+": peak /var growth", float64(max(peak-base, 0))/1e6)
				pct.Add(c.name+": downloaded", 100*float64(got)/float64(full[c.version]))
				b.Logf("run %d, %s: %.1f s, %d bytes downloaded, /var peak +%d bytes", run, c.name, took.Seconds(), got, peak-base)
				last = c.version
			}
		}
		start := time.Now()
		if out, err := g.Run(ctx, "systemctl reboot"); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		if _, _, err := vm.Console().Wait(ctx, regexp.MustCompile(`Booting Bulkhead `+regexp.QuoteMeta(last)), g.mark); err != nil {
			b.Fatal(err)
		}
		for {
			pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
			r, err := vm.Exec(pctx, "systemctl", "is-active", "hostd.service")
			pcancel()
			if err == nil && strings.TrimSpace(r.Stdout) == "active" {
				break
			}
			select {
			case <-ctx.Done():
				b.Fatalf("waiting for hostd after the reboot: %v", ctx.Err())
			case <-time.After(time.Second):
			}
		}
		secs.Add("reboot into "+last+" to hostd ready (downtime)", time.Since(start).Seconds())
		b.StopTimer()
		cancel()
		vm.Shutdown(time.Minute)
	}
	fmt.Printf("Full payloads: %s %d bytes, %s %d bytes\n", benchV2, full[benchV2], benchV3, full[benchV3])
	for _, t := range []*benchtable.Table{secs, mb, pct} {
		t.Write(os.Stdout)
	}
	b.ReportMetric(pct.Stats(cases[0].name+": downloaded").Median, "v2-delta-%")
	b.ReportMetric(pct.Stats(cases[1].name+": downloaded").Median, "v3-delta-%")
	b.ReportMetric(secs.Ratio(cases[0].name+": apply", cases[2].name+": apply"), "v2-delta/full-time")
	b.ReportMetric(secs.Ratio(cases[1].name+": apply", cases[3].name+": apply"), "v3-delta/full-time")
}

// guestInt runs cmd in the guest and reads the integer it prints.
func guestInt(b *testing.B, g *qemuGuest, ctx context.Context, cmd string) int64 {
	b.Helper()
	out, err := g.Run(ctx, cmd)
	if err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		b.Fatalf("%s printed %q: %v", cmd, out, err)
	}
	return n
}

// countingServer serves a directory to the guest and counts the body bytes
// it sends.
type countingServer struct {
	url    string // as the guest sees it
	served atomic.Int64
}

func newCountingServer(t testing.TB, dir string) *countingServer {
	c := &countingServer{}
	files := http.FileServer(http.Dir(dir))
	c.url = serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(&countingWriter{ResponseWriter: w, n: &c.served}, r)
	}))
	return c
}

func (c *countingServer) reset() { c.served.Store(0) }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// benchUpdateRepos builds (or reuses, when newer than their inputs) v2 and
// v3 and publishes each beside v1 in its own repository under
// out/bench-update-repo, signed with images/keys/dev.key. It returns the
// repositories' directory and each version's full payload size.
func benchUpdateRepos(b *testing.B) (string, map[string]int64) {
	b.Helper()
	v1 := image(b)
	top, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	builder := filepath.Join(top, "out/bin/builder")
	inputs := []string{builder, filepath.Join(top, "out/bin/hostctl"), filepath.Join(top, "out/bin/hostd"), filepath.Join(top, "images/default.yaml")}
	start := time.Now()
	bin, err := benchHostd(top, benchV2)
	if err != nil {
		b.Fatal(err)
	}
	v2, err := buildVersion(top, benchV2, filepath.Join(top, "images/default.yaml"), append(inputs, filepath.Join(bin, "hostd")), "--bin", bin)
	if err != nil {
		b.Fatal(err)
	}
	def, err := derivedDefinition(top, func(d *images.Definition) {
		d.Version = benchV3
		d.Debian.Packages = append(d.Debian.Packages, benchAddedPackage)
	})
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(def))
	v3, err := buildVersion(top, benchV3, def, inputs)
	if err != nil {
		b.Fatal(err)
	}
	repos := filepath.Join(top, "out/bench-update-repo")
	key := filepath.Join(top, "images/keys/dev.key")
	done := filepath.Join(repos, "v3/versions", benchV3, "manifest.json")
	if !newer(done, filepath.Join(v1, "manifest.json"), filepath.Join(v2, "manifest.json"), filepath.Join(v3, "manifest.json"), key) {
		if err := os.RemoveAll(repos); err != nil {
			b.Fatal(err)
		}
		for _, r := range []struct{ repo, out string }{{"v2", v2}, {"v3", v3}} {
			for _, dir := range []string{v1, r.out} {
				cmd := exec.Command(builder, "publish", "--repo", filepath.Join(repos, r.repo), "--channel", "stable", "--key", key, dir)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("publishing %s: %v: %s", dir, err, out)
				}
			}
		}
	}
	full := map[string]int64{}
	for repo, v := range map[string]string{"v2": benchV2, "v3": benchV3} {
		body, err := os.ReadFile(filepath.Join(repos, repo, "versions", v, "manifest.json"))
		if err != nil {
			b.Fatal(err)
		}
		m, err := payload.Parse(body)
		if err != nil {
			b.Fatalf("reading the published manifest of %s: %v", v, err)
		}
		for _, name := range payload.RequiredParts {
			full[v] += m.Parts[name].Size
		}
	}
	b.Logf("benchmark versions ready in %s", time.Since(start).Round(time.Second))
	return repos, full
}

// benchHostd builds hostd as the Makefile does, with version as its version
// string, into out/bench-bin-<version> beside a copy of out/bin's
// hostd-shim (builder build --bin), unless it is newer than out/bin/hostd.
func benchHostd(top, version string) (string, error) {
	dir := filepath.Join(top, "out", "bench-bin-"+version)
	if newer(filepath.Join(dir, "hostd"), filepath.Join(top, "out/bin/hostd"), filepath.Join(top, "out/bin/hostd-shim")) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-tags", "seccomp",
		"-ldflags", "-s -w -X github.com/bulkhead-os/bulkhead/hostd.Version="+version, "-o", dir+"/", "./cmd/hostd")
	cmd.Dir = top
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building hostd %s: %w: %s", version, err, out)
	}
	if out, err := exec.Command("cp", filepath.Join(top, "out/bin/hostd-shim"), dir+"/").CombinedOutput(); err != nil {
		return "", fmt.Errorf("copying hostd-shim: %w: %s", err, out)
	}
	return dir, nil
}
