package storagesetup

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/run"
)

// LVM reports are read as JSON (--reportformat json, lvm2 >= 2.02.158) so
// names with odd characters and empty fields cannot shift columns the way
// the original's --noheadings parsing could. Every value is a string.

type lvmReport struct {
	Report []struct {
		PV []map[string]string `json:"pv"`
		VG []map[string]string `json:"vg"`
		LV []map[string]string `json:"lv"`
	} `json:"report"`
}

func lvmQuery(ctx context.Context, r run.Runner, name string, args ...string) (lvmReport, error) {
	out, err := r.Run(ctx, run.Cmd{Name: name, Args: append([]string{"--reportformat", "json"}, args...)})
	if err != nil {
		return lvmReport{}, err
	}
	var rep lvmReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return lvmReport{}, fmt.Errorf("reading %s report: %w", name, err)
	}
	return rep, nil
}

// pv is one physical volume and the VG it belongs to ("" for none).
type pv struct{ Name, VG string }

func listPVs(ctx context.Context, r run.Runner) ([]pv, error) {
	rep, err := lvmQuery(ctx, r, "pvs", "-o", "pv_name,vg_name")
	if err != nil {
		return nil, fmt.Errorf("listing physical volumes: %w", err)
	}
	var out []pv
	for _, part := range rep.Report {
		for _, row := range part.PV {
			out = append(out, pv{Name: row["pv_name"], VG: row["vg_name"]})
		}
	}
	return out, nil
}

// vgInfo is a volume group's size and free space in bytes.
type vgInfo struct {
	Name       string
	Size, Free uint64
}

// listVGs returns every VG with its size and free bytes.
func listVGs(ctx context.Context, r run.Runner) (map[string]vgInfo, error) {
	rep, err := lvmQuery(ctx, r, "vgs", "--units", "b", "--nosuffix", "-o", "vg_name,vg_size,vg_free")
	if err != nil {
		return nil, fmt.Errorf("listing volume groups: %w", err)
	}
	out := map[string]vgInfo{}
	for _, part := range rep.Report {
		for _, row := range part.VG {
			size, err1 := strconv.ParseUint(row["vg_size"], 10, 64)
			free, err2 := strconv.ParseUint(row["vg_free"], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("listing volume groups: bad size %q or free %q for %s", row["vg_size"], row["vg_free"], row["vg_name"])
			}
			out[row["vg_name"]] = vgInfo{Name: row["vg_name"], Size: size, Free: free}
		}
	}
	return out, nil
}

// lv is one logical volume of a VG.
type lv struct {
	Name, Attr, Profile string
	Size                uint64 // bytes (a thin volume's virtual size)
}

// isThinPool: a pool LV "has t as first character in its attributes"
// (lvm_pool_exists in the original).
func (l lv) isThinPool() bool { return strings.HasPrefix(l.Attr, "t") }

func listLVs(ctx context.Context, r run.Runner, vg string) (map[string]lv, error) {
	rep, err := lvmQuery(ctx, r, "lvs", "-o", "lv_name,lv_attr,lv_profile,lv_size", "--units", "b", "--nosuffix", vg)
	if err != nil {
		return nil, fmt.Errorf("listing logical volumes of %s: %w", vg, err)
	}
	out := map[string]lv{}
	for _, part := range rep.Report {
		for _, row := range part.LV {
			size, err := strconv.ParseUint(row["lv_size"], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("listing logical volumes of %s: bad size %q for %s", vg, row["lv_size"], row["lv_name"])
			}
			out[row["lv_name"]] = lv{Name: row["lv_name"], Attr: row["lv_attr"], Profile: row["lv_profile"], Size: size}
		}
	}
	return out, nil
}

// dmName is the device-mapper name LVM gives vg/lv: each '-' doubled, the
// two joined with '-' (the original looked it up through
// /sys/dev/block/MAJ:MIN/dm/name; the rule is fixed, so it is computed).
func dmName(vg, lvName string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lvName, "-", "--")
}

// splitDMName undoes dmName: "docker--vg-docker--pool" -> docker-vg, docker-pool.
func splitDMName(name string) (vg, lvName string, ok bool) {
	for i := 0; i < len(name); i++ {
		if name[i] != '-' {
			continue
		}
		if i+1 < len(name) && name[i+1] == '-' {
			i++
			continue
		}
		vg = strings.ReplaceAll(name[:i], "--", "-")
		lvName = strings.ReplaceAll(name[i+1:], "--", "-")
		return vg, lvName, vg != "" && lvName != ""
	}
	return "", "", false
}
