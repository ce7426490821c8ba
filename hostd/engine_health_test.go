package hostd

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/hostd/client"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/hostd/engine/runtime/libct"
	"github.com/bulkhead-os/bulkhead/hostd/engine/testimg"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// unhealthyChecks asks hostd's health endpoint and returns the failing
// checks' messages, failing the test when the host is healthy.
func unhealthyChecks(t *testing.T, c *client.Client) string {
	t.Helper()
	var resp HealthResponse
	err := c.Do(context.Background(), http.MethodGet, "/v1/health", nil, &resp)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusServiceUnavailable || resp.Healthy {
		t.Fatalf("health: got %v, %+v, want a 503", err, resp)
	}
	var msgs []string
	for _, ch := range resp.Checks {
		if ch.Error != "" {
			msgs = append(msgs, ch.Name+": "+ch.Error)
		}
	}
	return strings.Join(msgs, "; ")
}

// runEngine starts hostd's engine on s with root as the host's /, until
// the test ends.
func runEngine(t *testing.T, s *Server, root string, o EngineOptions) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := startEngine(ctx, s, fsroot.Root(root), o, slog.Default())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); e.Close() })
}

// A registry-auth file that does not parse keeps the engine from starting:
// the boot health gate fails (a trial rolls back) instead of passing with
// no containers.
func TestEngineBadAuthFailsHealth(t *testing.T) {
	s, c := startServer(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "auth.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := EngineOptions{Enabled: true, Root: "/lib", RunDir: "/run", Workloads: "/containers", AuthFile: "/auth.json", Runtime: libct.New}
	if _, err := startEngine(context.Background(), s, fsroot.Root(root), o, slog.Default()); err == nil {
		t.Fatal("the engine started with a broken auth file")
	}
	if got := unhealthyChecks(t, c); !strings.Contains(got, "engine: engine did not start") || !strings.Contains(got, "auth.json") {
		t.Errorf("failing checks: got %q, want the engine's naming auth.json", got)
	}
}

// A bridge that cannot come up fails the gate, naming the bridge, though
// the engine runs (with containers on --network none).
func TestEngineBridgeDownFailsHealth(t *testing.T) {
	testimg.RequireHost(t)
	s, c := startServer(t)
	root := t.TempDir()
	o := EngineOptions{Enabled: true, Root: "/lib", RunDir: "/run", Workloads: "/containers", AuthFile: "/auth.json",
		Bridge: "hdbad0", BridgeSubnet: "10.300.0.0/16", Runtime: libct.New}
	runEngine(t, s, root, o)
	if got := unhealthyChecks(t, c); !strings.Contains(got, "bridge: bridge network hdbad0 unavailable") {
		t.Errorf("failing checks: got %q, want the bridge's", got)
	}
}

// hostd tells a host shutdown (stop the containers) from a restart of
// hostd alone (leave them to their shims) by systemd's state.
func TestHostShuttingDown(t *testing.T) {
	for state, want := range map[string]bool{"stopping\n": true, "running\n": false, "degraded\n": false, "": false} {
		r := &run.Recorder{Respond: func(run.Cmd) ([]byte, error) { return []byte(state), errors.New("exit status 1") }}
		if got := hostShuttingDown(context.Background(), r); got != want {
			t.Errorf("systemctl is-system-running says %q: got %v, want %v", state, got, want)
		}
	}
}

// A default memory limit hostd cannot read is refused by name and fails
// the gate, rather than running containers without it.
func TestEngineBadDefaultMemoryFailsHealth(t *testing.T) {
	s, c := startServer(t)
	o := EngineOptions{Enabled: true, Root: "/lib", RunDir: "/run", Workloads: "/containers", AuthFile: "/auth.json",
		Defaults: engine.Limits{Memory: "lots"}, Runtime: libct.New}
	if _, err := startEngine(context.Background(), s, fsroot.Root(t.TempDir()), o, slog.Default()); err == nil {
		t.Fatal("the engine started with --container-memory lots")
	}
	if got := unhealthyChecks(t, c); !strings.Contains(got, "--container-memory") || !strings.Contains(got, `"lots"`) {
		t.Errorf("failing checks: got %q, want --container-memory and its value named", got)
	}
}

// storage-setup asked for devicemapper (STORAGE_DRIVER in its sysconfig):
// hostd cannot honour it, so it says so by name and the gate fails.
func TestEngineRefusesUnsupportedStorageDriver(t *testing.T) {
	s, c := startServer(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/sysconfig"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/sysconfig/docker-storage"), []byte(`DOCKER_STORAGE_OPTIONS="--storage-driver devicemapper"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := EngineOptions{Enabled: true, Root: "/lib", RunDir: "/run", Workloads: "/containers", AuthFile: "/auth.json", Runtime: libct.New}
	if _, err := startEngine(context.Background(), s, fsroot.Root(root), o, slog.Default()); err == nil {
		t.Fatal("the engine started with devicemapper asked for")
	}
	if got := unhealthyChecks(t, c); !strings.Contains(got, `storage driver "devicemapper"`) {
		t.Errorf("failing checks: got %q, want the devicemapper driver named", got)
	}
}

// A declared workload file that does not load is reported in hostd's
// status (hostctl status shows it), not only in the journal.
func TestStatusReportsBrokenWorkloadFile(t *testing.T) {
	testimg.RequireHost(t)
	s, c := startServer(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "containers", "web.yaml"), []byte("image: busybox\nimagePullPolicy: always\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := EngineOptions{Enabled: true, Root: "/lib", RunDir: "/run", Workloads: "/containers", AuthFile: "/auth.json", Runtime: libct.New}
	runEngine(t, s, root, o)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var resp StatusResponse
		if err := c.Do(context.Background(), http.MethodGet, "/v1/status", nil, &resp); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(resp.Hostd.WorkloadErrors, "web.yaml") && strings.Contains(resp.Hostd.WorkloadErrors, "imagePullPolicy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reported web.yaml's problem: %+v", resp.Hostd)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
