package testimg

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// DistributionRegistry starts Debian's docker-registry (the CNCF
// distribution registry, a real one) on 127.0.0.1:port with its blobs and
// manifests under data, stopped when the test ends, and returns its
// host:port. port 0 picks a free one. With netns (a /run/netns path) it
// runs in that network namespace (nsenter --net): two registries on one
// data directory, one in the test's namespace and one in a daemon's,
// serve the same images to both.
func DistributionRegistry(t testing.TB, data, netns string, port int) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("needs docker-registry (apt-get install docker-registry): %v", err)
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", data, addr)
	cfgPath := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// in runs argv in the registry's namespace.
	in := func(ctx context.Context, argv ...string) *exec.Cmd {
		if netns != "" {
			argv = append([]string{"nsenter", "--net=" + netns}, argv...)
		}
		return exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := in(ctx, bin, "serve", cfgPath)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if in(context.Background(), Busybox, "wget", "-q", "-O", "/dev/null", "http://"+addr+"/v2/").Run() == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s within 20s", addr)
		}
	}
}
