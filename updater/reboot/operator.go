package reboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/reboot/etcdlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/fleetlock"
	"github.com/bulkhead-os/bulkhead/updater/reboot/rollout"
)

// ErrNoLock: the configured strategy takes no fleet lock.
var ErrNoLock = errors.New("the configured reboot strategy takes no fleet lock")

// operatorTimeout bounds one operator command: the etcd client retries an
// unreachable cluster forever.
const operatorTimeout = 30 * time.Second

// Operator runs `hostctl reboot-lock` against the configured lock.
type Operator struct {
	Root fsroot.Root
	Cfg  Config
	HTTP *http.Client // FleetLock; nil for http.DefaultClient
	Now  func() time.Time
}

// group is the lock group: override if set, else the configured one.
func (o Operator) group(override string) string {
	if override != "" {
		return override
	}
	switch o.Cfg.Strategy {
	case StrategyFleetLock:
		return o.Cfg.FleetLock.FleetLockGroup()
	case StrategyEtcdLock:
		return o.Cfg.Etcd.Group
	}
	return ""
}

// Status writes the strategy, this host's identity and, for etcd-lock, the
// group's semaphore with its holders.
func (o Operator) Status(ctx context.Context, w io.Writer, group string) error {
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout)
	defer cancel()
	fmt.Fprintf(w, "strategy:  %s\n", o.Cfg.StrategyName())
	if id, err := HostID(o.Root); err == nil {
		fmt.Fprintf(w, "host id:   %s\n", id)
	}
	if wa, err := rollout.HostWariness(o.Root, o.Cfg.RolloutWariness); err == nil {
		fmt.Fprintf(w, "wariness:  %.3f\n", wa)
	}
	if o.Cfg.Window != nil {
		if win, err := o.Cfg.Window.BuildWindow(o.Root); err == nil {
			now := time.Now
			if o.Now != nil {
				now = o.Now
			}
			fmt.Fprintf(w, "window:    next open %s\n", win.Next(now()).Format(time.RFC3339))
		}
	}
	g := o.group(group)
	switch o.Cfg.Strategy {
	case StrategyFleetLock:
		fmt.Fprintf(w, "fleetlock: %s group %s\n", o.Cfg.FleetLock.BaseURL, g)
		fmt.Fprintln(w, "holders:   unknown (the FleetLock protocol has no status request; ask the server)")
	case StrategyEtcdLock:
		c, err := EtcdClient(o.Root, *o.Cfg.Etcd)
		if err != nil {
			return err
		}
		defer c.Close()
		s, rev, err := etcdlock.Read(ctx, c, g, etcdlock.DefaultMax)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "etcd key:  %s", etcdlock.Key(g))
		if rev == 0 {
			fmt.Fprint(w, " (not created yet)")
		}
		fmt.Fprintf(w, "\nslots:     %d of %d free\n", s.Semaphore, s.Max)
		fmt.Fprintf(w, "holders:   %d\n", len(s.Holders))
		for _, h := range s.Holders {
			fmt.Fprintf(w, "  %s\n", h)
		}
	}
	return nil
}

// SetMax sizes the etcd-lock group's semaphore to n holders: the one
// writer of max, so every host of the group reads the same size.
func (o Operator) SetMax(ctx context.Context, group string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout)
	defer cancel()
	if o.Cfg.Strategy != StrategyEtcdLock {
		return fmt.Errorf("setting the group size: %w (strategy %s; only etcd-lock keeps a size)", ErrNoLock, o.Cfg.StrategyName())
	}
	c, err := EtcdClient(o.Root, *o.Cfg.Etcd)
	if err != nil {
		return err
	}
	defer c.Close()
	return etcdlock.SetMax(ctx, c, o.group(group), n)
}

// Release gives back id's slot (this host's when id is empty). With
// etcd-lock any holder can be released; with FleetLock, the protocol names
// the holder in the request body, so a steady-state request in the dead
// host's name releases its slot. It returns etcdlock.ErrNotExist when etcd
// shows id holding nothing.
func (o Operator) Release(ctx context.Context, id, group string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, operatorTimeout)
	defer cancel()
	if id == "" {
		var err error
		if id, err = HostID(o.Root); err != nil {
			return "", err
		}
	}
	g := o.group(group)
	switch o.Cfg.Strategy {
	case StrategyEtcdLock:
		c, err := EtcdClient(o.Root, *o.Cfg.Etcd)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return id, etcdlock.Release(ctx, c, g, id)
	case StrategyFleetLock:
		fc := &fleetlock.Client{BaseURL: o.Cfg.FleetLock.BaseURL, ID: id, Group: g, HTTP: o.HTTP}
		if err := fc.Do(ctx, fleetlock.SteadyStatePath); err != nil {
			return "", fmt.Errorf("releasing %s in FleetLock group %s: %w", id, g, err)
		}
		return id, nil
	}
	return "", fmt.Errorf("%w (strategy %s)", ErrNoLock, o.Cfg.StrategyName())
}
