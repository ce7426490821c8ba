package etcdlock

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulkhead-os/bulkhead/internal/backoff"
	"github.com/bulkhead-os/bulkhead/updater/reboot/reboottest"
)

// Fleet simulation parameters: 1000 hosts share one etcd and one client
// connection (a connection per host would measure gRPC, not the lock); each
// holds its slot for a fixed simulated reboot.
const (
	benchHosts  = 1000
	benchReboot = 50 * time.Millisecond
)

// BenchmarkFleetUpdate measures the wall time until a whole fleet has taken
// the reboot lock, rebooted and released it, for several group sizes. The
// lower bound is hosts/max * reboot (50 s, 10 s, 2.5 s); the rest is
// coordination overhead. Each sub-benchmark runs one fleet per iteration in
// a fresh group and ends by itself (bounded by a 5-minute context). etcd
// keeps its data on /dev/shm, so the disk's fsync latency is left out.
//
// Besides fleet-s it reports txn/host, the compare-and-swap transactions
// per host (2 when nobody ever lost a race): every lock and unlock of a
// group is serialised on one key, as in locksmith, and races lost to other
// hosts are the coordination cost.
//
//	go test -run '^$' -bench FleetUpdate ./updater/reboot/etcdlock/
func BenchmarkFleetUpdate(b *testing.B) {
	c := reboottest.Client(b, reboottest.StartEtcdInMemory(b))
	for _, slots := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("max-holders=%d", slots), func(b *testing.B) {
			var total time.Duration
			kv := &countingKV{KV: c}
			for i := 0; i < b.N; i++ {
				group := fmt.Sprintf("bench-%d-%d", slots, i)
				d, err := fleetUpdate(kv, group, slots)
				if err != nil {
					b.Fatal(err)
				}
				total += d
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "fleet-s")
			b.ReportMetric(float64(kv.txns.Load())/float64(b.N*benchHosts), "txn/host")
			b.ReportMetric(float64(benchHosts*benchReboot/time.Duration(slots))/float64(time.Second), "floor-s")
		})
	}
}

// countingKV counts the transactions sent to the real etcd client.
type countingKV struct {
	clientv3.KV
	txns atomic.Int64
}

func (c *countingKV) Txn(ctx context.Context) clientv3.Txn {
	c.txns.Add(1)
	return c.KV.Txn(ctx)
}

// fleetUpdate runs benchHosts hosts through one update and returns the wall
// time from the first lock attempt to the last release.
func fleetUpdate(kv clientv3.KV, group string, slots int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Hosts that find the group full back off from 0.5 s up to 2 s (a real
	// fleet uses 1 s to 1 min): with 1000 of them polling, a freed slot is
	// still seen within a few milliseconds.
	pol := backoff.Policy{Min: 500 * time.Millisecond, Max: 2 * time.Second}
	errs := make(chan error, benchHosts)
	var wg sync.WaitGroup
	if err := SetMax(ctx, kv, group, slots); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range benchHosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &Lock{KV: kv, Group: group, ID: fmt.Sprintf("host-%04d", i), Backoff: pol}
			if err := l.PreReboot(ctx); err != nil {
				errs <- err
				return
			}
			time.Sleep(benchReboot)
			if err := l.SteadyState(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		return d, err
	}
	return d, nil
}
