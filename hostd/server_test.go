package hostd

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/client"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// startServer runs a Server on a socket in a temp dir for the test's uid.
func startServer(t *testing.T) (*Server, *client.Client) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "hostd.sock")
	s := New(Config{Root: fsroot.Root(dir), Socket: sock, AllowUID: os.Getuid()})
	l, err := Listen(sock, os.Getuid())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, client.New(sock)
}

func TestSocketIsPrivate(t *testing.T) {
	_, c := startServer(t)
	st, err := os.Stat(c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600", st.Mode().Perm())
	}
}

func TestStatusWithoutSlots(t *testing.T) {
	_, c := startServer(t)
	var resp StatusResponse
	if err := c.Do(context.Background(), http.MethodGet, "/v1/status", nil, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Hostd.PID != os.Getpid() || resp.Slots != nil || resp.SlotsError == "" {
		t.Errorf("got %+v, want own pid and a slots error (no os-release in the temp root)", resp)
	}
}

func TestHealthReportsFailingCheck(t *testing.T) {
	s, c := startServer(t)
	s.AddHealthCheck("ok", func(context.Context) error { return nil })
	s.AddHealthCheck("web", func(context.Context) error { return errors.New("container web unhealthy") })
	var resp HealthResponse
	err := c.Do(context.Background(), http.MethodGet, "/v1/health", nil, &resp)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want a 503", err)
	}
	if resp.Healthy || len(resp.Checks) != 2 {
		t.Errorf("got %+v, want unhealthy with 2 checks", resp)
	}
}

func TestPeerCheckRefusesOtherUID(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	l, err := Listen(sock, os.Getuid()+12345)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Socket: sock})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, l) }()
	err = client.New(sock).Do(context.Background(), http.MethodGet, "/v1/status", nil, nil)
	if !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("got %v, want the connection refused for a foreign uid", err)
	}
}
