package hostctl

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootchain"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// TestBootloaderCmds: a host built before boot chain updates shows its
// chain as unknown; `hostctl bootloader update` installs the booted
// version's chain from the repository, after which status (both verbs,
// text and JSON) shows its version with the previous chain kept; a bless
// in a later boot drops it; a damaged file shows and fails the status,
// and update repairs it.
func TestBootloaderCmds(t *testing.T) {
	dir, host, v1 := keyedHost(t)
	root := string(host.Root)
	rec := &run.Recorder{}
	old, chain := updatertest.BootChain("old", 40), updatertest.BootChain("new", 50)
	host.InstallESPChain(t, old)
	updatertest.AddBootChain(t, v1, chain)
	repoDir := filepath.Join(dir, "repo")
	runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), v1.Dir)
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	defer srv.Close()
	updatertest.WriteFile(t, host.Root.Join(updater.BootIDFile), []byte("boot-1\n"))

	out, _, err := runHostctl(t, root, rec, "bootloader", "status")
	if err != nil || !strings.Contains(out, "Boot chain: "+bootchain.Unknown) || !strings.Contains(out, "not recorded") {
		t.Fatalf("status before any install: %q, %v", out, err)
	}
	out, _, err = runHostctl(t, root, rec, "bootloader", "update", "--from", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := (&repo.Client{Base: repoDir}).Manifest(t.Context(), "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Parts map[string]struct{ SHA256 string } `json:"parts"`
	}
	json.Unmarshal(sm.Body, &m)
	sums := map[string]string{}
	for _, f := range bootabi.ChainFiles {
		sums[f.Name] = m.Parts[bootabi.ChainPart(f.Name)].SHA256
	}
	version := bootabi.ChainVersion(sums)
	if want := "Boot chain of 1.0.0 installed: " + bootchain.Unknown + " -> " + version; !strings.Contains(out, want) {
		t.Errorf("update said %q, want %q", out, want)
	}
	if got, _ := os.ReadFile(host.Root.Join("/efi/EFI/BOOT/BOOTX64.EFI")); !bytes.Equal(got, chain[bootabi.ChainShim]) {
		t.Errorf("shim on the ESP is %q", got)
	}
	out, _, err = runHostctl(t, root, rec, "bootloader", "status")
	if err != nil || !strings.Contains(out, "Boot chain: "+version+" (shim-signed 15.new") || !strings.Contains(out, "kept as .prev") ||
		!strings.Contains(out, "EFI/BOOT/grubx64.efi   ok") {
		t.Errorf("status after the install: %q, %v", out, err)
	}
	out, _, _ = runHostctl(t, root, rec, "status")
	if !strings.Contains(out, "Boot chain: "+version+" (shim-signed 15.new, grub-efi-amd64-signed 2.06.new, grub-pc-bin 2.06.new), previous kept") {
		t.Errorf("hostctl status lacks the boot chain line:\n%s", out)
	}
	out, _, _ = runHostctl(t, root, rec, "status", "--json")
	var rep StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.BootChain == nil || rep.BootChain.Version != version || !rep.BootChain.PreviousKept {
		t.Errorf("status --json boot chain %+v, %v", rep.BootChain, err)
	}

	// A bless in the boot that installed the chain keeps the old files;
	// one in a later boot drops them.
	out, _, err = runHostctl(t, root, rec, "bless")
	if err != nil || strings.Contains(out, "previous boot chain dropped") || !bootchain.PreviousKept(host.Root.Join("/efi")) {
		t.Errorf("bless in the installing boot: %q, %v", out, err)
	}
	updatertest.WriteFile(t, host.Root.Join(updater.BootIDFile), []byte("boot-2\n"))
	out, _, err = runHostctl(t, root, rec, "bless")
	if err != nil || !strings.Contains(out, "previous boot chain dropped") || bootchain.PreviousKept(host.Root.Join("/efi")) {
		t.Errorf("bless in a later boot: %q, %v", out, err)
	}

	// Damage: status says so and fails; update rewrites the one file.
	updatertest.WriteFile(t, host.Root.Join("/efi/EFI/BOOT/grubx64.efi"), []byte("bit rot"))
	out, _, err = runHostctl(t, root, rec, "bootloader", "status")
	if err == nil || !strings.Contains(out, "EFI/BOOT/grubx64.efi   DAMAGED") {
		t.Errorf("damaged grubx64.efi: %q, %v", out, err)
	}
	if out, _, err = runHostctl(t, root, rec, "bootloader", "update", "--from", srv.URL); err != nil || !strings.Contains(out, "already installed") {
		t.Errorf("repair: %q, %v", out, err)
	}
	if _, _, err := runHostctl(t, root, rec, "bootloader", "status"); err != nil {
		t.Errorf("after the repair: %v", err)
	}
}

// TestBootloaderUpdateRefusesTampered: a mirror serving a shim that is not
// the signed one changes nothing on the ESP.
func TestBootloaderUpdateRefusesTampered(t *testing.T) {
	dir, host, v1 := keyedHost(t)
	host.InstallESPChain(t, updatertest.BootChain("old", 40))
	updatertest.AddBootChain(t, v1, updatertest.BootChain("new", 50))
	repoDir := filepath.Join(dir, "repo")
	runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), v1.Dir)
	if err := os.WriteFile(filepath.Join(repoDir, "versions/1.0.0", bootabi.ChainPart(bootabi.ChainShim)), []byte("shim bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := host.Snapshot(t)
	_, _, err := runHostctl(t, string(host.Root), &run.Recorder{}, "bootloader", "update", "--from", repoDir)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("got %v, want a digest refusal", err)
	}
	updatertest.SameSnapshot(t, before, host.Snapshot(t))
}
