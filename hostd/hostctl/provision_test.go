package hostctl

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func TestProvisionCmd(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{
		"/proc/cmdline":   "console=ttyS0 ds=nocloud;s=/seed\n",
		"/seed/meta-data": "instance-id: iid-cli\n",
		"/seed/user-data": "#cloud-config\nhostname: cli\nusers: []\nruncmd: [echo hi]\n",
		"/etc/passwd":     "root:x:0:0::/root:/bin/sh\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	rec := &run.Recorder{}
	cmd := NewRootCmd(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &out, Stderr: &out, Root: "/nonexistent", Runner: rec})
	cmd.SetArgs([]string{"provision", "--root", root})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"source nocloud:/seed, instance iid-cli (new instance)", "hostname               ran"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got output %q, want it to contain %q", out.String(), want)
		}
	}
	// Offline: commands run chrooted into the tree; hostname is only a file.
	if got, want := rec.Transcript(), "chroot "+root+" /var/lib/bulkhead/provision/scripts/runcmd\n"; got != want {
		t.Errorf("got commands %q, want %q", got, want)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(data) != "cli\n" {
		t.Errorf("got /etc/hostname %q, want %q", data, "cli\n")
	}
	rep, err := cloudinit.LoadReport(fsroot.Root(root))
	if err != nil {
		t.Fatal(err)
	}
	if rep.InstanceID != "iid-cli" {
		t.Errorf("got instance %q, want %q", rep.InstanceID, "iid-cli")
	}
}
