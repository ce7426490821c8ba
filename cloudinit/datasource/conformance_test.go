package datasource

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// TestVirtInstallSeeds reads the seed ISOs exactly as virt-install 4.1
// writes them (xorrisofs -J -rational-rock -V cidata, empty meta-data) from
// a CD-ROM: cloud-init gives them the instance-id "nocloud".
func TestVirtInstallSeeds(t *testing.T) {
	for _, name := range []string{"virt-install-bare", "virt-install-root-ssh-key"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "conformance", name)
			iso, err := os.ReadFile(filepath.Join(dir, "seed.iso"))
			if err != nil {
				t.Fatal(err)
			}
			wantUD, err := os.ReadFile(filepath.Join(dir, "user-data"))
			if err != nil {
				t.Fatal(err)
			}
			root := fsroot.Root(t.TempDir())
			writeFile(t, root.Join("/sys/class/block/sr0/size"), "736\n")
			writeFile(t, root.Join("/dev/sr0"), string(iso))
			d, err := NoCloud(context.Background(), Options{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			if d.MetaData.InstanceID != "nocloud" {
				t.Errorf("instance-id: got %q, want %q", d.MetaData.InstanceID, "nocloud")
			}
			if d.Source != "nocloud:/dev/sr0" {
				t.Errorf("source: got %q, want %q", d.Source, "nocloud:/dev/sr0")
			}
			if !bytes.Equal(d.UserData, wantUD) {
				t.Errorf("user-data: got %q, want %q", d.UserData, wantUD)
			}
		})
	}
}

// FuzzNoCloudMetaData feeds meta-data through the NoCloud datasource (no
// recover on this path, so a panic fails the target): it gives an error or
// Data with an instance-id, "nocloud" when the meta-data names none.
func FuzzNoCloudMetaData(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("instance-id: i-1\nlocal-hostname: h\npublic-keys: [a]\n"))
	f.Add([]byte("local-hostname: h\n"))
	f.Add([]byte(`{"instance-id": "x", "public-keys": {"0": {"openssh-key": "k"}}}`))
	f.Fuzz(func(t *testing.T, md []byte) {
		root := fsroot.Root(t.TempDir())
		if err := os.MkdirAll(root.Join("/seed"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.Join("/seed/meta-data"), md, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := NoCloud(context.Background(), Options{Root: root, Cmdline: "ds=nocloud;s=/seed"})
		if err != nil {
			return
		}
		if d.MetaData.InstanceID == "" {
			t.Errorf("meta-data %q: got an empty instance-id, want one (nocloud by default)", md)
		}
	})
}
