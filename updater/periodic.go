package updater

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/bulkhead-os/bulkhead/updater/reboot"
)

// Schedule times the periodic loop.
type Schedule struct {
	// Interval is used when update.yaml sets none or cannot be read; 0 is
	// CheckInterval.
	Interval time.Duration
	// First is the wait before the first check after the boot is blessed;
	// 0 is a minute.
	First time.Duration
}

// RunPeriodic is hostd's update loop; run it in a goroutine once per hostd
// start. It waits until the booted slot is blessed (bulkhead-bless.service
// ran after boot-complete.target: the GRUB default is the booted slot), then
// each round rereads update.yaml, builds the reboot strategy from it, gives
// back any fleet reboot slot the previous boot held (Strategy.SteadyState,
// once) and runs AutoUpdate (which does nothing without a url or with
// policy off). Rounds are update.yaml's interval apart, jittered by up to a
// tenth so a fleet does not hit the repository in step. Nothing stops the
// loop but ctx: a configuration error, a check that fails or finds another
// writer (ErrLocked) is recorded for `hostctl status` and retried at the
// next round, so fixing update.yaml needs no hostd restart.
func (u *Updater) RunPeriodic(ctx context.Context, sch Schedule) error {
	if err := u.waitBlessed(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if sch.Interval <= 0 {
		sch.Interval = CheckInterval
	}
	if sch.First <= 0 {
		sch.First = time.Minute
	}
	steady := false
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		interval, err := u.round(ctx, &steady, sch)
		switch {
		case errors.Is(err, ErrLocked):
			u.log().Info("update check skipped: another update is running")
		case err != nil:
			u.log().Warn("update check", "err", err)
		}
		wait = jitter(interval)
	}
}

// round is one turn of RunPeriodic; it returns the interval to the next.
func (u *Updater) round(ctx context.Context, steady *bool, sch Schedule) (time.Duration, error) {
	cfg, err := LoadConfig(u.Root)
	if err != nil {
		u.record(nil, err)
		return sch.Interval, err
	}
	interval := sch.Interval
	if cfg.Interval != "" {
		interval = cfg.CheckEvery()
	}
	s, err := reboot.New(cfg.Config, reboot.Options{Root: u.Root, Log: u.log(), HTTP: u.HTTP, Now: u.Now})
	if err != nil {
		u.record(nil, err)
		return interval, err
	}
	defer s.Close()
	if !*steady {
		if err := s.SteadyState(ctx); err != nil {
			u.log().Warn("releasing reboot slot", "strategy", s.Name(), "err", err)
		}
		*steady = true
		// The first check comes soon after boot, the rest every interval.
		if cfg.URL != "" {
			return sch.First, nil
		}
	}
	return interval, u.AutoUpdate(ctx, s)
}

// jitter returns d plus up to a tenth of d.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// blessPoll is how often waitBlessed rereads the GRUB environment.
const blessPoll = 10 * time.Second

// waitBlessed returns once the booted slot is the GRUB default with no trial
// of it pending, or when ctx ends (nil then: there is nothing to do).
func (u *Updater) waitBlessed(ctx context.Context) error {
	h := u.host()
	booted, err := h.Booted()
	if err != nil {
		return err
	}
	for {
		st, _, err := h.BootState()
		if err != nil {
			return err
		}
		if st.Default == booted && st.Try != booted {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(blessPoll):
		}
	}
}
