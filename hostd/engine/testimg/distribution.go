package testimg

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryOptions shape a DistributionRegistry.
type RegistryOptions struct {
	// Users are htpasswd users (user -> password): when given, every
	// request needs basic auth.
	Users map[string]string
	// Netns is a network namespace path (/run/netns/...) to start the
	// registry in (nsenter --net), for a daemon running there.
	Netns string
	// Data holds the blobs and manifests ("" a temp dir). Two registries on
	// one data directory, one in the test's namespace and one in a
	// daemon's, serve the same images to both.
	Data string
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
}

// DistributionRegistry starts Debian's docker-registry (the CNCF
// distribution registry, a real one) on loopback, stopped when the test
// ends, and returns its host:port.
func DistributionRegistry(t testing.TB, o RegistryOptions) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("needs docker-registry (apt-get install docker-registry): %v", err)
	}
	if o.Port == 0 {
		// A free port here is free in a new namespace too (its own ports).
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		o.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", o.Port)
	dir := t.TempDir()
	if o.Data == "" {
		o.Data = filepath.Join(dir, "data")
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", o.Data, addr)
	if len(o.Users) > 0 {
		var lines []string
		for u, p := range o.Users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, u+":"+string(h))
		}
		sort.Strings(lines)
		htp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: bulkhead-test\n    path: %s\n", htp)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{bin, "serve", cfgPath}
	if o.Netns != "" {
		args = append([]string{"nsenter", "--net=" + o.Netns}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	// The registry logs "listening on <addr>" once it serves (a probe of
	// /v2/ would need the credentials).
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		listening := false
		for sc.Scan() {
			if !listening && strings.Contains(sc.Text(), "listening on") {
				close(ready)
				listening = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("docker-registry did not listen on %s within 20s", addr)
	}
	return addr
}
