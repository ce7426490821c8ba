package ignition

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/coreos/ignition/v2/config/v3_5/types"
)

// Where Ignition writes units, and the preset file it records enabled
// and disabled units in (internal/exec/util/unit.go).
const (
	unitDir    = "/etc/systemd/system"
	presetPath = "/etc/systemd/system-preset/20-ignition.preset"
)

// systemd writes units, drop-ins, masks and presets as Ignition's files
// stage does, then makes them and the files written take effect.
func (a Applier) systemd(ctx context.Context, units []types.Unit, written []string) error {
	var presets []string
	for i, u := range units {
		path := fmt.Sprintf("systemd.units[%d]", i)
		for _, d := range u.Dropins {
			if d.Contents == nil {
				continue
			}
			p := unitDir + "/" + u.Name + ".d/" + d.Name
			if err := fsroot.WriteFile(a.Root.Join(p), []byte(*d.Contents), 0o644); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			written = append(written, p)
		}
		if deref(u.Contents) != "" {
			p := unitDir + "/" + u.Name
			if err := fsroot.WriteFile(a.Root.Join(p), []byte(*u.Contents), 0o644); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			written = append(written, p)
		}
		if err := a.mask(u); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if u.Enabled != nil {
			verb := "disable"
			if *u.Enabled {
				verb = "enable"
			}
			presets = append(presets, verb+" "+u.Name)
		}
	}
	if len(presets) > 0 {
		// Appended, as Ignition does: `systemctl preset` keeps honouring
		// the config after this boot.
		old, _ := os.ReadFile(a.Root.Join(presetPath))
		data := append(old, []byte(strings.Join(presets, "\n")+"\n")...)
		if err := fsroot.WriteFile(a.Root.Join(presetPath), data, 0o644); err != nil {
			return fmt.Errorf("systemd.units: %w", err)
		}
	}
	return a.takeEffect(ctx, units, written)
}

// mask applies mask: true (the unit file replaced by a link to
// /dev/null) and mask: false (such a link removed, nothing else).
func (a Applier) mask(u types.Unit) error {
	p := a.Root.Join(unitDir, u.Name)
	switch {
	case isTrue(u.Mask):
		if err := os.MkdirAll(a.Root.Join(unitDir), 0o755); err != nil {
			return fmt.Errorf("masking %s: %w", u.Name, err)
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("masking %s: %w", u.Name, err)
		}
		if err := os.Symlink("/dev/null", p); err != nil {
			return fmt.Errorf("masking %s: %w", u.Name, err)
		}
	case isFalse(u.Mask):
		if target, err := os.Readlink(p); err == nil && target == "/dev/null" {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("unmasking %s: %w", u.Name, err)
			}
		}
	}
	return nil
}

// effect is what makes files under some paths take effect on a running
// system: Ignition writes them before the real root boots, so they are
// read by the services that start after it; here those services have
// started already. Commands are --no-block: provisioning runs inside the
// boot transaction, and waiting on a job ordered after it would deadlock.
type effect struct {
	match func(path string) bool
	cmds  [][]string
}

var effects = []effect{
	{underAny("/etc/sysctl.d/", "/etc/sysctl.conf"),
		[][]string{{"systemctl", "--no-block", "restart", "systemd-sysctl.service"}}},
	{underAny("/etc/modules-load.d/"),
		[][]string{{"systemctl", "--no-block", "restart", "systemd-modules-load.service"}}},
	// .link files are udev's: it applies them when a device is added.
	{func(p string) bool {
		return underAny("/etc/udev/rules.d/", "/etc/udev/hwdb.d/")(p) ||
			(strings.HasPrefix(p, "/etc/systemd/network/") && strings.HasSuffix(p, ".link"))
	}, [][]string{{"udevadm", "control", "--reload"}, {"udevadm", "trigger"}}},
	// A restart, not `networkctl reload`: networkctl needs D-Bus, which
	// may not be up this early; try-restart leaves a networkd that has
	// not started yet to read the files when it does.
	{underAny("/etc/systemd/network/"),
		[][]string{{"systemctl", "--no-block", "try-restart", "systemd-networkd.service"}}},
}

func underAny(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, pre := range prefixes {
			if strings.HasPrefix(p, pre) || p == strings.TrimSuffix(pre, "/") {
				return true
			}
		}
		return false
	}
}

