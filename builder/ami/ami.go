package ami

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/bulkhead-os/bulkhead/builder/rawdisk"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// EBS is what an upload needs of the EBS direct APIs (*ebs.Client).
type EBS interface {
	StartSnapshot(context.Context, *ebs.StartSnapshotInput, ...func(*ebs.Options)) (*ebs.StartSnapshotOutput, error)
	PutSnapshotBlock(context.Context, *ebs.PutSnapshotBlockInput, ...func(*ebs.Options)) (*ebs.PutSnapshotBlockOutput, error)
	CompleteSnapshot(context.Context, *ebs.CompleteSnapshotInput, ...func(*ebs.Options)) (*ebs.CompleteSnapshotOutput, error)
}

// Clients gives the AWS clients of a region.
type Clients interface {
	EBS(region string) EBS
	EC2(region string) EC2
}

// BlockSize is the EBS snapshot block size: 512 KiB.
const BlockSize = 512 << 10

// Options say what to publish where.
type Options struct {
	OutDir   string            // a build's output directory (out/<name>)
	Region   string            // where the snapshot is uploaded and the AMI registered
	CopyTo   []string          // other regions to copy the AMI to
	Share    []string          // AWS account IDs to share the AMI(s) with
	Tags     map[string]string // extra tags on the snapshot and the AMI(s)
	Jobs     int               // blocks uploaded at once (default 8)
	DryRun   bool              // print the plan, call nothing
	Progress io.Writer         // the plan, the progress bar and the results; nil for none
	Log      *slog.Logger
	// Poll is how often snapshot and image states are polled (default
	// 5 s), Wait how long for each at most (default 30 min).
	Poll, Wait time.Duration
}

// Image is one registered AMI.
type Image struct {
	Region     string `json:"region"`
	ImageID    string `json:"imageId"`
	SnapshotID string `json:"snapshotId,omitempty"`
	Existing   bool   `json:"-"` // found, not made by this run
}

// Result is what Publish did.
type Result struct {
	Name   string  // the AMI name
	Images []Image // the home region first
}

// Settings Bulkhead registers every AMI with.
const (
	Architecture   = "x86_64"
	RootDevice     = "/dev/xvda"
	BootMode       = "uefi-preferred" // BIOS and UEFI instance types alike
	IMDSSupport    = "v2.0"
	VolumeType     = "gp3"
	TagName        = "bulkhead:name"
	TagVersion     = "bulkhead:version"
	TagRootHash    = "bulkhead:root-hash"
	StateFile      = "ami-upload.json"
	RecordFile     = "ami.json"
	defaultJobs    = 8
	defaultPoll    = 5 * time.Second
	defaultWait    = 30 * time.Minute
	snapshotExpiry = 24 * 60 // minutes a pending snapshot waits for its blocks
)

// ImageName is the AMI name of a build: unique per name and version, as
// DescribeImages finds it again.
func ImageName(m *manifest.Build) string {
	return "bulkhead-" + m.Name + "-" + m.Version
}

var (
	amiNameRe = regexp.MustCompile(`^[A-Za-z0-9()\[\]./\-'@_ ]{3,128}$`)
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	accountRe = regexp.MustCompile(`^\d{12}$`)
)

// plan is the validated input of a run.
type plan struct {
	o          Options
	m          *manifest.Build
	disk       *rawdisk.Disk
	name       string
	volumeGiB  int64
	blocks     int64
	rawSHA256  string
	tags       map[string]string
	regions    []string // home first
	statePath  string
	recordPath string
}

