package hostctl

import (
	"bytes"
	"encoding/json"
	"errors"
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

// TestProvisionStatus runs the stages as the two boot units do and reads
// the status between them, as `cloud-init status` would be read.
func TestProvisionStatus(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"/proc/cmdline":                   "ds=nocloud;s=/seed\n",
		"/proc/sys/kernel/random/boot_id": "boot-1\n",
		"/seed/meta-data":                 "",
		"/seed/user-data":                 "#cloud-config\nusers: []\nruncmd: [echo hi]\n",
		"/etc/passwd":                     "root:x:0:0::/root:/bin/sh\n",
	}
	write := func(p, c string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range files {
		write(p, c)
	}
	hostctl := func(args ...string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		cmd := NewRootCmd(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &out, Stderr: &out, Root: fsroot.Root(root), Runner: &run.Recorder{}})
		cmd.SetArgs(args)
		err := cmd.Execute()
		code := 0
		var ee *ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.Code
		case err != nil:
			t.Fatalf("hostctl %v: %v", args, err)
		}
		return out.String(), code
	}
	if out, code := hostctl("provision", "status"); out != "status: not started\n" || code != 0 {
		t.Errorf("before: %q %d", out, code)
	}
	hostctl("provision", "--stage", "init")
	if out, _ := hostctl("provision", "status"); out != "status: running\n" {
		t.Errorf("after init: %q, want running", out)
	}
	hostctl("provision", "--stage", "final")
	if out, code := hostctl("provision", "status", "--wait"); out != "status: done\n" || code != 0 {
		t.Errorf("after final: %q %d, want done 0", out, code)
	}
	out, _ := hostctl("provision", "status", "--json")
	var st struct {
		Status     string `json:"status"`
		InstanceID string `json:"instance_id"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Status != "done" || st.InstanceID != "nocloud" {
		t.Errorf("json %q: %+v %v, want done and instance nocloud (empty meta-data)", out, st, err)
	}
	if out, _ := hostctl("provision", "query"); !strings.Contains(out, `"instance_id": "nocloud"`) {
		t.Errorf("query: %q", out)
	}
	// A new boot: the report is of the last one.
	write("/proc/sys/kernel/random/boot_id", "boot-2\n")
	if out, _ := hostctl("provision", "status"); out != "status: not started\n" {
		t.Errorf("next boot: %q, want not started", out)
	}
	write("/seed/user-data", "#cloud-config\nusers: []\nhostnme: typo\n")
	write("/seed/meta-data", "instance-id: two\n")
	hostctl("provision")
	if out, code := hostctl("provision", "status"); out != "status: degraded done\n" || code != 2 {
		t.Errorf("with a typo: %q %d, want degraded done 2", out, code)
	}
}
