package testimg

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime"
	"github.com/bulkhead-os/bulkhead/hostd/engine/shim"
)

// BuildHostd builds cmd/hostd and, beside it, cmd/hostd-shim and
// cmd/hostd-launch as the image has them (make bin: the shim without cgo,
// the others with -tags seccomp when this test binary has it), and returns
// hostd's path.
func BuildHostd(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("needs the go toolchain to build hostd: %v", err)
	}
	dir := t.TempDir()
	args := []string{"build", "-trimpath", "-o", dir + "/"}
	if runtime.SeccompSupported {
		args = append(args, "-tags", "seccomp")
	}
	builds := []*exec.Cmd{
		exec.Command(gobin, append(args, "github.com/bulkhead-os/bulkhead/cmd/hostd", "github.com/bulkhead-os/bulkhead/cmd/hostd-launch")...),
		exec.Command(gobin, "build", "-trimpath", "-o", filepath.Join(dir, shim.Binary), "github.com/bulkhead-os/bulkhead/cmd/hostd-shim"),
	}
	builds[1].Env = append(builds[1].Environ(), "CGO_ENABLED=0")
	for _, cmd := range builds {
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, b)
		}
	}
	return filepath.Join(dir, "hostd")
}

// BuildInit builds cmd/hostd-shim as the image has it (static, without
// cgo), the binary hostd mounts as a container's /sbin/docker-init, and
// returns its path: a test binary links cgo, so it cannot be mounted into
// an image of another libc.
func BuildInit(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("needs the go toolchain to build the init: %v", err)
	}
	out := filepath.Join(t.TempDir(), shim.Binary)
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", out, "github.com/bulkhead-os/bulkhead/cmd/hostd-shim")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	return out
}
