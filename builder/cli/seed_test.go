package cli

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
)

func TestSeedCmd(t *testing.T) {
	dir := t.TempDir()
	ud := filepath.Join(dir, "user-data")
	nc := filepath.Join(dir, "net")
	md := filepath.Join(dir, "meta")
	os.WriteFile(ud, []byte("#cloud-config\nhostname: h\n"), 0o644)
	os.WriteFile(nc, []byte("version: 2\n"), 0o644)
	os.WriteFile(md, []byte("instance-id: given\n"), 0o644)
	for _, tc := range []struct {
		name     string
		args     []string
		wantMeta string
		wantNet  string
	}{
		{"defaults", []string{"OUT", ud}, "instance-id: iid-local01\n", ""},
		{"hostname and id", []string{"-H", "node1", "-i", "iid-7", "OUT", ud}, "instance-id: iid-7\nlocal-hostname: node1\n", ""},
		{"meta-data file and network", []string{"-N", nc, "OUT", ud, md}, "instance-id: given\n", "version: 2\n"},
		{"vfat", []string{"-f", "vfat", "OUT", ud}, "instance-id: iid-local01\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "seed.img")
			for i, a := range tc.args {
				if a == "OUT" {
					tc.args[i] = out
				}
			}
			var stdout, stderr bytes.Buffer
			cmd := NewRootCmd(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &stdout, Stderr: &stderr})
			cmd.SetArgs(append([]string{"seed"}, tc.args...))
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			got, err := seed.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.MetaData) != tc.wantMeta {
				t.Errorf("meta-data: got %q, want %q", got.MetaData, tc.wantMeta)
			}
			if string(got.NetworkConfig) != tc.wantNet {
				t.Errorf("network-config: got %q, want %q", got.NetworkConfig, tc.wantNet)
			}
			if string(got.UserData) != "#cloud-config\nhostname: h\n" {
				t.Errorf("user-data: got %q", got.UserData)
			}
		})
	}
}

func TestSeedCmdUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cmd := NewRootCmd(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &stdout, Stderr: &stderr})
	cmd.SetArgs([]string{"seed", "-f", "ext4", filepath.Join(t.TempDir(), "x"), "/dev/null"})
	if err := cmd.Execute(); err == nil {
		t.Errorf("got no error for -f ext4, want one")
	}
}
