package guestcheck

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/hostd/hostctl"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/repo"
	"github.com/bulkhead-os/bulkhead/updater/slots"
	"github.com/bulkhead-os/bulkhead/updater/updatertest"
)

// simGuest plays the guest on files: commands run hostctl in-process against
// a fake root, and WaitBoot plays GRUB (grub.cfg's countdown, builder's
// grubcfg.go) and the health gate: a version listed in unhealthy boots but
// never passes boot-complete.target, so it is not blessed and reboots.
type simGuest struct {
	t         *testing.T
	host      updatertest.Host
	unhealthy map[string]bool
	rebooting bool
	blessed   bool
	boots     []string // "slot:version" of every boot attempt
}

func (g *simGuest) Run(ctx context.Context, cmd string) (string, error) {
	switch {
	case cmd == "systemctl is-active bulkhead-bless.service":
		if g.blessed {
			return "active\n", nil
		}
		return "failed\n", fmt.Errorf("exit status 3")
	case cmd == bootFiles:
		snap := g.host.Snapshot(g.t)
		var lines []string
		for p, s := range snap {
			lines = append(lines, s+" "+p)
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n"), nil
	case strings.HasPrefix(cmd, "hostctl "):
		return g.hostctl(ctx, splitShell(strings.TrimPrefix(cmd, "hostctl "))...)
	}
	return "", fmt.Errorf("simGuest: unknown command %q", cmd)
}

func (g *simGuest) hostctl(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	rec := &run.Recorder{Respond: func(c run.Cmd) ([]byte, error) {
		if c.String() == "systemctl reboot" {
			g.rebooting = true
		}
		return nil, nil
	}}
	cmd := hostctl.NewRootCmd(hostctl.Deps{Log: slog.New(slog.DiscardHandler), Stdout: &out, Stderr: &out,
		Root: g.host.Root, Runner: rec, Socket: g.host.Root.Join("/run/hostd.sock")})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(&out, "hostctl:", err)
	}
	return out.String(), err
}

// WaitBoot boots until a healthy slot comes up (at most 10 attempts).
func (g *simGuest) WaitBoot(ctx context.Context) error {
	h := slots.Host{Root: g.host.Root}
	for range 10 {
		st, env, err := h.BootState()
		if err != nil {
			return err
		}
		slot := st.Default
		if st.Try != "" && st.TriesLeft > 0 {
			st.TriesLeft--
			slot = st.Try
			if err := h.WriteBootState(st, env); err != nil {
				return err
			}
		}
		entry, err := os.ReadFile(h.ESP(string(slot), bootcfg.EntryFile))
		if err != nil {
			return fmt.Errorf("GRUB: slot %s has no entry: %w", slot, err)
		}
		// entry.cfg's top-level variables (the recorded PARTUUIDs: a
		// fake root has no disk for GRUB's probe), then its linux line.
		var cmdline string
		vars := map[string]string{}
		for _, l := range strings.Split(string(entry), "\n") {
			if k, v, ok := strings.Cut(strings.TrimPrefix(l, "set "), "="); ok && strings.HasPrefix(l, "set ") {
				vars[k] = v
			}
			if f := strings.Fields(l); len(f) > 2 && f[0] == "linux" {
				cmdline = os.Expand(strings.Join(f[2:], " "), func(k string) string { return vars[k] })
			}
		}
		updatertest.WriteFile(g.t, g.host.Root.Join("/proc/cmdline"), []byte(cmdline+"\n"))
		rel, _ := h.Release(slot)
		g.boots = append(g.boots, string(slot)+":"+rel["VERSION"])
		g.rebooting, g.blessed = false, false
		if g.unhealthy[rel["VERSION"]] {
			continue // the health gate fails; the watchdog reboots
		}
		if _, err := g.hostctl(ctx, "bless"); err != nil {
			return err
		}
		g.blessed = true
		return nil
	}
	return fmt.Errorf("no healthy boot in 10 attempts: %v", g.boots)
}

// splitShell undoes shellQuote.
func splitShell(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		out = append(out, strings.ReplaceAll(strings.Trim(f, "'"), `'\''`, "'"))
	}
	return out
}

