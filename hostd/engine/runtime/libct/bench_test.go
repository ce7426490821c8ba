package libct_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
)

// BenchmarkStartTrue measures container start-to-exit of `true` from the
// same bundle (busybox rootfs, the same spec): libcontainer in-process as
// hostd's shim does it, and the runc and crun CLIs (apt packages runc,
// crun) when installed.
func BenchmarkStartTrue(b *testing.B) {
	testimg.RequireHost(b)
	base := b.TempDir()
	rootfs := filepath.Join(base, "bundle", "rootfs")
	testimg.Rootfs(b, rootfs)
	mkSpec := func(id string) []byte {
		spec, err := runtime.BuildSpec(runtime.SpecInput{ID: id, Rootfs: rootfs, Args: []string{"true"}, Env: []string{"PATH=/bin"}, Network: runtime.NetworkNone, Seccomp: runtime.SeccompSupported, ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		// Debian's crun knows runtime-spec versions up to 1.0.x only; the
		// fields used here are the same.
		spec.Version = "1.0.2"
		data, _ := json.Marshal(spec)
		return data
	}
	b.Run("hostd-libcontainer", func(b *testing.B) {
		rt := libct.Runtime{StateRoot: filepath.Join(base, "state")}
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
			spec, _ := runtime.BuildSpec(runtime.SpecInput{ID: id, Rootfs: rootfs, Args: []string{"true"}, Env: []string{"PATH=/bin"}, Network: runtime.NetworkNone, Seccomp: runtime.SeccompSupported, ReadOnly: true})
			r, err := rt.Start(context.Background(), id, spec, runtime.Stdio{})
			if err != nil {
				b.Fatal(err)
			}
			if code, err := r.Wait(); err != nil || code != 0 {
				b.Fatalf("true: %d %v", code, err)
			}
		}
	})
	for _, cli := range []string{"runc", "crun"} {
		b.Run(cli, func(b *testing.B) {
			path, err := exec.LookPath(cli)
			if err != nil {
				b.Skipf("needs %s: apt-get install %s", cli, cli)
			}
			state := filepath.Join(base, cli+"-state")
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("bench-%s-%d-%d", cli, os.Getpid(), i)
				if err := os.WriteFile(filepath.Join(base, "bundle", "config.json"), mkSpec(id), 0o644); err != nil {
					b.Fatal(err)
				}
				out, err := exec.Command(path, "--root", state, "run", "--bundle", filepath.Join(base, "bundle"), id).CombinedOutput()
				if err != nil && strings.Contains(string(out), "hybrid mode not supported") {
					b.Skipf("%s does not run on this host's hybrid cgroup layout: %s", cli, out)
				}
				if err != nil {
					b.Fatalf("%s run: %v: %s", cli, err, out)
				}
			}
		})
	}
}
