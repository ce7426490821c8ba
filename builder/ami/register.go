package ami

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// findImage returns this account's AMI named p.name in a region, or nil.
func (p *plan) findImage(ctx context.Context, c EC2, region string) (*ec2types.Image, error) {
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{p.name}}},
	})
	if err != nil {
		return nil, fmt.Errorf("looking for AMI %s in %s: %w", p.name, region, err)
	}
	for _, img := range out.Images {
		if aws.ToString(img.Name) == p.name && img.State != ec2types.ImageStateDeregistered && img.State != ec2types.ImageStateFailed {
			return &img, nil
		}
	}
	return nil, nil
}

func snapshotOf(img *ec2types.Image) string {
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil && aws.ToString(m.DeviceName) == aws.ToString(img.RootDeviceName) {
			return aws.ToString(m.Ebs.SnapshotId)
		}
	}
	return ""
}

// homeImage finds or makes the AMI in the home region.
func (p *plan) homeImage(ctx context.Context, c Clients) (*Image, error) {
	e := c.EC2(p.o.Region)
	if img, err := p.findImage(ctx, e, p.o.Region); err != nil {
		return nil, err
	} else if img != nil {
		p.progress("%s already has AMI %s (%s) in %s: nothing to upload", p.name, aws.ToString(img.ImageId), img.State, p.o.Region)
		return &Image{Region: p.o.Region, ImageID: aws.ToString(img.ImageId), SnapshotID: snapshotOf(img), Existing: true}, nil
	}
	snap, err := p.uploadSnapshot(ctx, c.EBS(p.o.Region))
	if err != nil {
		return nil, err
	}
	p.progress("waiting for snapshot %s to complete", snap)
	w := ec2.NewSnapshotCompletedWaiter(e, func(o *ec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.o.Poll, p.o.Poll
	})
	if err := w.Wait(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}}, p.o.Wait); err != nil {
		return nil, fmt.Errorf("waiting for snapshot %s in %s to complete: %w", snap, p.o.Region, err)
	}
	out, err := e.RegisterImage(ctx, p.registerInput(snap))
	if err != nil {
		return nil, fmt.Errorf("registering AMI %s from snapshot %s in %s: %w", p.name, snap, p.o.Region, err)
	}
	id := aws.ToString(out.ImageId)
	p.progress("registered AMI %s (%s) in %s", id, p.name, p.o.Region)
	return &Image{Region: p.o.Region, ImageID: id, SnapshotID: snap}, nil
}

// registerInput is the RegisterImage call of a snapshot: a 64-bit x86
// HVM image with ENA (so NVMe and ENA instance types, all current ones),
// booting with UEFI where the instance type has it and BIOS elsewhere,
// IMDSv2 only, the root volume the snapshot's size.
func (p *plan) registerInput(snap string) *ec2.RegisterImageInput {
	var tags []ec2types.Tag
	for _, k := range slices.Sorted(maps.Keys(p.tags)) {
		tags = append(tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(p.tags[k])})
	}
	desc := fmt.Sprintf("Bulkhead %s %s", p.m.Name, p.m.Version)
	if p.m.RootHash != "" {
		desc += " (usr " + p.m.RootHash[:min(16, len(p.m.RootHash))] + ")"
	}
	return &ec2.RegisterImageInput{
		Name:               aws.String(p.name),
		Description:        aws.String(desc),
		Architecture:       ec2types.ArchitectureValuesX8664,
		VirtualizationType: aws.String("hvm"),
		RootDeviceName:     aws.String(RootDevice),
		EnaSupport:         aws.Bool(true),
		BootMode:           ec2types.BootModeValuesUefiPreferred,
		ImdsSupport:        ec2types.ImdsSupportValuesV20,
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{
			DeviceName: aws.String(RootDevice),
			Ebs: &ec2types.EbsBlockDevice{
				SnapshotId:          aws.String(snap),
				VolumeSize:          aws.Int32(int32(p.volumeGiB)),
				VolumeType:          ec2types.VolumeTypeGp3,
				DeleteOnTermination: aws.Bool(true),
			},
		}},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeImage, Tags: tags}},
	}
}

// copyImage finds or makes the copy of home in region.
func (p *plan) copyImage(ctx context.Context, c Clients, home Image, region string) (*Image, error) {
	e := c.EC2(region)
	if img, err := p.findImage(ctx, e, region); err != nil {
		return nil, err
	} else if img != nil {
		p.progress("%s already has AMI %s (%s) in %s", p.name, aws.ToString(img.ImageId), img.State, region)
		return &Image{Region: region, ImageID: aws.ToString(img.ImageId), SnapshotID: snapshotOf(img), Existing: true}, nil
	}
	out, err := e.CopyImage(ctx, &ec2.CopyImageInput{
		Name:          aws.String(p.name),
		Description:   aws.String(fmt.Sprintf("Bulkhead %s %s", p.m.Name, p.m.Version)),
		SourceImageId: aws.String(home.ImageID),
		SourceRegion:  aws.String(home.Region),
		CopyImageTags: aws.Bool(true),
		ClientToken:   aws.String(p.name + "-" + region),
	})
	if err != nil {
		return nil, fmt.Errorf("copying AMI %s from %s to %s: %w", home.ImageID, home.Region, region, err)
	}
	id := aws.ToString(out.ImageId)
	p.progress("copied AMI %s to %s: %s", home.ImageID, region, id)
	return &Image{Region: region, ImageID: id}, nil
}

// share grants launch permission on every image to the accounts, once
// each image is available (a copy is pending for minutes).
func (p *plan) share(ctx context.Context, c Clients, images []Image) error {
	if len(p.o.Share) == 0 {
		return nil
	}
	var perms []ec2types.LaunchPermission
	for _, a := range p.o.Share {
		perms = append(perms, ec2types.LaunchPermission{UserId: aws.String(a)})
	}
	for _, img := range images {
		e := c.EC2(img.Region)
		w := ec2.NewImageAvailableWaiter(e, func(o *ec2.ImageAvailableWaiterOptions) { o.MinDelay, o.MaxDelay = p.o.Poll, p.o.Poll })
		if err := w.Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{img.ImageID}}, p.o.Wait); err != nil {
			return fmt.Errorf("waiting for AMI %s in %s to be available before sharing it: %w", img.ImageID, img.Region, err)
		}
		_, err := e.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
			ImageId:          aws.String(img.ImageID),
			LaunchPermission: &ec2types.LaunchPermissionModifications{Add: perms},
		})
		if err != nil {
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