// TestScenariosOnFiles runs the QEMU scenarios against the simulated guest:
// upgrade, rollback, a failed trial that falls back by itself, a tampered
// payload, and recovery after an interrupted upgrade.
func TestScenariosOnFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := updatertest.NewKey(t)
	v1 := updatertest.MakeBuild(t, dir, "1.0.0", 16)
	g := &simGuest{t: t, host: updatertest.MakeHost(t, v1, key), unhealthy: map[string]bool{"3.0.0": true}}
	quiet := slog.New(slog.DiscardHandler)
	publish := func(repoDir, version string) {
		b := updatertest.MakeBuild(t, dir, version, 20)
		if _, err := repo.Publish(ctx, repo.PublishOptions{Repo: repoDir, Channel: "stable", OutDir: b.Dir, Key: key.Private, Log: quiet}); err != nil {
			t.Fatal(err)
		}
	}
	serve := func(repoDir string) string {
		srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	good, bad, tampered := filepath.Join(dir, "good"), filepath.Join(dir, "bad"), filepath.Join(dir, "tampered")
	publish(good, "2.0.0")
	publish(bad, "3.0.0")
	publish(tampered, "2.5.0")
	p := filepath.Join(tampered, "versions/2.5.0/usr.erofs")
	b, _ := os.ReadFile(p)
	b[100] ^= 1
	os.WriteFile(p, b, 0o644)
	// Every chunk of the store damaged too: the delta update falls back
	// to the full payload, which is refused.
	filepath.Walk(filepath.Join(tampered, repo.ChunksDir), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			os.WriteFile(p, []byte("not zstd"), 0o644)
		}
		return err
	})

	if err := Upgrade(ctx, g, serve(good), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := Rollback(ctx, g, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := Refused(ctx, g, serve(tampered), "sha256"); err != nil {
		t.Fatal(err)
	}
	if err := FailedTrial(ctx, g, serve(bad), "3.0.0"); err != nil {
		t.Fatal(err)
	}
	want := "b:2.0.0 a:1.0.0 b:3.0.0 b:3.0.0 b:3.0.0 a:1.0.0"
	if got := strings.Join(g.boots, " "); got != want {
		t.Errorf("got boots %q, want %q", got, want)
	}
}

// TestInterruptedUpgradesBoot stops an upgrade at every phase marker (the
// process ends there, as when QEMU is killed), then boots through the
// simulated GRUB: the host always comes up on a good version, and the next
// upgrade completes.
func TestInterruptedUpgradesBoot(t *testing.T) {
	for _, marker := range Markers {
		t.Run(marker.String(), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			key := updatertest.NewKey(t)
			v1 := updatertest.MakeBuild(t, dir, "1.0.0", 16)
			g := &simGuest{t: t, host: updatertest.MakeHost(t, v1, key)}
			b := updatertest.MakeBuild(t, dir, "2.0.0", 200)
			repoDir := filepath.Join(dir, "repo")
			if _, err := repo.Publish(ctx, repo.PublishOptions{Repo: repoDir, Channel: "stable", OutDir: b.Dir, Key: key.Private, Log: slog.New(slog.DiscardHandler)}); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.FileServer(http.Dir(repoDir)))
			defer srv.Close()
			cut, cancel := context.WithCancel(ctx)
			defer cancel()
			u := &updater.Updater{Root: g.host.Root, Log: slog.New(slog.DiscardHandler), Progress: func(what string, done, total int64) {
				if marker.Reached(what, done, total) && (done > 0 || marker.Phase == "install boot files") {
					cancel()
				}
			}}
			_, err := u.Upgrade(cut, updater.Options{Source: srv.URL})
			if marker.Phase != "set trial" && err == nil {
				t.Fatalf("upgrade went through despite the cut at %q", marker)
			}
			if err := g.WaitBoot(ctx); err != nil {
				t.Fatal(err)
			}
			if err := AfterPowerCut(ctx, g, srv.URL, "2.0.0", "1.0.0", "2.0.0"); err != nil {
				t.Fatal(err)
			}
			if marker.Phase == "set trial" && g.boots[0] != "b:2.0.0" {
				t.Errorf("a cut after the commit booted %s, want b:2.0.0", g.boots[0])
			}
			if marker.Phase != "set trial" && g.boots[0] != "a:1.0.0" {
				t.Errorf("a cut before the commit booted %s, want a:1.0.0", g.boots[0])
			}
		})
	}
}
