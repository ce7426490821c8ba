package updater

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/bulkhead-os/bulkhead/updater/reboot"
)

// RunPeriodic is hostd's update loop; run it in a goroutine once per hostd
// start. It waits until the booted slot is blessed (bulkhead-bless.service
// ran after boot-complete.target: the GRUB default is the booted slot),
// builds the reboot strategy from update.yaml, gives back any fleet reboot
// slot the previous boot held (Strategy.SteadyState), and then, when
// update.yaml sets a url, runs AutoUpdate every interval (jittered by up to
// a tenth so a fleet does not hit the repository in step) until ctx ends.
// Without a url it returns after SteadyState. A check that finds another
// writer (ErrLocked) or fails is logged and retried at the next tick.
func (u *Updater) RunPeriodic(ctx context.Context, interval time.Duration) error {
	if err := u.waitBlessed(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	cfg, err := LoadConfig(u.Root)
	if err != nil {
		return err
	}
	s, err := reboot.New(cfg.Config, reboot.Options{Root: u.Root, Log: u.log(), HTTP: u.HTTP, Now: u.Now})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.SteadyState(ctx); err != nil {
		u.log().Warn("releasing reboot slot", "strategy", s.Name(), "err", err)
	}
	if cfg.URL == "" {
		return nil
	}
	// The first check comes soon after boot, the rest every interval.
	wait := jitter(time.Minute)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		err := u.AutoUpdate(ctx, s)
		switch {
		case errors.Is(err, ErrLocked):
			u.log().Info("update check skipped: another update is running")
		case err != nil:
			u.log().Warn("update check", "err", err)
		}
		wait = jitter(interval)
	}
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
