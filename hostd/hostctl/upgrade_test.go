package hostctl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	buildercli "github.com/bulkhead-os/bulkhead/builder/cli"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/guestcheck"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

func runBuilder(t *testing.T, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := buildercli.NewRootCmd(buildercli.Deps{Log: slog.New(slog.DiscardHandler), Stdout: &out, Stderr: &out})
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("builder %v: %v: %s", args, err, out.String())
	}
}

// keyedHost makes a release key with builder keygen in a temp dir and a
// fake host that trusts it, booted from slot a holding build 1.0.0. It
// returns the dir (release.key is there), the host and the build.
func keyedHost(t *testing.T) (string, updatertest.Host, updatertest.Build) {
	t.Helper()
	dir := t.TempDir()
	runBuilder(t, "keygen", "--dir", dir, "release")
	sk, err := payload.ReadPrivateKey(filepath.Join(dir, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "release.pub"))
	v1 := updatertest.MakeBuild(t, dir, "1.0.0", 16)
	return dir, updatertest.MakeHost(t, v1, updatertest.Key{Private: sk, PubFile: pub}), v1
}

func runHostctl(t *testing.T, root string, rec *run.Recorder, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCmd(Deps{Log: slog.New(slog.DiscardHandler), Stdout: &out, Stderr: &errOut, Root: fsroot.Root(root), Runner: rec, Socket: filepath.Join(root, "no.sock")})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestUpgradeRollbackCLI drives the whole flow as a person would: builder
// keygen and publish make a repository from a synthetic build, an httptest
// server serves it, and hostctl upgrade, bless and rollback run in-process
// against a fake root whose partitions are plain files.
func TestUpgradeRollbackCLI(t *testing.T) {
	dir, host, _ := keyedHost(t)
	root := string(host.Root)
	v2 := updatertest.MakeBuild(t, dir, "1.1.0", 24)
	old := updatertest.MakeBuild(t, dir, "0.9.0", 8)
	repoDir := filepath.Join(dir, "repo")
	runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), "--min-from", "1.0.0", v2.Dir)
	runBuilder(t, "publish", "--repo", repoDir, "--key", filepath.Join(dir, "release.key"), "--channel", "old", old.Dir)
	srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
	defer srv.Close()
	rec := &run.Recorder{}

	before := host.Snapshot(t)
	out, _, err := runHostctl(t, root, rec, "upgrade", "--from", srv.URL, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Update: 1.0.0 -> 1.1.0 (channel stable", "+ usrhash=" + v2.RootHash, "Dry run: nothing written."} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	updatertest.SameSnapshot(t, before, host.Snapshot(t))
	out, _, err = runHostctl(t, root, rec, "upgrade", "--from", srv.URL, "--dry-run", "--no-delta")
	if err != nil || !strings.Contains(out, "full payload, no delta: the full payload was asked for (--no-delta)") {
		t.Errorf("dry run with --no-delta: %v\n%s\nwant the full payload, and why", err, out)
	}

	_, _, err = runHostctl(t, root, rec, "upgrade", "--from", srv.URL, "--channel", "old")
	if !errors.Is(err, updater.ErrDowngrade) {
		t.Errorf("got %v, want ErrDowngrade", err)
	}
	updatertest.SameSnapshot(t, before, host.Snapshot(t))

	out, progress, err := runHostctl(t, root, rec, "upgrade", "--from", srv.URL, "--reboot")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Version 1.1.0 written to slot b and on trial for 3 boots") {
		t.Errorf("got output %q", out)
	}
	progress = strings.Join(strings.Fields(progress), " ")
	for _, want := range []string{"download usr 100%", "write usr 100%", "verify usr 100%"} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}
	if got := rec.Transcript(); got != "systemctl reboot\n" {
		t.Errorf("got commands %q, want systemctl reboot", got)
	}
	last, err := updater.ReadLastCheck(host.Root)
	if err != nil || last == nil || last.Available != "1.1.0" || !last.Staged {
		t.Errorf("got last check %+v, %v", last, err)
	}

	// GRUB boots b on trial: a boot gone wrong (emergency mode) reboots.
	updatertest.WriteFile(t, host.Root.Join("/proc/cmdline"), []byte(host.Entry(bootcfg.SlotB, v2).Cmdline()+"\n"))
	if _, _, err := runHostctl(t, root, rec, "trial-reboot"); err != nil {
		t.Fatal(err)
	}
	if got := rec.Transcript(); got != "systemctl reboot\nsystemctl reboot --no-block\n" {
		t.Errorf("trial-reboot on trial: got commands %q, want a reboot", got)
	}
	// The health gate blesses it; now trial-reboot leaves it up.
	if _, _, err := runHostctl(t, root, rec, "bless"); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runHostctl(t, root, rec, "trial-reboot"); err != nil || !strings.Contains(out, "not on trial") {
		t.Errorf("trial-reboot after bless: %q, %v", out, err)
	}
	out, _, err = runHostctl(t, root, rec, "rollback", "--reboot")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Slot a (version 1.0.0) is now the default") {
		t.Errorf("got %q", out)
	}
	st, _, _ := slots.Host{Root: host.Root}.BootState()
	if st != (bootcfg.State{Default: bootcfg.SlotA}) {
		t.Errorf("got %+v, want default a", st)
	}
	if got := rec.Transcript(); got != "systemctl reboot\nsystemctl reboot --no-block\nsystemctl reboot\n" {
		t.Errorf("got commands %q", got)
	}
}

func TestEtcMergeCmd(t *testing.T) {
	root := t.TempDir()
	updatertest.WriteFile(t, filepath.Join(root, "usr/share/factory/etc/motd"), []byte("hello\n"))
	out, _, err := runHostctl(t, root, &run.Recorder{}, "etc-merge")
	if err != nil {
		t.Fatal(err)
	}
	if want := "added     /etc/motd\n/etc merged: 1 changes, 0 conflicts\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

// TestProgressMatchesPowerCutMarkers: every point the power-cut tests wait
// for on the console (guestcheck.Markers) is a line the progress printer
// writes, at the point it names and not before.
func TestProgressMatchesPowerCutMarkers(t *testing.T) {
	for _, m := range guestcheck.Markers {
		var out bytes.Buffer
		p := progressPrinter(&out)
		re := regexp.MustCompile(m.Pattern())
		const total = 1000
		for done := int64(0); done <= total; done += 7 {
			p(m.Phase, done, total)
			if !m.Reached(m.Phase, done, total) && re.MatchString(out.String()) {
				t.Errorf("%s: matched at %d of %d:\n%s", m, done, total, out.String())
				break
			}
		}
		if !re.MatchString(out.String()) {
			t.Errorf("%s: pattern %q matches no progress line:\n%s", m, m.Pattern(), out.String())
		}
	}
}
