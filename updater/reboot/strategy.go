package reboot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/reboot/etcdlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/fleetlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/window"
)

// Strategy decides when this host may reboot into a staged update.
//
// Contract, as Zincati's agent states: hostd calls SteadyState at every
// start once the booted version is blessed (releasing a slot left over from
// the reboot that brought it here), looks for and stages updates, then
// calls PreReboot and reboots as soon as it returns nil.
//
//   - PreReboot blocks until this host may reboot now, and returns nil; or
//     returns an error wrapping ctx.Err() once ctx ends. Lock-based
//     strategies hold a fleet slot when it returns nil; it is recursive, so
//     calling it again while holding is harmless. Transient failures (lock
//     server unreachable) are retried with backoff, never turned into an
//     unlocked reboot.
//   - SteadyState gives back any slot this host holds, retrying until the
//     lock server has recorded it or ctx ends. Holding no slot is not an
//     error.
//   - Close releases connections; it does not release a held slot (the
//     host is about to reboot holding it).
//
// Implementations are safe for one caller at a time.
type Strategy interface {
	Name() string
	PreReboot(ctx context.Context) error
	SteadyState(ctx context.Context) error
	Close() error
}

// Options are New's dependencies.
type Options struct {
	Root fsroot.Root
	Log  *slog.Logger
	HTTP *http.Client // FleetLock; nil for http.DefaultClient
	// MinWait and MaxWait bound the jittered backoff between lock attempts
	// (defaults 1s and 1m).
	MinWait, MaxWait time.Duration
	// Now is the clock for windows; nil for time.Now.
	Now func() time.Time
}

// New builds the configured strategy. It reads the machine id (lock-holder
// id) and the time zone under opts.Root; it does not contact lock servers.
func New(cfg Config, opts Options) (Strategy, error) {
	if p := cfg.Validate(); len(p) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, p)
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	pol := backoff.Policy{Min: opts.MinWait, Max: opts.MaxWait}
	if pol.Min == 0 {
		pol = backoff.Default
	}
	var s Strategy
	switch cfg.Strategy {
	case "", StrategyImmediate, StrategyWindow:
		s = Immediate{}
	case StrategyFleetLock:
		id, err := HostID(opts.Root)
		if err != nil {
			return nil, err
		}
		s = &fleetlock.Client{BaseURL: cfg.FleetLock.BaseURL, ID: id, Group: cfg.FleetLock.FleetLockGroup(), HTTP: opts.HTTP, Log: log, Backoff: pol}
	case StrategyEtcdLock:
		id, err := HostID(opts.Root)
		if err != nil {
			return nil, err
		}
		c, err := EtcdClient(opts.Root, *cfg.Etcd)
		if err != nil {
			return nil, err
		}
		s = &etcdlock.Lock{KV: c, Group: cfg.Etcd.Group, ID: id, Log: log, Backoff: pol, OnClose: c.Close}
	}
	if cfg.Window != nil {
		w, err := cfg.Window.BuildWindow(opts.Root)
		if err != nil {
			s.Close()
			return nil, err
		}
		s = &Windowed{Window: w, Then: s, Now: opts.Now, Log: log}
	}
	return s, nil
}

// EtcdClient connects to the configured etcd cluster, with TLS when the
// configuration names certificate files (read under root). Connecting is
// lazy: an unreachable cluster shows up as errors of later calls.
func EtcdClient(root fsroot.Root, e EtcdConfig) (*clientv3.Client, error) {
	cc := clientv3.Config{Endpoints: e.Endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()}
	if e.CAFile != "" || e.CertFile != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.CAFile != "" {
			pem, err := os.ReadFile(root.Join(e.CAFile))
			if err != nil {
				return nil, fmt.Errorf("reading etcd CA: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("reading etcd CA %s: no certificate found", e.CAFile)
			}
		}
		if e.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(root.Join(e.CertFile), root.Join(e.KeyFile))
			if err != nil {
				return nil, fmt.Errorf("reading etcd client certificate: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = t
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd %v: %w", e.Endpoints, err)
	}
	return c, nil
}

// Immediate lets the host reboot at once.
type Immediate struct{}

// Name implements Strategy.
func (Immediate) Name() string { return StrategyImmediate }

// PreReboot implements Strategy.
func (Immediate) PreReboot(ctx context.Context) error { return ctx.Err() }

// SteadyState implements Strategy.
func (Immediate) SteadyState(context.Context) error { return nil }

// Close implements Strategy.
func (Immediate) Close() error { return nil }

// Windowed waits for a maintenance window, then for Then (Immediate for
// plain windows, a lock otherwise).
type Windowed struct {
	Window window.Window
	Then   Strategy
	Now    func() time.Time // nil for time.Now
	Log    *slog.Logger
	// Tick bounds one real sleep (default maxSleep), so that a changed or
	// simulated clock is looked at again that often.
	Tick time.Duration
}

// maxSleep bounds one sleep, so that a wall-clock change or a suspend is
// noticed: the window is recomputed at least this often.
const maxSleep = time.Minute

// Name implements Strategy.
func (w *Windowed) Name() string {
	if _, ok := w.Then.(Immediate); ok {
		return StrategyWindow
	}
	return w.Then.Name() + "+window"
}

// PreReboot implements Strategy: it sleeps until the window is open, then
// calls Then.PreReboot, but only while the window stays open: a lock
// granted after it closed would reboot the host outside its window. If the
// window closes first, any slot taken in the race is given back and the host
// waits for the next window.
func (w *Windowed) PreReboot(ctx context.Context) error {
	logged := false
	for {
		t := w.now()
		next := w.Window.Next(t)
		if !next.After(t) {
			err := w.lockUntil(ctx, w.Window.Closes(t))
			if !errors.Is(err, errWindowClosed) {
				return err
			}
			continue
		}
		if !logged && w.Log != nil {
			w.Log.Info("waiting for maintenance window", "opens", next.Format(time.RFC3339))
			logged = true
		}
		if err := sleepCtx(ctx, min(next.Sub(t), w.tick())); err != nil {
			return fmt.Errorf("waiting for maintenance window opening %s: %w", next.Format(time.RFC3339), err)
		}
	}
}

// lockUntil runs Then.PreReboot until the window closes at shut. The clock
// may be simulated, so the deadline is rechecked rather than trusted to a
// context deadline alone.
func (w *Windowed) lockUntil(ctx context.Context, shut time.Time) error {
	if _, ok := w.Then.(Immediate); ok {
		return ctx.Err()
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for lctx.Err() == nil && w.now().Before(shut) {
			_ = sleepCtx(lctx, min(shut.Sub(w.now()), w.tick()))
		}
		cancel()
	}()
	err := w.Then.PreReboot(lctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if w.Log != nil {
		w.Log.Info("maintenance window closed before the reboot lock was granted")
	}
	// The last attempt may have taken a slot whose answer was lost.
	if err := w.Then.SteadyState(ctx); err != nil {
		return err
	}
	return errWindowClosed
}

// errWindowClosed: the window closed while waiting for the lock.
var errWindowClosed = errors.New("maintenance window closed")

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (w *Windowed) tick() time.Duration {
	if w.Tick <= 0 {
		return maxSleep
	}
	return w.Tick
}

func (w *Windowed) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}

// SteadyState implements Strategy.
func (w *Windowed) SteadyState(ctx context.Context) error { return w.Then.SteadyState(ctx) }

// Close implements Strategy.
func (w *Windowed) Close() error { return w.Then.Close() }
