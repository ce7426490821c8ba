package testimg

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

// BuildHostd builds cmd/hostd and, beside it, cmd/hostd-shim as the image
// has them (make bin: -tags seccomp when this test binary has it, the shim
// static), and returns hostd's path.
func BuildHostd(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	tags := ""
	if runtime.SeccompSupported {
		tags = "seccomp"
	}
	goBuild(t, "build", "-trimpath", "-tags", tags, "-o", dir+"/", "github.com/bulkhead-os/bulkhead/cmd/hostd")
	buildShim(t, filepath.Join(dir, shim.Binary))
	return filepath.Join(dir, "hostd")
}

// BuildInit builds cmd/hostd-shim as the image has it, the binary hostd
// mounts as a container's /sbin/docker-init, and returns its path: static,
// because a test binary's libc may not be the image's.
func BuildInit(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), shim.Binary)
	buildShim(t, out)
	return out
}

// buildShim builds cmd/hostd-shim to out as make bin does (SHIM_TAGS,
// SHIM_LDFLAGS): a static cgo binary.
func buildShim(t testing.TB, out string) {
	t.Helper()
	tags := "netgo,osusergo"
	if runtime.SeccompSupported {
		tags = "seccomp," + tags
	}
	goBuild(t, "build", "-trimpath", "-tags", tags, "-ldflags", "-linkmode external -extldflags -static",
		"-o", out, "github.com/bulkhead-os/bulkhead/cmd/hostd-shim")
}

func goBuild(t testing.TB, args ...string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("needs the go toolchain to build hostd: %v", err)
	}
	cmd := exec.Command(gobin, args...)
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
}
