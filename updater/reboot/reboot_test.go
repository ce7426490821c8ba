package reboot

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/updater/reboot/fleetlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/reboottest"
	"github.com/bulkhead-os/bulkhead/updater/reboot/window"
)

const machineID = "3d1219c7c4c5404aaa1f6d2a48adfda4\n"

func hostRoot(t *testing.T, updateYAML string) fsroot.Root {
	t.Helper()
	root := fsroot.Root(t.TempDir())
	if err := os.MkdirAll(filepath.Join(string(root), "etc/bulkhead"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Join("/etc/machine-id"), []byte(machineID), 0o444); err != nil {
		t.Fatal(err)
	}
	if updateYAML != "" {
		if err := fsroot.WriteFile(root.Join(ConfigPath), []byte(updateYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestAppSpecificID compares with systemd 252:
// systemd-id128 machine-id --app-specific=de35106b6ec24688b63afddaa156679b
// on a machine whose /etc/machine-id is 3d1219c7c4c5404aaa1f6d2a48adfda4.
func TestAppSpecificID(t *testing.T) {
	got, err := HostID(hostRoot(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if want := "975228d46dc94622b9bbe16671e2b58d"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := AppSpecificID("not-hex", zincatiAppID); err == nil {
		t.Error("not-hex: got nil error")
	}
}

// loadConfig reads the update.yaml hostRoot wrote (none: the default).
func loadConfig(root fsroot.Root) (Config, error) {
	b, err := os.ReadFile(root.Join(ConfigPath))
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(b)
}

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"missing file", "", "strategy=immediate"},
		{"etcd with window", `
strategy: etcd-lock
etcd:
  endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
  group: workers
window:
  days: [mon-fri]
  start: "02:00"
  length: 2h
  timezone: Europe/Berlin
rollout_wariness: 0.25
`, "strategy=etcd-lock+window"},
		{"fleetlock", `
strategy: fleetlock
fleetlock: {base_url: "http://airlock:3333/"}
`, "strategy=fleetlock"},
		{"window", `
strategy: window
window: {start: "23:00", end: "01:00", timezone: UTC}
`, "strategy=window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := hostRoot(t, tc.yaml)
			cfg, err := loadConfig(root)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(cfg, Options{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := "strategy=" + s.Name(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConfigProblems checks that every problem is reported with its path.
func TestConfigProblems(t *testing.T) {
	_, err := ParseConfig([]byte(`
strategy: etcd-lock
etcd:
  endpoints: [10.0.0.1:2379]
  max_holders: -1
  cert_file: /etc/ssl/c.pem
window:
  days: [mon, funday]
  start: "25:00"
  length: 2h
  end: "04:00"
  timezone: Not a Zone
fleetlock:
  base_url: ftp://x
  group: "a/b"
rollout_wariness: 1.5
`))
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v, want ErrInvalidConfig", err)
	}
	golden.Assert(t, "config-problems.txt", []byte(err.Error()+"\n"))
}

func TestConfigUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"top level", "strategy: immediate\nstrategie: window\n", "field strategie not found"},
		{"nested", "strategy: fleetlock\nfleetlock: {base_url: 'http://a', grup: x}\n", "field grup not found"},
		{"missing section", "strategy: fleetlock\n", "fleetlock: required by strategy fleetlock"},
		{"bad strategy", "strategy: sometimes\n", `strategy: "sometimes" is not one of`},
		{"not a map", "- a\n", "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestWindowedPreReboot(t *testing.T) {
	cfg := Config{Strategy: StrategyWindow, Window: &WindowConfig{Start: "02:00", Length: "1h", Timezone: "UTC"}}
	inWindow := func() time.Time { return time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC) }
	s, err := New(cfg, Options{Root: hostRoot(t, ""), Now: inWindow})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PreReboot(context.Background()); err != nil {
		t.Errorf("inside the window: got %v, want nil", err)
	}
	outside := func() time.Time { return time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC) }
	s, err = New(cfg, Options{Root: hostRoot(t, ""), Now: outside})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.PreReboot(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2026-11-24T02:00:00Z") {
		t.Errorf("outside the window: got %v, want context.Canceled naming the next opening", err)
	}
	if err := s.SteadyState(context.Background()); err != nil {
		t.Errorf("SteadyState: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("strategy: etcd-lock\netcd: {endpoints: [http://a:2379]}\n"))
	f.Add([]byte("strategy: window\nwindow: {days: [sat], start: '01:00', length: 3h}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err == nil && len(cfg.Validate()) > 0 {
			t.Errorf("ParseConfig accepted a config that Validate rejects")
		}
	})
}

// logWatch is a slog handler that signals when a message is logged.
type logWatch struct {
	msg string
	hit chan struct{}
}

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logWatch) WithGroup(string) slog.Handler            { return l }
func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	if r.Message == l.msg {
		select {
		case l.hit <- struct{}{}:
		default:
		}
	}
	return nil
}

// TestWindowClosesWhileWaitingForLock: the window opens, the only FleetLock
// slot is held by a dead host, the window closes: the host must give up
// (releasing anything it may hold) and wait for the next window instead of
// rebooting late.
func TestWindowClosesWhileWaitingForLock(t *testing.T) {
	srv := reboottest.StartFleetLock(t, 1)
	dead := &fleetlock.Client{BaseURL: srv.URL, ID: "dead", Group: "default"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dead.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC).Unix())
	watch := &logWatch{msg: "maintenance window closed before the reboot lock was granted", hit: make(chan struct{}, 1)}
	refused := &logWatch{msg: "fleetlock request refused, retrying", hit: make(chan struct{}, 1)}
	w := &Windowed{
		Window: mustWindow(t, WindowConfig{Start: "02:00", Length: "1h", Timezone: "UTC"}),
		Then:   &fleetlock.Client{BaseURL: srv.URL, ID: "me", Group: "default", Backoff: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}, Log: slog.New(refused)},
		Now:    func() time.Time { return time.Unix(clock.Load(), 0) },
		Log:    slog.New(watch),
		Tick:   2 * time.Millisecond,
	}
	done := make(chan error, 1)
	go func() { done <- w.PreReboot(ctx) }()
	select { // inside the window, waiting for the lock
	case <-refused.hit:
	case err := <-done:
		t.Fatalf("PreReboot returned %v while the lock was held elsewhere", err)
	}
	clock.Store(time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC).Unix()) // the window closes
	select {
	case <-watch.hit:
	case err := <-done:
		t.Fatalf("PreReboot returned %v while the lock was held elsewhere", err)
	}
	if hs := srv.Holders("default"); !slices.Equal(hs, []string{"dead"}) {
		t.Errorf("got holders %q, want only dead", hs)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled while waiting for the next window", err)
	}
}

func mustWindow(t *testing.T, c WindowConfig) window.Window {
	t.Helper()
	w, err := c.BuildWindow(fsroot.Root(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return w
}
