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

// DistributionRegistry starts Debian's docker-registry (the CNCF
// distribution registry) on loopback with its storage in a temp dir, and
// returns its host:port. users, when given, are its htpasswd users (user
// -> password): every request then needs basic auth. netns, when not "",
// is a network namespace path the registry is started in (nsenter --net),
// for a dockerd running there. It is stopped when the test ends.
func DistributionRegistry(t testing.TB, users map[string]string, netns string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("needs docker-registry (apt-get install docker-registry): %v", err)
	}
	// A free port here is free in a new namespace too (its own ports).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if len(users) > 0 {
		var lines []string
		for u, p := range users {
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
	if netns != "" {
		args = append([]string{"nsenter", "--net=" + netns}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	// The registry logs "listening on <addr>" once it serves.
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
