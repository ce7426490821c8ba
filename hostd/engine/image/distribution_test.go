package image

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPullFromDistributionRegistry pulls from a real registry: Debian's
// docker-registry (the CNCF distribution registry), started on loopback.
func TestPullFromDistributionRegistry(t *testing.T) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("needs docker-registry: apt-get install docker-registry")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", cfgPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	img := imageOf(t, fileLayer(t, map[string]string{"etc/release": "real registry"}), fileLayer(t, map[string]string{"bin/app": "x"}))
	push(t, addr+"/team/app:1.0", img)
	s := openStore(t, Options{Insecure: []string{addr}})
	im, err := s.Pull(context.Background(), addr+"/team/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if got := readLayerFile(t, s, im, "etc/release"); got != "real registry" {
		t.Errorf("got %q, want %q", got, "real registry")
	}
	md, _ := img.Digest()
	if im.ManifestDigest != md.String() {
		t.Errorf("got manifest %s, want %s", im.ManifestDigest, md)
	}
}