func newPlan(o Options) (*plan, error) {
	if o.Region == "" {
		return nil, fmt.Errorf("publishing an AMI needs a region: --region, $AWS_REGION or the profile's region")
	}
	var probs []string
	for _, r := range append([]string{o.Region}, o.CopyTo...) {
		if !regionRe.MatchString(r) {
			probs = append(probs, fmt.Sprintf("region %q: not an AWS region name", r))
		}
	}
	for _, a := range o.Share {
		if !accountRe.MatchString(a) {
			probs = append(probs, fmt.Sprintf("share %q: not a 12-digit AWS account ID", a))
		}
	}
	for k := range o.Tags {
		if k == "" || strings.HasPrefix(strings.ToLower(k), "aws:") {
			probs = append(probs, fmt.Sprintf("tag %q: empty or reserved (aws:)", k))
		}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("publishing %s as an AMI: %s", o.OutDir, strings.Join(probs, "; "))
	}
	m, err := manifest.Read(o.OutDir)
	if err != nil {
		return nil, fmt.Errorf("publishing %s as an AMI (is it a build output directory?): %w", o.OutDir, err)
	}
	p := &plan{o: o, m: m, name: ImageName(m),
		statePath: filepath.Join(o.OutDir, StateFile), recordPath: filepath.Join(o.OutDir, RecordFile)}
	if !amiNameRe.MatchString(p.name) {
		return nil, fmt.Errorf("publishing %s as an AMI: name %q from the manifest is not a valid AMI name", o.OutDir, p.name)
	}
	raw := filepath.Join(o.OutDir, manifest.DiskRaw)
	if p.disk, err = rawdisk.Open(raw); err != nil {
		return nil, fmt.Errorf("publishing %s as an AMI: %w", o.OutDir, err)
	}
	size := p.disk.Size()
	switch {
	case size == 0 || size%BlockSize != 0:
		p.disk.Close()
		return nil, fmt.Errorf("publishing %s as an AMI: %s is %d bytes, not a whole number of %d KiB EBS blocks", o.OutDir, raw, size, BlockSize>>10)
	case m.DiskSize != 0 && m.DiskSize != size:
		p.disk.Close()
		return nil, fmt.Errorf("publishing %s as an AMI: %s is %d bytes, the manifest says %d", o.OutDir, raw, size, m.DiskSize)
	}
	p.blocks = size / BlockSize
	p.volumeGiB = (size + (1 << 30) - 1) >> 30
	if part, ok := m.Parts[manifest.PartRaw]; ok {
		p.rawSHA256 = part.SHA256
	}
	p.tags = map[string]string{TagName: m.Name, TagVersion: m.Version}
	if m.RootHash != "" {
		p.tags[TagRootHash] = m.RootHash
	}
	for k, v := range o.Tags {
		p.tags[k] = v
	}
	p.regions = append([]string{o.Region}, o.CopyTo...)
	slices.Sort(p.regions[1:])
	p.regions = slices.Compact(p.regions)
	if i := slices.Index(p.regions[1:], o.Region); i >= 0 {
		p.regions = slices.Delete(p.regions, i+1, i+2)
	}
	return p, nil
}

func (p *plan) progress(format string, args ...any) {
	if p.o.Progress != nil {
		fmt.Fprintf(p.o.Progress, format+"\n", args...)
	}
}

// Publish uploads, registers, copies and shares the AMI of o.OutDir, or,
// with DryRun, prints what it would do. An AMI already registered under
// the build's name in a region is kept, and said so.
func Publish(ctx context.Context, c Clients, o Options) (*Result, error) {
	if o.Jobs <= 0 {
		o.Jobs = defaultJobs
	}
	if o.Poll <= 0 {
		o.Poll = defaultPoll
	}
	if o.Wait <= 0 {
		o.Wait = defaultWait
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	p, err := newPlan(o)
	if err != nil {
		return nil, err
	}
	defer p.disk.Close()
	if o.DryRun {
		return p.printPlan()
	}
	res := &Result{Name: p.name}
	home, err := p.homeImage(ctx, c)
	if err != nil {
		return nil, err
	}
	res.Images = append(res.Images, *home)
	for _, region := range p.regions[1:] {
		img, err := p.copyImage(ctx, c, *home, region)
		if err != nil {
			return res, err
		}
		res.Images = append(res.Images, *img)
	}
	if err := p.share(ctx, c, res.Images); err != nil {
		return res, err
	}
	if err := p.record(res); err != nil {
		return res, err
	}
	return res, nil
}

// printPlan counts the blocks to upload and prints the plan.
func (p *plan) printPlan() (*Result, error) {
	var n int64
	if err := p.disk.Blocks(BlockSize, func(int64, []byte) error { n++; return nil }); err != nil {
		return nil, err
	}
	p.progress("plan (dry run, nothing is called):")
	p.progress("  image:      %s (%s %s)", p.name, p.m.Name, p.m.Version)
	p.progress("  upload:     %s, %d of %d blocks of 512 KiB are non-zero (%d MiB), to an EBS snapshot of %d GiB in %s",
		p.disk.Path(), n, p.blocks, n/2, p.volumeGiB, p.o.Region)
	p.progress("  register:   %s, %s root %s (%s), ENA, boot mode %s, IMDS %s", Architecture, "hvm", RootDevice, VolumeType, BootMode, IMDSSupport)
	if len(p.regions) > 1 {
		p.progress("  copy to:    %s", strings.Join(p.regions[1:], ", "))
	}
	if len(p.o.Share) > 0 {
		p.progress("  share with: %s", strings.Join(p.o.Share, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(p.tags)) {
		p.progress("  tag:        %s=%s", k, p.tags[k])
	}
	p.progress("  record:     %s", p.recordPath)
	return &Result{Name: p.name}, nil
}
