package ignition

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	butane "github.com/coreos/butane/config"
	"github.com/coreos/butane/config/common"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/golden"
)

// TestButane translates the Butane configs under testdata/butane with
// Butane itself (the Go module, as the `butane` CLI does), checks the
// output into testdata/configs/butane-<name>.json (golden: TestApply and
// the cloudinit provisioning tests read it from there), and applies the
// translation to a new root.
func TestButane(t *testing.T) {
	for _, tc := range []struct {
		name string
		// contains are strings Butane's output must have: what proves the
		// translation is Butane's (compression, embedded local files).
		contains []string
		files    map[string]string // path in the root: contents
		modes    map[string]os.FileMode
		commands []string // lines the runner must have seen
	}{
		{
			name:     "fcos-3.4",
			contains: []string{`"version": "3.4.0"`},
			files: map[string]string{
				"/etc/hostname":      "butane-node",
				"/etc/motd":          "Welcome to Bulkhead\n",
				"/etc/appended.conf": "line1\nline2\n",
				"/etc/systemd/system/sshd.service.d/10-port.conf": "[Service]\nEnvironment=PORT=2222\n",
			},
			modes: map[string]os.FileMode{"/var/lib/app": os.ModeDir | 0o755},
			commands: []string{
				"groupadd --gid 990 docker",
				"useradd --groups docker --system --no-create-home --user-group svc",
				"systemctl enable hello.service",
				"hostname butane-node",
				"systemctl --no-block stop debug-shell.service",
			},
		},
		{
			name:     "fcos-3.5",
			contains: []string{`"version": "3.5.0"`, `"compression": "gzip"`},
			files: map[string]string{
				"/etc/app/big.conf":          "# Butane compresses inline contents when that makes them shorter.\n" + strings.Repeat("setting = value\n", 16),
				"/etc/app/local.conf":        "from a local file\n",
				"/etc/app/tree/top.txt":      "top of the tree\n",
				"/etc/app/tree/sub/deep.txt": "deeper\n",
			},
			modes: map[string]os.FileMode{"/etc/app/big.conf": 0o600},
			commands: []string{
				"userdel --remove old",
				"systemctl disable zincati.service",
				"systemctl --no-block restart systemd-sysctl.service",
				"systemctl --no-block start was-masked.service",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bu, err := os.ReadFile(filepath.Join("testdata/butane", tc.name+".bu"))
			if err != nil {
				t.Fatal(err)
			}
			out, rpt, err := butane.TranslateBytes(bu, common.TranslateBytesOptions{
				TranslateOptions: common.TranslateOptions{FilesDir: "testdata/butane/files"},
				Pretty:           true,
			})
			if err != nil {
				t.Fatalf("butane: %v\n%s", err, rpt)
			}
			for _, want := range tc.contains {
				if !strings.Contains(string(out), want) {
					t.Errorf("butane output lacks %s:\n%s", want, out)
				}
			}
			golden.Assert(t, "configs/butane-"+tc.name+".json", out)

			cfg, warnings, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Errorf("got warnings %q, want none for Butane's output", warnings)
			}
			root := newRoot(t)
			rec := recorder(root)
			if _, err := (Applier{Root: fsroot.Root(root), Runner: rec}).Apply(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.files {
				if got, err := os.ReadFile(filepath.Join(root, path)); err != nil || string(got) != want {
					t.Errorf("%s: got %q, %v, want %q", path, got, err, want)
				}
			}
			for path, want := range tc.modes {
				if st, err := os.Stat(filepath.Join(root, path)); err != nil || st.Mode() != want {
					t.Errorf("%s: got mode %v, %v, want %v", path, st.Mode(), err, want)
				}
			}
			transcript := rec.Transcript()
			for _, want := range tc.commands {
				if !strings.Contains(transcript, want+"\n") {
					t.Errorf("got commands\n%s\nwant them to include %q", transcript, want)
				}
			}
		})
	}
}
