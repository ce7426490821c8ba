package storagesetup_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/hostctl"
	storagesetup "github.com/bulkhead-os/bulkhead/storage-setup"
)

// `hostctl storage-setup` and `--reset` in-process, against the fake host:
// the cloud-config section is read, the volume mounted, the output printed.
func TestHostctlStorageSetupVerb(t *testing.T) {
	h := storagesetup.NewFakeHost(t)
	h.AddDisk("/dev/vdb", 10<<30)
	h.WriteFile(storagesetup.CloudConfigFile, "DEVS: [vdb]\nVG: docker-vg\n")
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := hostctl.NewRootCmd(hostctl.Deps{
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &out, Stderr: &errb,
			Root: h.RootDir(), Runner: h.Runner(),
		})
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("hostctl %v: %v\n%s\n%s", args, err, errb.String(), h.Transcript())
		}
		return out.String()
	}
	if got, want := run("storage-setup"), `DOCKER_STORAGE_OPTIONS="--storage-driver overlay2"`+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := h.Mounted("/var/lib/hostd"); got != "/dev/docker-vg/container-root-lv" {
		t.Errorf("got %q on /var/lib/hostd", got)
	}
	if got := run("storage-setup", "--reset"); !strings.Contains(got, "reset") {
		t.Errorf("got %q", got)
	}
	if h.Exists(storagesetup.OutputFile) || h.Mounted("/var/lib/hostd") != "" {
		t.Error("reset left the output file or the mount")
	}
	h.WriteFile("/tmp/bad.conf", "MIN_DATA_SIZE=lots\n")
	cmd := hostctl.NewRootCmd(hostctl.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard, Stderr: io.Discard, Root: h.RootDir(), Runner: h.Runner()})
	cmd.SetArgs([]string{"storage-setup", "--config", "/tmp/bad.conf"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "/tmp/bad.conf: MIN_DATA_SIZE:") {
		t.Errorf("got %v, want the bad option named", err)
	}
}
