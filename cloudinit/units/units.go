package units

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Unit is one unit to install.
type Unit struct {
	Name     string
	Contents *string // nil keeps the unit as shipped (drop-ins only)
	DropIns  []DropIn
	Enable   bool
	Mask     bool
	// Command is a systemctl verb run after install (start, restart, ...).
	Command string
	// Runtime installs under /run instead of /etc (gone at reboot).
	Runtime bool
}

// DropIn is a <unit>.d/<name> file.
type DropIn struct {
	Name     string
	Contents string
}

// Validate reports what is wrong with u, path-prefixed by the caller.
func (u Unit) Validate() []string {
	var probs []string
	if u.Name == "" || strings.Contains(u.Name, "/") || !strings.Contains(u.Name, ".") {
		probs = append(probs, fmt.Sprintf("name: %q is not a unit name such as hello.service", u.Name))
	}
	for i, d := range u.DropIns {
		if d.Name == "" || strings.Contains(d.Name, "/") || !strings.HasSuffix(d.Name, ".conf") {
			probs = append(probs, fmt.Sprintf("drop_ins[%d].name: %q must be a file name ending in .conf", i, d.Name))
		}
	}
	switch u.Command {
	case "", "start", "stop", "restart", "reload", "try-restart", "reload-or-restart", "reload-or-try-restart":
	default:
		probs = append(probs, fmt.Sprintf("command: %q is not a systemctl verb (start, stop, restart, ...)", u.Command))
	}
	return probs
}

// Apply writes all units, reloads systemd once, then enables, masks and
// runs commands. Start-like commands use --no-block: provisioning runs
// before most units, and a blocking start of a unit ordered after us would
// deadlock the boot.
func Apply(ctx context.Context, r run.Runner, root fsroot.Root, us []Unit) error {
	if len(us) == 0 {
		return nil
	}
	for _, u := range us {
		dir := "/etc/systemd/system"
		if u.Runtime {
			dir = "/run/systemd/system"
		}
		if u.Contents != nil && !u.Mask {
			if err := fsroot.WriteFile(root.Join(dir, u.Name), []byte(*u.Contents), 0o644); err != nil {
				return fmt.Errorf("installing unit %s: %w", u.Name, err)
			}
		}
		for _, d := range u.DropIns {
			if err := fsroot.WriteFile(root.Join(dir, u.Name+".d", d.Name), []byte(d.Contents), 0o644); err != nil {
				return fmt.Errorf("installing drop-in %s of %s: %w", d.Name, u.Name, err)
			}
		}
	}
	if _, err := r.Run(ctx, run.Cmd{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
		return fmt.Errorf("reloading systemd: %w", err)
	}
	for _, u := range us {
		if err := act(ctx, r, root, u); err != nil {
			return err
		}
	}
	return nil
}

func act(ctx context.Context, r run.Runner, root fsroot.Root, u Unit) error {
	sc := func(args ...string) error {
		if u.Runtime && (args[0] == "enable" || args[0] == "mask") {
			args = append([]string{args[0], "--runtime"}, args[1:]...)
		}
		if _, err := r.Run(ctx, run.Cmd{Name: "systemctl", Args: args}); err != nil {
			return fmt.Errorf("systemctl %s %s: %w", args[0], u.Name, err)
		}
		return nil
	}
	if u.Mask {
		// systemctl mask refuses when a unit file of that name is in /etc:
		// the symlink to /dev/null is the mask, as Ignition writes it.
		link := root.Join("/etc/systemd/system", u.Name)
		if u.Runtime {
			link = root.Join("/run/systemd/system", u.Name)
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return fmt.Errorf("masking %s: %w", u.Name, err)
		}
		_ = os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return fmt.Errorf("masking %s: %w", u.Name, err)
		}
		return nil
	}
	if u.Enable {
		if err := sc("enable", u.Name); err != nil {
			return err
		}
	}
	if u.Command != "" {
		return sc("--no-block", u.Command, u.Name)
	}
	return nil
}
