package updater

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
	"time"

	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/slotwriter"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

var quiet = slog.New(slog.DiscardHandler)

// env is a fake host booted from v1 in slot A and a repository served over
// HTTP by httptest.
type env struct {
	t       *testing.T
	host    updatertest.Host
	key     updatertest.Key
	v1      updatertest.Build
	repoDir string
	srv     *httptest.Server
	u       *Updater
	// noChunks publishes without chunk indexes: updates download the
	// full payload.
	noChunks bool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, key: updatertest.NewKey(t), repoDir: filepath.Join(t.TempDir(), "repo")}
	e.v1 = updatertest.MakeBuild(t, t.TempDir(), "1.0.0", 40)
	e.host = updatertest.MakeHost(t, e.v1, e.key)
	e.srv = httptest.NewServer(http.FileServer(http.Dir(e.repoDir)))
	t.Cleanup(e.srv.Close)
	e.u = &Updater{Root: e.host.Root, Log: quiet}
	return e
}

// publish adds version to the repository and points stable at it.
// chunker is what publish cuts chunks with: none when noChunks.
func (e *env) chunker() repo.Chunker {
	if e.noChunks {
		return nil
	}
	return testChunks
}

func (e *env) publish(version, minFrom string) updatertest.Build {
	e.t.Helper()
	b := updatertest.MakeBuild(e.t, e.t.TempDir(), version, 60)
	if _, err := repo.Publish(context.Background(), repo.PublishOptions{Repo: e.repoDir, Channel: "stable", OutDir: b.Dir, Key: e.key.Private, MinFrom: minFrom, Chunker: e.chunker(), Log: quiet}); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// dryRun runs a dry-run upgrade and checks that it wrote nothing.
func (e *env) dryRun() *Plan {
	e.t.Helper()
	before := e.host.Snapshot(e.t)
	o := e.opts()
	o.DryRun = true
	p, err := e.u.Upgrade(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	updatertest.SameSnapshot(e.t, before, e.host.Snapshot(e.t))
	if _, err := os.Stat(e.host.Root.Join(DownloadDir)); !os.IsNotExist(err) {
		e.t.Error("dry run created the download directory")
	}
	return p
}

func (e *env) opts() Options { return Options{Source: e.srv.URL, Channel: "stable"} }

func (e *env) readPart(label string) []byte {
	b, err := os.ReadFile(e.host.Root.Join("/parts", label))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) bootState() bootcfg.State {
	st, _, err := slots.Host{Root: e.host.Root}.BootState()
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// boot pretends the machine rebooted into slot s.
func (e *env) boot(s bootcfg.Slot, b updatertest.Build) {
	updatertest.WriteFile(e.t, e.host.Root.Join("/proc/cmdline"), []byte(e.host.Entry(s, b).Cmdline()+"\n"))
}

func TestUpgradeEndToEnd(t *testing.T) {
	e := newEnv(t)
	v2 := e.publish("1.1.0", "1.0.0")
	usrA, efiA := e.readPart("usr-a"), e.host.Snapshot(t)["/efi/a/entry.cfg"]
	var progress []string
	e.u.Progress = func(what string, done, total int64) {
		if done == total {
			progress = append(progress, what)
		}
	}
	p, err := e.u.Upgrade(context.Background(), e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if p.From != "1.0.0" || p.To != "1.1.0" || p.Target != bootcfg.SlotB {
		t.Errorf("got plan %s -> %s into %s", p.From, p.To, p.Target)
	}
	if got, want := e.bootState(), (bootcfg.State{Default: "a", Try: "b", TriesLeft: bootcfg.DefaultTries}); got != want {
		t.Errorf("got boot state %+v, want %+v", got, want)
	}
	if !bytes.HasPrefix(e.readPart("usr-b"), v2.Usr) || !bytes.HasPrefix(e.readPart("usr-b-verity"), v2.Verity) {
		t.Error("slot b partitions do not hold v2")
	}
	if !bytes.Equal(e.readPart("usr-a"), usrA) || e.host.Snapshot(t)["/efi/a/entry.cfg"] != efiA {
		t.Error("the booted slot changed")
	}
	entry, _ := os.ReadFile(e.host.Root.Join("/efi/b/entry.cfg"))
	if want := e.host.Entry(bootcfg.SlotB, v2).GrubConfig(); string(entry) != want {
		t.Errorf("got entry.cfg\n%s\nwant\n%s", entry, want)
	}
	kernel, _ := os.ReadFile(e.host.Root.Join("/efi/b/vmlinuz"))
	if !bytes.Equal(kernel, v2.Kernel) {
		t.Error("kernel not installed in /efi/b")
	}
	if _, err := os.Stat(e.host.Root.Join(DownloadDir)); !os.IsNotExist(err) {
		t.Errorf("download directory left behind: %v", err)
	}
	for _, want := range []string{"download usr", "write usr", "verify usr", "write verity"} {
		if !strings.Contains(strings.Join(progress, ","), want) {
			t.Errorf("progress %v lacks %q", progress, want)
		}
	}
	// A second run finds the version staged and writes nothing.
	before := e.host.Snapshot(t)
	p, err = e.u.Upgrade(context.Background(), e.opts())
	if err != nil || !p.AlreadyStaged {
		t.Errorf("got %+v, %v, want already staged", p, err)
	}
	updatertest.SameSnapshot(t, before, e.host.Snapshot(t))

	// The reboot: GRUB boots b, the health gate blesses it.
	e.boot(bootcfg.SlotB, v2)
	h := slots.Host{Root: e.host.Root}
	if o, err := h.Bless(); err != nil || o != bootcfg.Blessed {
		t.Fatalf("got %s, %v, want blessed", o, err)
	}
	st, err := h.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.Slots[0].Version != "1.0.0" || st.Slots[0].State != bootcfg.StateGood || st.Slots[1].Version != "1.1.0" || st.Slots[1].State != bootcfg.StateBooted {
		t.Errorf("got status %+v", st.Slots)
	}
	p, err = e.u.Upgrade(context.Background(), e.opts())
	if err != nil || !p.UpToDate {
		t.Errorf("got %+v, %v, want up to date", p, err)
	}

	// Rollback by hand to v1 in slot a.
	r, err := e.u.Rollback(context.Background(), RollbackOptions{})
	if err != nil || !r.Changed || r.To != bootcfg.SlotA || r.Version != "1.0.0" {
		t.Fatalf("got %+v, %v", r, err)
	}
	if got := e.bootState(); got != (bootcfg.State{Default: "a"}) {
		t.Errorf("got %+v, want default a", got)
	}
}

// TestUpgradeRefusals proves every refusal leaves the ESP (GRUB environment,
// both slot directories) and all partitions byte-identical.
func TestUpgradeRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *env) Options
		want  error
	}{
		{"missing signature (pre-TUF repository)", func(e *env) Options {
			e.publish("1.1.0", "")
			os.RemoveAll(filepath.Join(e.repoDir, repo.TUFDir))
			os.Remove(filepath.Join(e.repoDir, "versions/1.1.0/manifest.json.sig"))
			return e.opts()
		}, payload.ErrMissingSignature},
		{"signed by an untrusted key (pre-TUF repository)", func(e *env) Options {
			e.key = updatertest.NewKey(t)
			e.publish("1.1.0", "")
			os.RemoveAll(filepath.Join(e.repoDir, repo.TUFDir))
			return e.opts()
		}, payload.ErrBadSignature},
		{"manifest changed after signing (pre-TUF repository)", func(e *env) Options {
			e.publish("1.1.0", "")
			os.RemoveAll(filepath.Join(e.repoDir, repo.TUFDir))
			p := filepath.Join(e.repoDir, "versions/1.1.0/manifest.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"panic=10"`), []byte(`"init=/bin/sh"`), 1), 0o644)
			return e.opts()
		}, payload.ErrBadSignature},
		{"TUF metadata signed by an untrusted key", func(e *env) Options {
			e.key = updatertest.NewKey(t)
			e.publish("1.1.0", "")
			return e.opts()
		}, repo.ErrUntrustedMetadata},
		{"manifest changed after TUF signing", func(e *env) Options {
			e.publish("1.1.0", "")
			p := filepath.Join(e.repoDir, "versions/1.1.0/manifest.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"panic=10"`), []byte(`"init=/bin/sh"`), 1), 0o644)
			return e.opts()
		}, repo.ErrMixAndMatch},
		{"digest mismatch", func(e *env) Options {
			e.noChunks = true
			e.publish("1.1.0", "")
			p := filepath.Join(e.repoDir, "versions/1.1.0/usr.erofs")
			b, _ := os.ReadFile(p)
			b[5000] ^= 1
			os.WriteFile(p, b, 0o644)
			return e.opts()
		}, repo.ErrDigestMismatch},
		{"truncated download", func(e *env) Options {
			e.noChunks = true
			e.publish("1.1.0", "")
			os.Truncate(filepath.Join(e.repoDir, "versions/1.1.0/initrd.img"), 3)
			return e.opts()
		}, repo.ErrTruncated},
		{"older version", func(e *env) Options {
			e.publish("0.9.0", "")
			return e.opts()
		}, ErrDowngrade},
		{"below the minimum version", func(e *env) Options {
			e.publish("2.0.0", "1.5.0")
			return e.opts()
		}, ErrBelowMinVersion},
		{"version recorded bad", func(e *env) Options {
			e.publish("1.1.0", "")
			slots.Host{Root: e.host.Root}.MarkBad("1.1.0")
			return e.opts()
		}, ErrVersionBad},
		{"target slot is the booted one", func(e *env) Options {
			e.publish("1.1.0", "")
			link := e.host.Root.Join("/dev/disk/by-partlabel/usr-b")
			os.Remove(link)
			os.Symlink("../../../parts/usr-a", link)
			return e.opts()
		}, ErrTargetBooted},
		{"booted slot not blessed yet", func(e *env) Options {
			e.publish("1.1.0", "")
			h := slots.Host{Root: e.host.Root}
			_, env, _ := h.BootState()
			h.WriteBootState(bootcfg.State{Default: bootcfg.SlotB}, env)
			return e.opts()
		}, ErrNotBlessed},
		{"another upgrade is downloading", func(e *env) Options {
			e.publish("1.1.0", "")
			l, err := tryLockFile(e.host.Root, DownloadLockFile)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Unlock() })
			return e.opts()
		}, ErrLocked},
		{"a rollback or bless holds the lock past the bound", func(e *env) Options {
			e.publish("1.1.0", "")
			e.u.LockWait = 50 * time.Millisecond
			l, err := TryLock(e.host.Root)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Unlock() })
			return e.opts()
		}, ErrLocked},
		{"requested version not in the repository", func(e *env) Options {
			e.publish("1.1.0", "")
			o := e.opts()
			o.To = "1.2.0"
			return o
		}, repo.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			o := c.setup(e)
			before := e.host.Snapshot(t)
			_, err := e.u.Upgrade(context.Background(), o)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			updatertest.SameSnapshot(t, before, e.host.Snapshot(t))
		})
	}
}

