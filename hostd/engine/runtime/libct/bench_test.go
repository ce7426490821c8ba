package libct_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

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
	runCLI := func(b *testing.B, cli string) {
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
	}
	b.Run("runc", func(b *testing.B) { runCLI(b, "runc") })
	b.Run("crun", func(b *testing.B) { runCLI(b, "crun") })
	// Debian 12's crun 1.8 refuses a hybrid host whose cgroup2 mount has
	// a controller (here hugetlb). Hidden from it, it sees a legacy host
	// and puts the container in v1 cgroups (cgroupfs manager) as runc
	// and libcontainer do here: cgroups stay on, the comparison is fair.
	b.Run("crun-cgroup-v1-view", func(b *testing.B) {
		if err := hideCgroup2(); err != nil {
			b.Skipf("cannot hide %s from crun: %v", cgroup2Mount, err)
		}
		b.Logf("crun runs in a private mount namespace without %s: it sees a cgroup v1 host and uses v1 cgroups (cgroupfs), as runc does", cgroup2Mount)
		runCLI(b, "crun")
	})
}

// cgroup2Mount is where a hybrid host (systemd's) mounts cgroup2.
const cgroup2Mount = "/sys/fs/cgroup/unified"

// hideCgroup2 moves the calling goroutine, for good, onto a thread with a
// private mount namespace where cgroup2Mount is unmounted; the commands it
// then starts inherit that view. The host's mounts are untouched. The
// thread is never unlocked: it dies with the goroutine.
func hideCgroup2() error {
	if _, err := os.Stat(filepath.Join(cgroup2Mount, "cgroup.controllers")); err != nil {
		return fmt.Errorf("no hybrid cgroup2 mount here: %w", err)
	}
	goruntime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Unmount(cgroup2Mount, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting: %w", err)
	}
	return nil
}
