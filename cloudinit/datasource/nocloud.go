package datasource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
)

// DefaultNoCloudInstanceID is the instance-id of a NoCloud seed whose
// meta-data has none (cloud-init's default).
const DefaultNoCloudInstanceID = "nocloud"

// NoCloud finds a NoCloud seed: ds=nocloud;s=URL-or-path first (it was
// asked for by name), then a device labelled cidata/CIDATA through udev's
// /dev/disk/by-label, then every block device's label read directly (udev
// may not have run yet this early in boot).
func NoCloud(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	spec := kernelDS(o)
	var d *Data
	var err error
	if s := spec.kv["s"]; s != "" && (spec.name == "nocloud" || spec.name == "nocloud-net") {
		d, err = seedFrom(ctx, o, s)
	} else {
		d, err = seedDevice(o)
	}
	if err != nil {
		return nil, err
	}
	if d.MetaData.InstanceID == "" {
		if md, err := cloudconfig.ParseMetaData(d.metaRaw); err == nil {
			d.MetaData = md
		} else {
			return nil, fmt.Errorf("%s: %w", d.Source, err)
		}
	}
	// ds=nocloud;i=...;h=... override meta-data, as in cloud-init.
	if v := spec.kv["i"]; v != "" {
		d.MetaData.InstanceID = v
	}
	if v := spec.kv["h"]; v != "" {
		d.MetaData.LocalHostname = v
	}
	if d.MetaData.InstanceID == "" {
		// cloud-init's DataSourceNoCloud merges its defaults under the
		// seed's meta-data, {"instance-id": "nocloud"}: virt-install and
		// `touch meta-data` tutorials write an empty file, and such a seed
		// provisions once as the instance "nocloud".
		d.MetaData.InstanceID = DefaultNoCloudInstanceID
	}
	return d, nil
}

// seedDevice looks for the cidata filesystem.
func seedDevice(o Options) (*Data, error) {
	for _, label := range []string{"cidata", "CIDATA"} {
		link := o.Root.Join("/dev/disk/by-label", label)
		target, err := os.Readlink(link)
		if err != nil {
			continue
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join("/dev/disk/by-label", target)
		}
		return readSeed(o, o.Root.Join(target))
	}
	names, _ := os.ReadDir(o.Root.Join("/sys/class/block"))
	var devs []string
	for _, n := range names {
		name := n.Name()
		if strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") || strings.HasPrefix(name, "dm-") {
			continue
		}
		devs = append(devs, name)
	}
	// CD-ROMs first: that is where virt-install puts the seed.
	sort.SliceStable(devs, func(i, j int) bool {
		return strings.HasPrefix(devs[i], "sr") && !strings.HasPrefix(devs[j], "sr")
	})
	for _, name := range devs {
		dev := o.Root.Join("/dev", name)
		f, err := os.Open(dev)
		if err != nil {
			continue // no medium in the drive, no node yet
		}
		_, label, err := seed.Probe(f)
		f.Close()
		if err == nil && seed.IsSeedLabel(label) {
			return readSeed(o, dev)
		}
	}
	return nil, ErrNotFound
}

func readSeed(o Options, dev string) (*Data, error) {
	files, err := seed.Read(dev)
	if err != nil {
		return nil, err
	}
	o.Log.Info("nocloud seed found", "device", o.Root.Rel(dev))
	return &Data{
		Source:        "nocloud:" + o.Root.Rel(dev),
		UserData:      files.UserData,
		VendorData:    files.VendorData,
		NetworkConfig: files.NetworkConfig,
		metaRaw:       files.MetaData,
	}, nil
}

// seedFrom reads a seed from a directory (s=/path or file:///path, under
// the root) or a URL prefix (s=http://host/path/).
func seedFrom(ctx context.Context, o Options, s string) (*Data, error) {
	if p, ok := strings.CutPrefix(s, "file://"); ok {
		s = p
	}
	d := &Data{Source: "nocloud:" + s}
	get := func(name string) ([]byte, error) {
		f, err := os.Open(o.Root.Join(s, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNoItem
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return seed.ReadLimited(f, seed.MaxSize(name))
	}
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		if !strings.HasSuffix(s, "/") {
			s += "/"
		}
		get = func(name string) ([]byte, error) { return httpGet(ctx, o, s+name, seed.MaxSize(name)) }
	}
	var err error
	if d.metaRaw, err = get("meta-data"); err != nil {
		return nil, fmt.Errorf("nocloud seed %s: meta-data: %w", s, err)
	}
	if d.UserData, err = get("user-data"); err != nil && !errors.Is(err, errNoItem) {
		return nil, fmt.Errorf("nocloud seed %s: user-data: %w", s, err)
	}
	for name, dst := range map[string]*[]byte{"vendor-data": &d.VendorData, "network-config": &d.NetworkConfig} {
		if *dst, err = get(name); err != nil && !errors.Is(err, errNoItem) {
			return nil, fmt.Errorf("nocloud seed %s: %s: %w", s, name, err)
		}
	}
	return d, nil
}