func TestDowngradeAllowed(t *testing.T) {
	e := newEnv(t)
	e.publish("0.9.0", "")
	o := e.opts()
	o.AllowDowngrade = true
	p, err := e.u.Upgrade(context.Background(), o)
	if err != nil || !p.Downgrade {
		t.Fatalf("got %+v, %v, want a downgrade", p, err)
	}
	if e.bootState().Try != bootcfg.SlotB {
		t.Error("downgrade not put on trial")
	}
}

// faultOpener makes the usr partition fail after budget bytes.
func faultOpener(budget int64) slotwriter.Opener {
	return func(p string) (slotwriter.Device, error) {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil || !strings.HasSuffix(p, "/usr-b") {
			return f, err
		}
		return &failingDevice{File: f, budget: budget}, nil
	}
}

type failingDevice struct {
	*os.File
	budget int64
}

var errDisk = errors.New("injected disk error")

func (d *failingDevice) WriteAt(b []byte, off int64) (int, error) {
	if int64(len(b)) > d.budget {
		n, _ := d.File.WriteAt(b[:d.budget], off)
		d.budget = 0
		return n, errDisk
	}
	d.budget -= int64(len(b))
	return d.File.WriteAt(b, off)
}

// TestUpgradeWriteFaultLeavesBootable: an error in the middle of the slot
// write leaves the GRUB environment and the booted slot untouched, and slot
// b reading as empty (so rollback refuses it); a retry completes.
func TestUpgradeWriteFaultLeavesBootable(t *testing.T) {
	e := newEnv(t)
	// An older version in b, kept for rollback, that the update overwrites.
	old := updatertest.MakeBuild(t, t.TempDir(), "0.9.0", 8)
	for _, f := range []string{"vmlinuz", "initrd.img", "entry.cfg"} {
		updatertest.WriteFile(t, e.host.Root.Join("/efi/b", f), []byte("old "+f))
	}
	updatertest.WriteFile(t, e.host.Root.Join("/efi/b/release"), []byte(e.host.Entry(bootcfg.SlotB, old).Release("default")))
	e.publish("1.1.0", "")
	before := e.host.Snapshot(t)
	e.u.Open = faultOpener(5000)
	if _, err := e.u.Upgrade(context.Background(), e.opts()); !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want the injected error", err)
	}
	after := e.host.Snapshot(t)
	for p, sum := range before {
		if (strings.HasPrefix(p, "/efi/a/") || strings.HasPrefix(p, "/efi/grub/") || strings.HasPrefix(p, "/parts/usr-a")) && after[p] != sum {
			t.Errorf("%s changed", p)
		}
	}
	if rel, _ := (slots.Host{Root: e.host.Root}).Release(bootcfg.SlotB); rel != nil {
		t.Errorf("slot b still claims version %s over a half-written partition", rel["VERSION"])
	}
	if _, err := e.u.Rollback(context.Background(), RollbackOptions{}); !errors.Is(err, bootcfg.ErrSlotEmpty) {
		t.Errorf("rollback to a half-written slot: got %v, want ErrSlotEmpty", err)
	}
	e.u.Open = nil
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if e.bootState().Try != bootcfg.SlotB {
		t.Error("retry did not put slot b on trial")
	}
}

