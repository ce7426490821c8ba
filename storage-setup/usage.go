package storagesetup

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/bulkhead-os/bulkhead/internal/run"
)

// ErrNoPool: the configuration carves no thin pool, or it does not exist
// (yet). `hostctl status` shows container storage as on the root filesystem.
var ErrNoPool = errors.New("no thin pool")

// Usage is how full the thin pool is, from lvs data_percent and
// metadata_percent. When either reaches 100 the pool stops writing; LVM's
// autoextend (POOL_AUTOEXTEND_THRESHOLD) acts well before that.
type Usage struct {
	VG, Pool        string
	DataPercent     float64
	MetadataPercent float64
}

// PoolUsage reports the configured pool's usage for `hostctl status`:
//
//	cfg, err := storagesetup.Load(root, "", log)
//	u, err := storagesetup.PoolUsage(ctx, runner, cfg)
//	if errors.Is(err, storagesetup.ErrNoPool) { /* storage on the root fs */ }
//
// It runs one read-only `lvs` and needs root. cfg.VG must name the VG (a VG
// only implied by an LVM root is not looked up here).
func PoolUsage(ctx context.Context, r run.Runner, cfg Config) (Usage, error) {
	if cfg.VG == "" || cfg.ContainerThinPool == "" || !cfg.wantsPool() {
		return Usage{}, ErrNoPool
	}
	target := cfg.VG + "/" + cfg.ContainerThinPool
	rep, err := lvmQuery(ctx, r, "lvs", "-o", "lv_name,lv_attr,data_percent,metadata_percent", target)
	if err != nil {
		// lvs exits 5 when the VG or LV does not exist.
		if run.ExitCode(err) == 5 {
			return Usage{}, fmt.Errorf("reading usage of %s: %w", target, ErrNoPool)
		}
		return Usage{}, fmt.Errorf("reading usage of %s: %w", target, err)
	}
	for _, part := range rep.Report {
		for _, row := range part.LV {
			if row["lv_name"] != cfg.ContainerThinPool {
				continue
			}
			if !(lv{Attr: row["lv_attr"]}).isThinPool() {
				return Usage{}, fmt.Errorf("reading usage of %s: not a thin pool: %w", target, ErrNoPool)
			}
			u := Usage{VG: cfg.VG, Pool: cfg.ContainerThinPool}
			// An inactive pool reports empty percentages.
			u.DataPercent, _ = strconv.ParseFloat(row["data_percent"], 64)
			u.MetadataPercent, _ = strconv.ParseFloat(row["metadata_percent"], 64)
			return u, nil
		}
	}
	return Usage{}, fmt.Errorf("reading usage of %s: %w", target, ErrNoPool)
}
