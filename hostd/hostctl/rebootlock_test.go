package hostctl

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/reboot/etcdlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/reboottest"
)

// TestRebootLockVerbs runs `hostctl reboot-lock status` and `release --id`
// against a real etcd where a dead host holds the only slot.
func TestRebootLockVerbs(t *testing.T) {
	ep := reboottest.StartEtcd(t)
	root := fsroot.Root(t.TempDir())
	if err := os.MkdirAll(filepath.Join(string(root), "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Join("/etc/machine-id"), []byte("3d1219c7c4c5404aaa1f6d2a48adfda4\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	cfg := "strategy: etcd-lock\netcd: {endpoints: [" + ep + "]}\n"
	if err := fsroot.WriteFile(root.Join("/etc/bulkhead/update.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dead := &etcdlock.Lock{KV: reboottest.Client(t, ep), ID: "deadbeefdeadbeefdeadbeefdeadbeef"}
	if err := dead.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}

	hostctl := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		cmd := NewRootCmd(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &stdout, Stderr: &stderr, Root: root})
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("hostctl %s: %v", strings.Join(args, " "), err)
		}
		return stdout.String()
	}
	if out := hostctl("reboot-lock", "status"); !strings.Contains(out, "  deadbeefdeadbeefdeadbeefdeadbeef\n") || !strings.Contains(out, "0 of 1 free") {
		t.Errorf("status: got %q, want the dead holder and no free slot", out)
	}
	if got, want := hostctl("reboot-lock", "release", "--id", dead.ID), "released "+dead.ID+"\n"; got != want {
		t.Errorf("release: got %q, want %q", got, want)
	}
	if out := hostctl("reboot-lock", "status", "--group", ""); !strings.Contains(out, "1 of 1 free") {
		t.Errorf("status after release: got %q, want a free slot", out)
	}
	// The operator, not the hosts, sizes the group.
	if got, want := hostctl("reboot-lock", "set-max", "3"), "group \"\" (coreos.com/updateengine/rebootlock/semaphore): at most 3 hosts reboot at once\n"; got != want {
		t.Errorf("set-max: got %q, want %q", got, want)
	}
	if err := dead.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	if out := hostctl("reboot-lock", "status"); !strings.Contains(out, "2 of 3 free") {
		t.Errorf("status after set-max 3 and a lock: got %q, want 2 of 3 free", out)
	}
}