// TestUpgradeReplacesPendingTrial: a newer version published while an older
// one waits on trial in b cancels that trial first, then stages the new one.
func TestUpgradeReplacesPendingTrial(t *testing.T) {
	e := newEnv(t)
	e.publish("1.1.0", "")
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	v3 := e.publish("1.2.0", "")
	p, err := e.u.Upgrade(context.Background(), e.opts())
	if err != nil || p.To != "1.2.0" {
		t.Fatalf("got %+v, %v", p, err)
	}
	if !bytes.HasPrefix(e.readPart("usr-b"), v3.Usr) {
		t.Error("slot b does not hold 1.2.0")
	}
	if got := e.bootState(); got != (bootcfg.State{Default: "a", Try: "b", TriesLeft: bootcfg.DefaultTries}) {
		t.Errorf("got %+v", got)
	}
}

// TestUpgradeTriesFromConfig: update.yaml's tries is what the new slot gets.
func TestUpgradeTriesFromConfig(t *testing.T) {
	e := newEnv(t)
	e.publish("1.1.0", "")
	updatertest.WriteFile(t, e.host.Root.Join(reboot.ConfigPath), []byte("tries: 1\n"))
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	if got := e.bootState(); got != (bootcfg.State{Default: "a", Try: "b", TriesLeft: 1}) {
		t.Errorf("got %+v, want slot b on trial with the configured 1 try", got)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.publish("1.1.0", "")
	p := e.dryRun()
	var out bytes.Buffer
	p.Describe(&out)
	for _, want := range []string{
		"Update: 1.0.0 -> 1.1.0 (channel stable",
		"write slot b; booted slot a is not touched",
		"usr-b          240.0 KiB image in a 1.0 MiB partition",
		"  - usrhash=" + e.v1.RootHash,
		"  + bulkhead.slot=b",
		"  - systemd.verity_usr_data=PARTUUID=" + updatertest.PartUUIDs["usr-a"],
		"  + systemd.verity_usr_data=PARTUUID=" + updatertest.PartUUIDs["usr-b"],
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "- BOOT_IMAGE") {
		t.Error("BOOT_IMAGE listed as a removed argument")
	}
	// The golden copy, with what varies between runs (temporary root, free
	// space, the URL's port, random-content hashes) masked.
	masked := strings.ReplaceAll(out.String(), string(e.host.Root), "<root>")
	masked = strings.ReplaceAll(masked, e.srv.URL, "<repo>")
	masked = regexp.MustCompile(`[0-9.]+ [KMGT]?i?B free`).ReplaceAllString(masked, "<n> free")
	masked = regexp.MustCompile(`usrhash=[0-9a-f]{64}`).ReplaceAllString(masked, "usrhash=<hash>")
	masked = regexp.MustCompile(`Signed by: [0-9a-f]{16}`).ReplaceAllString(masked, "Signed by: <key>")
	golden.Assert(t, "dry-run.txt", []byte(masked))
}

func TestRollbackRefusals(t *testing.T) {
	e := newEnv(t)
	before := e.host.Snapshot(t)
	if _, err := e.u.Rollback(context.Background(), RollbackOptions{}); !errors.Is(err, bootcfg.ErrSlotEmpty) {
		t.Errorf("empty slot b: got %v, want ErrSlotEmpty", err)
	}
	old := updatertest.MakeBuild(t, t.TempDir(), "0.9.0", 8)
	updatertest.WriteFile(t, e.host.Root.Join("/efi/b/release"), []byte(e.host.Entry(bootcfg.SlotB, old).Release("default")))
	if _, err := e.u.Rollback(context.Background(), RollbackOptions{}); !errors.Is(err, ErrSlotIncomplete) {
		t.Errorf("slot without kernel: got %v, want ErrSlotIncomplete", err)
	}
	for _, f := range []string{"vmlinuz", "initrd.img", "entry.cfg"} {
		updatertest.WriteFile(t, e.host.Root.Join("/efi/b", f), []byte(f))
	}
	slots.Host{Root: e.host.Root}.MarkBad("0.9.0")
	if _, err := e.u.Rollback(context.Background(), RollbackOptions{}); !errors.Is(err, ErrVersionBad) {
		t.Errorf("bad version: got %v, want ErrVersionBad", err)
	}
	delete(before, "/efi/b/release")
	after := e.host.Snapshot(t)
	if after["/efi/grub/grubenv"] != before["/efi/grub/grubenv"] {
		t.Error("a refused rollback changed the GRUB environment")
	}
}

// TestRollbackClearsTrial: rolling back while the booted slot is on trial
// makes the other slot the default and cancels the trial.
func TestRollbackClearsTrial(t *testing.T) {
	e := newEnv(t)
	v2 := e.publish("1.1.0", "")
	if _, err := e.u.Upgrade(context.Background(), e.opts()); err != nil {
		t.Fatal(err)
	}
	e.boot(bootcfg.SlotB, v2) // booted b, not blessed yet
	r, err := e.u.Rollback(context.Background(), RollbackOptions{})
	if err != nil || r.To != bootcfg.SlotA {
		t.Fatalf("got %+v, %v", r, err)
	}
	if got := e.bootState(); got != (bootcfg.State{Default: "a"}) {
		t.Errorf("got %+v, want default a and no trial", got)
	}
}
