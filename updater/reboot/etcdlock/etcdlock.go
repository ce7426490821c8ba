package etcdlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
)

// Read returns group's semaphore and the revision it was last modified at
// (0 when the key does not exist yet, in which case the semaphore is a
// fresh one with max slots).
func Read(ctx context.Context, kv clientv3.KV, group string, max int) (Semaphore, int64, error) {
	return read(ctx, kv, group, max)
}

func read(ctx context.Context, kv clientv3.KV, group string, max int, opts ...clientv3.OpOption) (Semaphore, int64, error) {
	key := Key(group)
	resp, err := kv.Get(ctx, key, opts...)
	if err != nil {
		return Semaphore{}, 0, fmt.Errorf("reading %s: %w", key, err)
	}
	return decode(key, resp.Kvs, max)
}

// decode reads the semaphore out of a range answer.
func decode(key string, kvs []*mvccpb.KeyValue, max int) (Semaphore, int64, error) {
	if len(kvs) == 0 {
		return NewSemaphore(max), 0, nil
	}
	var s Semaphore
	if err := json.Unmarshal(kvs[0].Value, &s); err != nil {
		return Semaphore{}, 0, fmt.Errorf("decoding %s: %w", key, err)
	}
	if s.Holders == nil {
		s.Holders = []string{}
	}
	return s, kvs[0].ModRevision, nil
}

// errConflict: someone else wrote the semaphore between our read and write.
var errConflict = errors.New("semaphore changed concurrently")

// swap applies change with compare-and-swap: it reads the semaphore,
// changes it, and writes it back only if nobody wrote in between (or, for a
// new key, only if it still does not exist). When somebody did and retry is
// set, it tries again on the value the failed transaction returned, so a
// lost race costs one round trip, not two; otherwise it returns
// errConflict. An error from change is returned as is.
func swap(ctx context.Context, kv clientv3.KV, group string, max int, change func(*Semaphore) error, retry bool, opts ...clientv3.OpOption) error {
	key := Key(group)
	s, rev, err := read(ctx, kv, group, max, opts...)
	if err != nil {
		return err
	}
	for {
		if err := change(&s); err != nil {
			return err
		}
		val, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", key, err)
		}
		// ModRevision 0 compares "key absent", so one transaction covers
		// both creating and swapping.
		resp, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(val))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("swapping %s: %w", key, err)
		}
		if resp.Succeeded {
			return nil
		}
		if !retry {
			return errConflict
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s, rev, err = decode(key, resp.Responses[0].GetResponseRange().Kvs, max); err != nil {
			return err
		}
	}
}

// Update applies change to group's semaphore with compare-and-swap,
// retrying at once when another writer got in between, until it succeeds,
// change fails (its error is returned as is) or ctx ends. max sizes the
// semaphore when the key does not exist yet.
func Update(ctx context.Context, kv clientv3.KV, group string, max int, change func(*Semaphore) error) error {
	return swap(ctx, kv, group, max, change, true)
}

// Release is the operator's unlock of any holder, e.g. a host that died
// holding a slot. It returns ErrNotExist if id holds no slot.
func Release(ctx context.Context, kv clientv3.KV, group, id string) error {
	err := Update(ctx, kv, group, DefaultMax, func(s *Semaphore) error { return s.Unlock(id) })
	if err != nil {
		return fmt.Errorf("releasing %s in %s: %w", id, Key(group), err)
	}
	return nil
}

// DefaultMax is the size of a semaphore no operator has sized yet, as in
// locksmith: one host of a group reboots at a time.
const DefaultMax = 1

// SetMax is the operator's resize of group's semaphore (`hostctl
// reboot-lock set-max`), creating it if absent. Holders are kept; see
// Semaphore.SetMax. Hosts never write max: if each wrote its own configured
// value, the fleet's size would be whichever host locked last.
func SetMax(ctx context.Context, kv clientv3.KV, group string, n int) error {
	if n < 1 {
		return fmt.Errorf("sizing %s: max %d must be >= 1", Key(group), n)
	}
	err := Update(ctx, kv, group, n, func(s *Semaphore) error { s.SetMax(n); return nil })
	if err != nil {
		return fmt.Errorf("sizing %s to %d: %w", Key(group), n, err)
	}
	return nil
}

// Lock is one host's view of its group's semaphore. It implements
// reboot.Strategy. It reads the group's max and never writes it: a missing
// semaphore is created with DefaultMax.
type Lock struct {
	KV      clientv3.KV
	Group   string // "" is locksmith's default group
	ID      string // this host's holder id
	Log     *slog.Logger
	Backoff backoff.Policy
	// OnClose, when set, is called by Close (it closes the etcd client the
	// Lock was built on).
	OnClose func() error
}

// Name implements reboot.Strategy.
func (l *Lock) Name() string { return "etcd-lock" }

// Close implements reboot.Strategy.
func (l *Lock) Close() error {
	if l.OnClose == nil {
		return nil
	}
	return l.OnClose()
}

// TryLock makes one attempt to take a slot. It returns nil if this host
// holds one (now or already), an error wrapping ErrFull if none is free or
// another host changed the semaphore first.
//
// It reads serializably (from the local member, without a quorum round): a
// stale read costs at most a failed swap, and polling hosts are most of
// etcd's load. A lost race is not retried at once: with a thousand hosts
// waiting, retrying every lost race turns one freed slot into a thousand
// transactions; backing off like a full semaphore keeps it to a few.
func (l *Lock) TryLock(ctx context.Context) error {
	err := swap(ctx, l.KV, l.Group, DefaultMax, func(s *Semaphore) error {
		if err := s.Lock(l.ID); err != nil && !errors.Is(err, ErrExist) {
			return err
		}
		return nil
	}, false, clientv3.WithSerializable())
	if errors.Is(err, errConflict) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// PreReboot implements reboot.Strategy: it polls, with jittered backoff,
// until a slot is free and this host has taken it, or ctx ends.
func (l *Lock) PreReboot(ctx context.Context) error {
	w := backoff.New(l.Backoff)
	for {
		err := l.TryLock(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrFull) && ctx.Err() == nil {
			// etcd unreachable or a broken document: keep trying, a reboot
			// without the lock is what this strategy exists to prevent.
			l.log().Warn("taking reboot lock", "key", Key(l.Group), "id", l.ID, "err", err)
		}
		if err := w.Sleep(ctx); err != nil {
			return fmt.Errorf("waiting for reboot lock %s as %s: %w", Key(l.Group), l.ID, err)
		}
	}
}

// SteadyState implements reboot.Strategy: it gives back this host's slot,
// retrying until etcd has recorded it or ctx ends. Holding no slot is fine.
func (l *Lock) SteadyState(ctx context.Context) error {
	w := backoff.New(l.Backoff)
	for {
		err := Update(ctx, l.KV, l.Group, DefaultMax, func(s *Semaphore) error { return s.Unlock(l.ID) })
		if err == nil || errors.Is(err, ErrNotExist) {
			return nil
		}
		if ctx.Err() == nil {
			l.log().Warn("releasing reboot lock", "key", Key(l.Group), "id", l.ID, "err", err)
		}
		if err := w.Sleep(ctx); err != nil {
			return fmt.Errorf("releasing reboot lock %s as %s: %w", Key(l.Group), l.ID, err)
		}
	}
}

func (l *Lock) log() *slog.Logger {
	if l.Log == nil {
		return slog.Default()
	}
	return l.Log
}
