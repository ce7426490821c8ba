package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
)

// LastCheckFile records the last check for `hostctl status`.
const LastCheckFile = "/var/lib/bulkhead/updater/last-check.json"

// CheckInterval is how often hostd checks when update.yaml sets a url.
const CheckInterval = time.Hour

// LastCheck is the outcome of the last check.
type LastCheck struct {
	Time      time.Time `json:"time"`
	Channel   string    `json:"channel,omitempty"`
	Source    string    `json:"source,omitempty"`
	Current   string    `json:"current,omitempty"`
	Available string    `json:"available,omitempty"`
	Staged    bool      `json:"staged,omitempty"` // written and on trial, waiting for a reboot
	Held      string    `json:"held,omitempty"`   // why the rollout holds the host back
	Error     string    `json:"error,omitempty"`
}

// RecordCheck saves the outcome of a check or upgrade.
func (u *Updater) RecordCheck(p *Plan, opErr error) error {
	c := LastCheck{Time: u.now().UTC()}
	if p != nil {
		c.Channel, c.Source, c.Current, c.Available = p.Channel, p.Source, p.From, p.To
		c.Staged = p.AlreadyStaged || (opErr == nil && p.Ready())
		c.Held = p.Held
	}
	if opErr != nil {
		c.Error = opErr.Error()
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding last check: %w", err)
	}
	return fsroot.WriteFile(u.Root.Join(LastCheckFile), append(b, '\n'), 0o644)
}

// ReadLastCheck returns the last check, or nil when none ran.
func ReadLastCheck(root fsroot.Root) (*LastCheck, error) {
	b, err := os.ReadFile(root.Join(LastCheckFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading last update check: %w", err)
	}
	var c LastCheck
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("reading last update check %s: %w", root.Join(LastCheckFile), err)
	}
	return &c, nil
}

// Reboot waits for the reboot strategy's permission (nil for none) and asks
// systemd to reboot. Only the caller decides that a reboot is due.
func (u *Updater) Reboot(ctx context.Context, s reboot.Strategy) error {
	if s != nil {
		if err := s.PreReboot(ctx); err != nil {
			return fmt.Errorf("waiting for reboot permission (%s): %w", s.Name(), err)
		}
	}
	if _, err := u.runner().Run(ctx, run.Cmd{Name: "systemctl", Args: []string{"reboot"}}); err != nil {
		return fmt.Errorf("rebooting: %w", err)
	}
	return nil
}

// AutoUpdate is one periodic check, for hostd: when update.yaml sets a url,
// upgrade from its channel honouring the rollout, record the outcome, and if
// a new version is staged, reboot by the strategy. It returns nil without
// doing anything when periodic updates are not configured, and ErrLocked
// when a person is running an upgrade or rollback.
func (u *Updater) AutoUpdate(ctx context.Context, s reboot.Strategy) error {
	cfg, err := LoadConfig(u.Root)
	if err != nil {
		return err
	}
	if cfg.URL == "" {
		return nil
	}
	p, err := u.Upgrade(ctx, Options{Source: cfg.URL, Channel: cfg.Channel, HonourRollout: true})
	if rerr := u.RecordCheck(p, err); rerr != nil {
		u.log().Warn("recording update check", "err", rerr)
	}
	if err != nil {
		return err
	}
	if p.UpToDate || p.Held != "" {
		return nil
	}
	return u.Reboot(ctx, s)
}
