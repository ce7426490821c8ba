package hostctl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// TestVerifyUsrCmd checks the booted slot of a fake host whose /usr
// partitions hold a real build: sound, it passes and reboots nothing;
// with one byte of a data block flipped on the partition, it fails naming
// the damage, records it for status and, with no blessed slot to go to,
// leaves the boot selection alone and does not reboot.
func TestVerifyUsrCmd(t *testing.T) {
	dir := t.TempDir()
	runBuilder(t, "keygen", "--dir", dir, "release")
	sk, err := payload.ReadPrivateKey(filepath.Join(dir, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "release.pub"))
	v1 := updatertest.MakeBuild(t, dir, "1.0.0", 16)
	host := updatertest.MakeHost(t, v1, updatertest.Key{Private: sk, PubFile: pub})
	root := string(host.Root)
	rec := &run.Recorder{}

	out, _, err := runHostctl(t, root, rec, "verify-usr", "--reboot")
	if err != nil || !strings.Contains(out, "/usr of slot a matches its root hash") || rec.Transcript() != "" {
		t.Fatalf("sound slot: %q, %v, commands %q", out, err, rec.Transcript())
	}

	f, err := os.OpenFile(host.Root.Join("/parts/usr-a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x5a ^ v1.Usr[5*4096+7]}, 5*4096+7); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before, _, _ := slots.Host{Root: host.Root}.BootState()
	out, _, err = runHostctl(t, root, rec, "verify-usr", "--reboot")
	if !errors.Is(err, slots.ErrUsrCorrupt) || !strings.Contains(err.Error(), "no blessed build") || rec.Transcript() != "" {
		t.Errorf("damaged slot, nowhere to go: %q, %v, commands %q", out, err, rec.Transcript())
	}
	if after, _, _ := (slots.Host{Root: host.Root}).BootState(); after != before {
		t.Errorf("boot selection changed to %+v with nowhere better to go", after)
	}
	out, _, _ = runHostctl(t, root, rec, "status")
	if !strings.Contains(out, "/usr failed its check") || !strings.Contains(out, "root hash mismatch") {
		t.Errorf("status does not report the damage:\n%s", out)
	}
}