// takeEffect runs, through the runner, what makes the written files and
// units take effect on this boot as if Ignition had written them before
// it: systemd reloaded, the hostname set, sysctl, modules, tmpfiles, udev
// and networkd re-read, and units enabled and started, disabled and
// stopped, masked and stopped, unmasked and started when enabled.
func (a Applier) takeEffect(ctx context.Context, units []types.Unit, written []string) error {
	sh := func(argv ...string) ([]byte, error) {
		return a.Runner.Run(ctx, run.Cmd{Name: argv[0], Args: argv[1:]})
	}
	reload := len(units) > 0
	for _, p := range written {
		if strings.HasPrefix(p, "/etc/systemd/system/") || strings.HasPrefix(p, "/etc/systemd/user/") {
			reload = true
		}
	}
	if reload {
		if _, err := sh("systemctl", "daemon-reload"); err != nil {
			return fmt.Errorf("systemd.units: reloading systemd: %w", err)
		}
	}
	if !a.Offline {
		if err := a.runEffects(sh, written); err != nil {
			return err
		}
	}
	for i, u := range units {
		if err := a.unitState(sh, u); err != nil {
			return fmt.Errorf("systemd.units[%d]: %w", i, err)
		}
	}
	return nil
}

func (a Applier) runEffects(sh func(...string) ([]byte, error), written []string) error {
	for _, p := range written {
		if p != "/etc/hostname" {
			continue
		}
		data, err := os.ReadFile(a.Root.Join(p))
		if err != nil {
			return fmt.Errorf("reading /etc/hostname: %w", err)
		}
		name, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		if name = strings.TrimSpace(name); name != "" {
			if _, err := sh("hostname", name); err != nil {
				return fmt.Errorf("setting the hostname from /etc/hostname: %w", err)
			}
		}
	}
	var tmpfiles []string
	for _, p := range written {
		if strings.HasPrefix(p, "/etc/tmpfiles.d/") && strings.HasSuffix(p, ".conf") {
			tmpfiles = append(tmpfiles, p)
		}
	}
	if len(tmpfiles) > 0 {
		if _, err := sh(append([]string{"systemd-tmpfiles", "--create"}, tmpfiles...)...); err != nil {
			return fmt.Errorf("applying %s: %w", strings.Join(tmpfiles, ", "), err)
		}
	}
	for _, e := range effects {
		hit := ""
		for _, p := range written {
			if e.match(p) {
				hit = p
				break
			}
		}
		if hit == "" {
			continue
		}
		for _, argv := range e.cmds {
			if _, err := sh(argv...); err != nil {
				return fmt.Errorf("applying %s: %w", hit, err)
			}
		}
	}
	return nil
}

// unitState enables or disables a unit and, on a running system, starts
// or stops it as this boot would have had Ignition run before it.
func (a Applier) unitState(sh func(...string) ([]byte, error), u types.Unit) error {
	live := !a.Offline
	switch {
	case isTrue(u.Mask):
		if live {
			if _, err := sh("systemctl", "--no-block", "stop", u.Name); err != nil {
				return fmt.Errorf("stopping masked %s: %w", u.Name, err)
			}
		}
		return nil // a masked unit cannot be enabled or started
	case isTrue(u.Enabled):
		if _, err := sh("systemctl", "enable", u.Name); err != nil {
			return fmt.Errorf("enabling %s: %w", u.Name, err)
		}
		if live {
			if _, err := sh("systemctl", "--no-block", "start", u.Name); err != nil {
				return fmt.Errorf("starting %s: %w", u.Name, err)
			}
		}
	case isFalse(u.Enabled):
		// As Ignition's DisableUnit: a unit that is not enabled (or does
		// not exist) is left alone; `is-enabled` exits non-zero for it.
		if _, err := sh("systemctl", "is-enabled", "--quiet", u.Name); err != nil {
			return nil
		}
		if _, err := sh("systemctl", "disable", u.Name); err != nil {
			return fmt.Errorf("disabling %s: %w", u.Name, err)
		}
		if live {
			if _, err := sh("systemctl", "--no-block", "stop", u.Name); err != nil {
				return fmt.Errorf("stopping disabled %s: %w", u.Name, err)
			}
		}
	case isFalse(u.Mask) && live:
		// Unmasked: if it is enabled, this boot would have started it.
		out, _ := sh("systemctl", "is-enabled", u.Name)
		if strings.TrimSpace(string(out)) == "enabled" {
			if _, err := sh("systemctl", "--no-block", "start", u.Name); err != nil {
				return fmt.Errorf("starting unmasked %s: %w", u.Name, err)
			}
		}
	}
	return nil
}
