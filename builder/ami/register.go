package ami

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"
)

// findImage returns this account's AMI named p.name in a region, or nil.
func (p *plan) findImage(ctx context.Context, c EC2, region string) (*ec2Image, error) {
	var out describeImagesResponse
	err := c.Call(ctx, "DescribeImages", map[string][]string{
		"Owner.1": {"self"}, "Filter.1.Name": {"name"}, "Filter.1.Value.1": {p.name},
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("looking for AMI %s in %s: %w", p.name, region, err)
	}
	for _, img := range out.Images {
		if img.Name == p.name && img.State != "deregistered" && img.State != "failed" {
			return &img, nil
		}
	}
	return nil, nil
}

func (img *ec2Image) snapshot() string {
	for _, m := range img.BlockDevices {
		if m.DeviceName == img.RootDeviceName {
			return m.SnapshotID
		}
	}
	return ""
}

// waitFor polls check every p.o.Poll until it says done, at most p.o.Wait.
func (p *plan) waitFor(ctx context.Context, what string, check func() (bool, error)) error {
	deadline := time.Now().Add(p.o.Wait)
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still not ready after %s", what, p.o.Wait)
		}
		select {
		case <-time.After(p.o.Poll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitSnapshot waits for a snapshot's status to be completed.
func (p *plan) waitSnapshot(ctx context.Context, c EC2, snap string) error {
	what := fmt.Sprintf("waiting for snapshot %s in %s to complete", snap, p.o.Region)
	return p.waitFor(ctx, what, func() (bool, error) {
		var out describeSnapshotsResponse
		if err := c.Call(ctx, "DescribeSnapshots", map[string][]string{"SnapshotId.1": {snap}}, &out); err != nil {
			return false, fmt.Errorf("%s: %w", what, err)
		}
		for _, s := range out.Snapshots {
			switch s.Status {
			case "completed":
				return true, nil
			case "error":
				return false, fmt.Errorf("%s: EBS says error: %s", what, s.StateMessage)
			}
		}
		return false, nil
	})
}

// waitImage waits for an image's state to be available.
func (p *plan) waitImage(ctx context.Context, c EC2, img Image) error {
	what := fmt.Sprintf("waiting for AMI %s in %s to be available", img.ImageID, img.Region)
	return p.waitFor(ctx, what, func() (bool, error) {
		var out describeImagesResponse
		if err := c.Call(ctx, "DescribeImages", map[string][]string{"ImageId.1": {img.ImageID}}, &out); err != nil {
			return false, fmt.Errorf("%s: %w", what, err)
		}
		for _, i := range out.Images {
			switch i.State {
			case "available":
				return true, nil
			case "failed", "error", "deregistered", "invalid":
				return false, fmt.Errorf("%s: it is %s", what, i.State)
			}
		}
		return false, nil
	})
}

// homeImage finds or makes the AMI in the home region.
func (p *plan) homeImage(ctx context.Context, c Clients) (*Image, error) {
	e := c.EC2(p.o.Region)
	if img, err := p.findImage(ctx, e, p.o.Region); err != nil {
		return nil, err
	} else if img != nil {
		p.progress("%s already has AMI %s (%s) in %s: nothing to upload", p.name, img.ImageID, img.State, p.o.Region)
		return &Image{Region: p.o.Region, ImageID: img.ImageID, SnapshotID: img.snapshot(), Existing: true}, nil
	}
	snap, err := p.uploadSnapshot(ctx, c.EBS(p.o.Region))
	if err != nil {
		return nil, err
	}
	p.progress("waiting for snapshot %s to complete", snap)
	if err := p.waitSnapshot(ctx, e, snap); err != nil {
		return nil, err
	}
	var out imageIDResponse
	if err := e.Call(ctx, "RegisterImage", p.registerParams(snap), &out); err != nil {
		return nil, fmt.Errorf("registering AMI %s from snapshot %s in %s: %w", p.name, snap, p.o.Region, err)
	}
	p.progress("registered AMI %s (%s) in %s", out.ImageID, p.name, p.o.Region)
	return &Image{Region: p.o.Region, ImageID: out.ImageID, SnapshotID: snap}, nil
}

// registerParams are the RegisterImage parameters of a snapshot: a 64-bit
// x86 HVM image with ENA (so NVMe and ENA instance types, all current
// ones), booting with UEFI where the instance type has it and BIOS
// elsewhere, IMDSv2 only, the root volume the snapshot's size.
func (p *plan) registerParams(snap string) map[string][]string {
	desc := fmt.Sprintf("Bulkhead %s %s", p.m.Name, p.m.Version)
	if p.m.RootHash != "" {
		desc += " (usr " + p.m.RootHash[:min(16, len(p.m.RootHash))] + ")"
	}
	v := map[string][]string{
		"Name":                                {p.name},
		"Description":                         {desc},
		"Architecture":                        {Architecture},
		"VirtualizationType":                  {"hvm"},
		"RootDeviceName":                      {RootDevice},
		"EnaSupport":                          {"true"},
		"BootMode":                            {BootMode},
		"ImdsSupport":                         {IMDSSupport},
		"BlockDeviceMapping.1.DeviceName":     {RootDevice},
		"BlockDeviceMapping.1.Ebs.SnapshotId": {snap},
		"BlockDeviceMapping.1.Ebs.VolumeSize": {strconv.FormatInt(p.volumeGiB, 10)},
		"BlockDeviceMapping.1.Ebs.VolumeType": {VolumeType},
		"BlockDeviceMapping.1.Ebs.DeleteOnTermination": {"true"},
		"TagSpecification.1.ResourceType":              {"image"},
	}
	for i, k := range slices.Sorted(maps.Keys(p.tags)) {
		n := strconv.Itoa(i + 1)
		v["TagSpecification.1.Tag."+n+".Key"] = []string{k}
		v["TagSpecification.1.Tag."+n+".Value"] = []string{p.tags[k]}
	}
	return v
}

// copyImage finds or makes the copy of home in region.
func (p *plan) copyImage(ctx context.Context, c Clients, home Image, region string) (*Image, error) {
	e := c.EC2(region)
	if img, err := p.findImage(ctx, e, region); err != nil {
		return nil, err
	} else if img != nil {
		p.progress("%s already has AMI %s (%s) in %s", p.name, img.ImageID, img.State, region)
		return &Image{Region: region, ImageID: img.ImageID, SnapshotID: img.snapshot(), Existing: true}, nil
	}
	var out imageIDResponse
	err := e.Call(ctx, "CopyImage", map[string][]string{
		"Name":          {p.name},
		"Description":   {fmt.Sprintf("Bulkhead %s %s", p.m.Name, p.m.Version)},
		"SourceImageId": {home.ImageID},
		"SourceRegion":  {home.Region},
		"CopyImageTags": {"true"},
		"ClientToken":   {p.name + "-" + region},
	}, &out)
	if err != nil {
		return nil, fmt.Errorf("copying AMI %s from %s to %s: %w", home.ImageID, home.Region, region, err)
	}
	p.progress("copied AMI %s to %s: %s", home.ImageID, region, out.ImageID)
	return &Image{Region: region, ImageID: out.ImageID}, nil
}

// share grants launch permission on every image to the accounts, once
// each image is available (a copy is pending for minutes).
func (p *plan) share(ctx context.Context, c Clients, images []Image) error {
	if len(p.o.Share) == 0 {
		return nil
	}
	for _, img := range images {
		e := c.EC2(img.Region)
		if err := p.waitImage(ctx, e, img); err != nil {
			return fmt.Errorf("sharing AMI %s: %w", img.ImageID, err)
		}
		params := map[string][]string{"ImageId": {img.ImageID}}
		for i, a := range p.o.Share {
			params[fmt.Sprintf("LaunchPermission.Add.%d.UserId", i+1)] = []string{a}
		}
		if err := e.Call(ctx, "ModifyImageAttribute", params, nil); err != nil {
			return fmt.Errorf("sharing AMI %s in %s with %v: %w", img.ImageID, img.Region, p.o.Share, err)
		}
		p.progress("shared AMI %s in %s with %v", img.ImageID, img.Region, p.o.Share)
	}
	return nil
}

// Record is ami.json: the AMIs of this build, by region.
type Record struct {
	Name    string  `json:"name"`    // the AMI name
	Version string  `json:"version"` // the build's version
	Images  []Image `json:"images"`
}

// record merges the images into ami.json beside the manifest.
func (p *plan) record(res *Result) error {
	rec := Record{Name: p.name, Version: p.m.Version}
	if b, err := os.ReadFile(p.recordPath); err == nil {
		var old Record
		if json.Unmarshal(b, &old) == nil && old.Name == p.name {
			rec.Images = old.Images
		}
	}
	for _, img := range res.Images {
		replaced := false
		for i := range rec.Images {
			if rec.Images[i].Region == img.Region {
				rec.Images[i], replaced = img, true
			}
		}
		if !replaced {
			rec.Images = append(rec.Images, img)
		}
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.recordPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("recording the AMIs in %s: %w", p.recordPath, err)
	}
	return nil
}
