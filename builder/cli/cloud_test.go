package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// cloudBuild is a build output directory with an 8 MiB sparse disk.raw
// holding one non-zero 512 KiB block.
func cloudBuild(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, manifest.DiskRaw)
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(8 << 20)
	f.WriteAt([]byte("bulkhead"), 3<<20)
	f.Close()
	if err := manifest.Write(dir, &manifest.Build{Name: "default", Version: "2.0.0", DiskSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAMIDryRun(t *testing.T) {
	dir := cloudBuild(t)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	out, err := runBuilder(t, "ami", "--dry-run", "--region", "eu-north-1", "--copy-to", "us-west-2", "--tag", "env=prod", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, s := range []string{"1 of 16 blocks", "eu-north-1", "us-west-2", "env=prod", "bulkhead-default-2.0.0"} {
		if !strings.Contains(out, s) {
			t.Errorf("plan lacks %q:\n%s", s, out)
		}
	}
}

func TestAMIBadInput(t *testing.T) {
	dir := cloudBuild(t)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	if _, err := runBuilder(t, "ami", "--dry-run", "--region", "eu-north-1", "--tag", "novalue", dir); err == nil || !strings.Contains(err.Error(), `--tag "novalue"`) {
		t.Errorf("bad tag: got %v", err)
	}
	os.Remove(filepath.Join(dir, manifest.DiskRaw))
	if _, err := runBuilder(t, "ami", "--dry-run", "--region", "eu-north-1", dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "disk.raw")) {
		t.Errorf("no disk.raw: got %v, want an error naming it", err)
	}
}

func TestConvertVHD(t *testing.T) {
	dir := cloudBuild(t)
	out, err := runBuilder(t, "convert", "--format", "vhd", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m, err := manifest.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Parts["vhd"]
	if p.File != "disk.vhd" || p.Size != 8<<20+512 || !strings.Contains(out, p.SHA256+"  "+filepath.Join(dir, "disk.vhd")) {
		t.Errorf("got part %+v, output %q", p, out)
	}
	if _, err := runBuilder(t, "convert", "--format", "qcow3", dir); err == nil || !strings.Contains(err.Error(), `"qcow3"`) {
		t.Errorf("unknown format: got %v", err)
	}
	if _, err := runBuilder(t, "convert", dir); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("no format: got %v", err)
	}
}
