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

// CheckInterval is how often hostd checks when update.yaml sets a url and
// no interval.
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
	Pinned    string    `json:"pinned,omitempty"` // the operator's pin, when one holds the host
	Policy    string    `json:"policy,omitempty"` // update.yaml's policy for periodic checks
	Error     string    `json:"error,omitempty"`
}

// RecordCheck saves the outcome of a check or upgrade.
func (u *Updater) RecordCheck(p *Plan, opErr error) error {
	c := LastCheck{Time: u.now().UTC()}
	if p != nil {
		c.Channel, c.Source, c.Current, c.Available = p.Channel, p.Source, p.From, p.To
		c.Staged = p.AlreadyStaged || (opErr == nil && p.Ready() && !p.DryRun)
		c.Held, c.Pinned, c.Policy = p.Held, p.Pinned, p.Policy
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
	return readJSON[LastCheck](root, LastCheckFile, "last update check")
}

// readJSON reads one of the updater's JSON state files under root: nil
// when it does not exist. what names it in errors.
func readJSON[T any](root fsroot.Root, file, what string) (*T, error) {
	b, err := os.ReadFile(root.Join(file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, root.Join(file), err)
	}
	return &v, nil
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

// AutoUpdate is one periodic check, for hostd. When update.yaml sets a url
// and a policy other than off, it plans from the channel honouring the
// rollout, or, when the operator pinned a version, toward that version only;
// then, by policy, reports (check), writes the slot (stage), or writes and
// reboots by the strategy (apply). It records the outcome for `hostctl
// status`, a configuration error included. It returns ErrLocked when a
// person is running an upgrade or rollback.
func (u *Updater) AutoUpdate(ctx context.Context, s reboot.Strategy) error {
	cfg, err := LoadConfig(u.Root)
	if err != nil {
		u.record(nil, err)
		return err
	}
	if cfg.URL == "" || cfg.PolicyName() == PolicyOff {
		return nil
	}
	o := Options{Source: cfg.URL, Channel: cfg.Channel, HonourRollout: true, DryRun: cfg.PolicyName() == PolicyCheck}
	pin, err := ReadPin(u.Root)
	if err != nil {
		u.record(nil, err)
		return err
	}
	if pin != nil {
		if p, err := u.pinnedInPlace(cfg, pin); err != nil || p != nil {
			u.record(p, err)
			return err
		}
		o.To, o.HonourRollout = pin.Version, false
	}
	p, err := u.Upgrade(ctx, o)
	if p != nil {
		p.Policy = cfg.PolicyName()
		if pin != nil {
			p.Pinned = pin.Version
		}
	}
	u.record(p, err)
	if err != nil {
		return err
	}
	if o.DryRun || !p.Ready() || cfg.PolicyName() == PolicyStage {
		return nil
	}
	return u.Reboot(ctx, s)
}

// pinnedInPlace returns an up-to-date plan, without asking the repository,
// when the pinned version already is in a slot: booted, or waiting to be
// booted after a rollback. nil means the pin asks for an update.
func (u *Updater) pinnedInPlace(cfg Config, pin *Pin) (*Plan, error) {
	h := u.host()
	booted, err := h.Booted()
	if err != nil {
		return nil, err
	}
	from, err := u.bootedVersion(booted)
	if err != nil {
		return nil, err
	}
	p := &Plan{Source: cfg.URL, Channel: cfg.Channel, From: from, To: pin.Version, UpToDate: true,
		Booted: booted, Target: booted.Other(), Pinned: pin.Version, Policy: cfg.PolicyName()}
	if from == pin.Version {
		return p, nil
	}
	if rel, err := h.Release(booted.Other()); err != nil || rel["VERSION"] != pin.Version {
		return nil, err
	}
	return p, nil
}

// record is RecordCheck for the periodic loop, which has nobody to return
// a recording error to.
func (u *Updater) record(p *Plan, opErr error) {
	if err := u.RecordCheck(p, opErr); err != nil {
		u.log().Warn("recording update check", "err", err)
	}
}
