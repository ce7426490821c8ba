package networkd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Applier writes rendered files into a root and applies them.
type Applier struct {
	Root   fsroot.Root
	Runner run.Runner
	Log    *slog.Logger
	// Offline: Root is an image tree, not the running system; files are
	// written and nothing is run.
	Offline bool
}

// Result says what Apply did.
type Result struct {
	Written, Removed []string // file names in Dir
	// Links are the interfaces present now that the new files match.
	Links []string
	// Networkd says how networkd took the change: Reloaded, Restarted,
	// NotRunning (it reads the files when it starts), or "" when nothing
	// was run (unchanged files, offline tree).
	Networkd string
	// LinkFiles are the .link files written (renames, wake-on-LAN): udev
	// applies them only when it sees the device appear (next boot, or
	// `udevadm trigger`), and cannot rename an interface that is up.
	LinkFiles []string
}

// What Apply found networkd doing (Result.Networkd).
const (
	Reloaded   = "reloaded"
	Restarted  = "restarted"
	NotRunning = "not running"
)

// Changed reports whether Apply touched anything.
func (r Result) Changed() bool { return len(r.Written)+len(r.Removed) > 0 }

// Apply replaces the files a previous instance rendered with files: it
// writes each one atomically, removes our files that are not in the new
// set (never files without Marker), then reloads networkd. With no files
// and none of ours on disk it does nothing.
//
// systemd-networkd may not be running yet (bulkhead-provision runs early
// and is not ordered against it): then the files are simply read when it
// starts. networkctl talks to networkd over D-Bus, which may not be up
// either; if networkd is running (or starting) but unreachable, it is
// restarted so it reads the new files.
func (a Applier) Apply(ctx context.Context, files []File) (Result, error) {
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	ours, err := a.ours()
	if err != nil {
		return res, err
	}
	keep := map[string]bool{}
	for _, f := range files {
		keep[f.Name] = true
		p := a.Root.Join(Dir, f.Name)
		if _, err := os.Lstat(p); err == nil && !ours[f.Name] {
			// A file of that name that we did not write: an administrator's
			// (or write_files'). Refuse rather than clobber it, before
			// anything is written.
			return res, fmt.Errorf("writing %s: exists and was not written by bulkhead-provision", a.Root.Rel(p))
		}
	}
	for _, f := range files {
		p := a.Root.Join(Dir, f.Name)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.Data) {
			continue // unchanged: do not disturb networkd for nothing
		}
		if err := fsroot.WriteFile(p, f.Data, 0o644); err != nil {
			return res, err
		}
		res.Written = append(res.Written, f.Name)
	}
	var stale []string
	for name := range ours {
		if !keep[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	for _, name := range stale {
		if err := os.Remove(a.Root.Join(Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("removing %s: %w", Dir+"/"+name, err)
		}
		res.Removed = append(res.Removed, name)
	}
	res.Links = a.matchingLinks(files)
	for _, name := range res.Written {
		if strings.HasSuffix(name, ".link") {
			res.LinkFiles = append(res.LinkFiles, name)
			log.Info(".link file (rename, wake-on-LAN) takes effect on the next boot: udev applies it when the device appears", "file", Dir+"/"+name)
		}
	}
	if !res.Changed() || a.Offline {
		return res, nil
	}
	res.Networkd, err = a.reload(ctx, log, res.Links)
	return res, err
}

// ours lists the files in Dir that start with Marker.
func (a Applier) ours() (map[string]bool, error) {
	entries, err := os.ReadDir(a.Root.Join(Dir))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", Dir, err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(a.Root.Join(Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", Dir+"/"+e.Name(), err)
		}
		if bytes.HasPrefix(data, []byte(Marker)) {
			out[e.Name()] = true
		}
	}
	return out, nil
}

// reload tells networkd about the new files. A networkd that is not
// running is not an error: it reads them when it starts.
func (a Applier) reload(ctx context.Context, log *slog.Logger, links []string) (string, error) {
	if _, err := a.Runner.Run(ctx, run.Cmd{Name: "networkctl", Args: []string{"reload"}}); err != nil {
		// `systemctl is-active` prints the state and exits non-zero for
		// anything but active: the output is what counts.
		out, _ := a.Runner.Run(ctx, run.Cmd{Name: "systemctl", Args: []string{"is-active", "systemd-networkd.service"}})
		state := strings.TrimSpace(string(out))
		switch state {
		case "active", "activating", "reloading":
			// Running but not reachable (D-Bus not up yet this early in
			// boot), or still starting and maybe past reading its files:
			// a restart reads them. --no-block: never wait on the job queue
			// from inside a boot job.
			log.Info("networkctl reload failed; restarting systemd-networkd to read the new files", "state", state, "err", err)
			if _, err := a.Runner.Run(ctx, run.Cmd{Name: "systemctl", Args: []string{"--no-block", "restart", "systemd-networkd.service"}}); err != nil {
				return "", fmt.Errorf("restarting systemd-networkd: %w", err)
			}
			return Restarted, nil
		default:
			log.Info("systemd-networkd not running; it reads the new files when it starts", "state", state, "err", err)
			return NotRunning, nil
		}
	}
	if len(links) == 0 {
		return Reloaded, nil
	}
	args := append([]string{"reconfigure"}, links...)
	if _, err := a.Runner.Run(ctx, run.Cmd{Name: "networkctl", Args: args}); err != nil {
		return Reloaded, fmt.Errorf("reconfiguring %s: %w", strings.Join(links, ", "), err)
	}
	return Reloaded, nil
}

// matchingLinks lists the physical interfaces in <root>/sys/class/net
// that a rendered .network file matches, sorted.
func (a Applier) matchingLinks(files []File) []string {
	entries, err := os.ReadDir(a.Root.Join("/sys/class/net"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if name == "lo" {
			continue
		}
		dir := a.Root.Join("/sys/class/net", name)
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // virtual (bond, bridge, veth): Kind=!* leaves it out
		}
		mac := strings.TrimSpace(readFile(filepath.Join(dir, "address")))
		driver := ""
		if target, err := os.Readlink(filepath.Join(dir, "device", "driver")); err == nil {
			driver = filepath.Base(target)
		}
		for _, f := range files {
			if strings.HasSuffix(f.Name, ".network") && matches(f, name, mac, driver) {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// matches applies systemd.network(5) [Match] rules: every given field
// must match; Name and Driver are globs, Name a list of them.
func matches(f File, name, mac, driver string) bool {
	m := f.Match
	if m == (cloudconfig.NetMatch{}) {
		return false
	}
	if m.MAC != "" && !strings.EqualFold(m.MAC, mac) {
		return false
	}
	if m.Driver != "" {
		if ok, _ := path.Match(m.Driver, driver); !ok {
			return false
		}
	}
	if len(f.Names) > 0 {
		hit := false
		for _, n := range f.Names {
			if ok, _ := path.Match(n, name); ok {
				hit = true
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func readFile(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}
