package ami

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// dataBlocks are the non-zero blocks of the test image; block 7 is written
// zeros, the rest of its 16 blocks (8 MiB) holes.
var dataBlocks = []int32{0, 1, 5, 15}

// testBuild makes a build output directory with a small sparse disk.raw.
func testBuild(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, manifest.DiskRaw)
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	const size = 16 * BlockSize
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	image := make([]byte, size)
	put := func(off, n int) {
		for i := off; i < off+n; i++ {
			image[i] = byte(r.IntN(255) + 1)
		}
		if _, err := f.WriteAt(image[off:off+n], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 70000)
	put(2*BlockSize-10, 10)
	put(5*BlockSize+4096, 300000)
	put(16*BlockSize-512, 512)
	if _, err := f.WriteAt(make([]byte, BlockSize), 7*BlockSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, sum, err := manifest.HashFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Build{Name: "default", Version: "1.2.3", RootHash: strings.Repeat("ab", 32), DiskSize: size,
		Parts: map[string]manifest.Part{manifest.PartRaw: {File: manifest.DiskRaw, Size: size, SHA256: sum}}}
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, image
}

func testOptions(dir string, out *bytes.Buffer) Options {
	o := Options{OutDir: dir, Region: "us-east-1", Jobs: 3, Poll: time.Millisecond, Wait: 10 * time.Second}
	if out != nil {
		o.Progress = out
	}
	return o
}

// checkSnapshot compares the snapshot's blocks with the image: exactly the
// non-zero blocks, each the image's bytes.
func checkSnapshot(t *testing.T, f *fakeAWS, id string, image []byte) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.snaps[id]
	if s == nil {
		t.Fatalf("no snapshot %s", id)
	}
	var got []int32
	for i, b := range s.Blocks {
		got = append(got, i)
		if !bytes.Equal(b, image[int(i)*BlockSize:(int(i)+1)*BlockSize]) {
			t.Errorf("block %d differs from the image", i)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, dataBlocks) {
		t.Errorf("snapshot blocks: got %v, want %v (zero blocks skipped)", got, dataBlocks)
	}
	if s.Status != "completed" || s.VolumeSize != 1 || s.Tags[TagVersion] != "1.2.3" {
		t.Errorf("snapshot: got status %s, %d GiB, tags %v", s.Status, s.VolumeSize, s.Tags)
	}
}

func TestPublishRegistersCopiesAndShares(t *testing.T) {
	f := newFakeAWS(t)
	dir, image := testBuild(t)
	var out bytes.Buffer
	o := testOptions(dir, &out)
	o.CopyTo = []string{"eu-west-1"}
	o.Share = []string{"123456789012"}
	o.Tags = map[string]string{"team": "infra"}
	res, err := Publish(context.Background(), f.clients(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Images) != 2 || res.Images[0].Region != "us-east-1" || res.Images[1].Region != "eu-west-1" {
		t.Fatalf("images: got %+v", res.Images)
	}
	home := res.Images[0]
	checkSnapshot(t, f, home.SnapshotID, image)
	for _, i := range []int32{2, 3, 4, 6, 7, 8, 14} {
		if n := f.ops("PutSnapshotBlock", i); n != 0 {
			t.Errorf("zero block %d sent %d times", i, n)
		}
	}

	f.mu.Lock()
	reg := f.images[home.ImageID]
	cp := f.images[res.Images[1].ImageID]
	f.mu.Unlock()
	if reg == nil || cp == nil {
		t.Fatalf("images not on the server: %+v", res.Images)
	}
	want := map[string]string{
		"Name": "bulkhead-default-1.2.3", "Architecture": "x86_64", "VirtualizationType": "hvm",
		"RootDeviceName": "/dev/xvda", "EnaSupport": "true", "BootMode": "uefi-preferred", "ImdsSupport": "v2.0",
		"BlockDeviceMapping.1.DeviceName": "/dev/xvda", "BlockDeviceMapping.1.Ebs.SnapshotId": home.SnapshotID,
		"BlockDeviceMapping.1.Ebs.VolumeSize": "1", "BlockDeviceMapping.1.Ebs.VolumeType": "gp3",
		"BlockDeviceMapping.1.Ebs.DeleteOnTermination": "true", "TagSpecification.1.ResourceType": "image",
	}
	for k, v := range want {
		if got := reg.Params.Get(k); got != v {
			t.Errorf("RegisterImage %s: got %q, want %q", k, got, v)
		}
	}
	if d := reg.Params.Get("Description"); !strings.Contains(d, "default 1.2.3") {
		t.Errorf("RegisterImage Description: got %q", d)
	}
	tags := map[string]string{}
	for i := 1; reg.Params.Has("TagSpecification.1.Tag." + strconv.Itoa(i) + ".Key"); i++ {
		tags[reg.Params.Get("TagSpecification.1.Tag."+strconv.Itoa(i)+".Key")] = reg.Params.Get("TagSpecification.1.Tag." + strconv.Itoa(i) + ".Value")
	}
	if tags["team"] != "infra" || tags[TagName] != "default" || tags[TagVersion] != "1.2.3" || tags[TagRootHash] == "" {
		t.Errorf("AMI tags: got %v", tags)
	}
	if cp.Params.Get("SourceRegion") != "us-east-1" || cp.Params.Get("SourceImageId") != home.ImageID ||
		cp.Params.Get("Name") != "bulkhead-default-1.2.3" || cp.Params.Get("CopyImageTags") != "true" {
		t.Errorf("CopyImage: got %v", cp.Params)
	}
	if !slices.Equal(reg.Shared, o.Share) || !slices.Equal(cp.Shared, o.Share) {
		t.Errorf("shared: home %v, copy %v, want %v each", reg.Shared, cp.Shared, o.Share)
	}
	if f.signed == 0 {
		t.Error("no request was signed")
	}
	if !strings.Contains(out.String(), home.ImageID) || !strings.Contains(out.String(), "blocks") {
		t.Errorf("output lacks the AMI id or the progress bar:\n%s", out.String())
	}

	// ami.json beside the manifest; the upload state is gone.
	var rec Record
	b, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Images) != 2 || rec.Images[0].ImageID != home.ImageID {
		t.Errorf("ami.json: got %s (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !os.IsNotExist(err) {
		t.Errorf("upload state left: %v", err)
	}

	// Again: found by name in both regions, nothing uploaded or registered.
	puts, regs := f.ops("PutSnapshotBlock", -1), f.ops("RegisterImage", -1)
	out.Reset()
	o.Share = nil
	again, err := Publish(context.Background(), f.clients(), o)
	if err != nil {
		t.Fatal(err)
	}
	if f.ops("PutSnapshotBlock", -1) != puts || f.ops("RegisterImage", -1) != regs || f.ops("StartSnapshot", -1) != 1 || f.ops("CopyImage", -1) != 1 {
		t.Error("the second run uploaded, registered or copied again")
	}
	if !again.Images[0].Existing || again.Images[0].ImageID != home.ImageID || !strings.Contains(out.String(), "already has AMI "+home.ImageID) {
		t.Errorf("second run: got %+v\n%s", again.Images, out.String())
	}
}

// TestPublishRetries injects throttling (429 ThrottlingException on a
// block, 400 RequestThrottledException on another, EC2's 503
// RequestLimitExceeded) and a server error on a block: all are sent again
// and the upload completes with every checksum right.
func TestPublishRetries(t *testing.T) {
	f := newFakeAWS(t)
	dir, image := testBuild(t)
	seen := map[string]int{}
	f.inject = func(c fakeCall) *fakeErr {
		key := c.Op + "/" + strconv.Itoa(int(c.Block))
		seen[key]++
		switch {
		case c.Op == "PutSnapshotBlock" && c.Block == 1 && seen[key] <= 2:
			return &fakeErr{Status: 429, Code: "ThrottlingException", Message: "slow down"}
		case c.Op == "PutSnapshotBlock" && c.Block == 0 && seen[key] <= 1:
			return &fakeErr{Status: 400, Code: "RequestThrottledException", Reason: "ACCOUNT_THROTTLED", Message: "slow down"}
		case c.Op == "PutSnapshotBlock" && c.Block == 5 && seen[key] <= 5: // more than one SDK call's attempts
			return &fakeErr{Status: 500, Code: "InternalServerException", Message: "oops"}
		case c.Op == "DescribeImages" && seen[key] <= 1:
			return &fakeErr{Status: 503, Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
		}
		return nil
	}
	var out bytes.Buffer
	res, err := Publish(context.Background(), f.clients(), testOptions(dir, &out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkSnapshot(t, f, res.Images[0].SnapshotID, image)
	for _, c := range []struct {
		block int32
		want  int
	}{{1, 3}, {0, 2}, {5, 6}, {15, 1}} {
		if n := f.ops("PutSnapshotBlock", c.block); n != c.want {
			t.Errorf("block %d: sent %d times, want %d", c.block, n, c.want)
		}
	}
	if n := f.ops("DescribeImages", -1); n < 2 {
		t.Errorf("DescribeImages called %d times, want a retry", n)
	}
}

// TestPublishResumes interrupts an upload (the context is cancelled when
// the last block arrives, as ^C would), then runs again: the same snapshot
// is completed, the blocks done before are not sent again.
func TestPublishResumes(t *testing.T) {
	f := newFakeAWS(t)
	dir, image := testBuild(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.inject = func(c fakeCall) *fakeErr {
		if c.Op == "PutSnapshotBlock" && c.Block == 15 {
			cancel()
			return &fakeErr{Status: 500, Code: "InternalServerException", Message: "connection lost"}
		}
		return nil
	}
	var out bytes.Buffer
	o := testOptions(dir, &out)
	o.Jobs = 1 // blocks in order: 0, 1, 5 done, 15 not
	_, err := Publish(ctx, f.clients(), o)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), StateFile) {
		t.Fatalf("interrupted run: got %v, want cancelled naming %s", err, StateFile)
	}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st uploadState
	json.Unmarshal(b, &st)
	if len(st.Done) != 3 || st.Done[15] != "" || st.SnapshotID == "" {
		t.Fatalf("state after the interruption: %s", b)
	}
	f.inject = nil
	before := map[int32]int{}
	for _, i := range dataBlocks {
		before[i] = f.ops("PutSnapshotBlock", i)
	}
	res, err := Publish(context.Background(), f.clients(), testOptions(dir, &out))
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out.String())
	}
	if res.Images[0].SnapshotID != st.SnapshotID || f.ops("StartSnapshot", -1) != 1 {
		t.Errorf("resumed into %s with %d StartSnapshot calls, want %s and 1", res.Images[0].SnapshotID, f.ops("StartSnapshot", -1), st.SnapshotID)
	}
	for _, i := range dataBlocks {
		sent := f.ops("PutSnapshotBlock", i) - before[i]
		if want := map[bool]int{true: 0, false: 1}[st.Done[i] != ""]; sent != want {
			t.Errorf("block %d sent %d times on resume, want %d", i, sent, want)
		}
	}
	checkSnapshot(t, f, st.SnapshotID, image)
	if !strings.Contains(out.String(), "resuming the upload to snapshot "+st.SnapshotID) {
		t.Errorf("output does not say it resumed:\n%s", out.String())
	}
}

// TestPublishAbandonsGoneSnapshot: a state naming a snapshot EBS does not
// know (expired) starts a new one.
func TestPublishAbandonsGoneSnapshot(t *testing.T) {
	f := newFakeAWS(t)
	dir, image := testBuild(t)
	m, _ := manifest.Read(dir)
	st := uploadState{SnapshotID: "snap-0000000000000dead", Region: "us-east-1", RawSize: m.DiskSize,
		RawSHA256: m.Parts[manifest.PartRaw].SHA256, Done: map[int32]string{0: "x"}}
	b, _ := json.Marshal(st)
	os.WriteFile(filepath.Join(dir, StateFile), b, 0o644)
	var out bytes.Buffer
	res, err := Publish(context.Background(), f.clients(), testOptions(dir, &out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Images[0].SnapshotID == st.SnapshotID || f.ops("StartSnapshot", -1) != 1 {
		t.Errorf("got snapshot %s after %d starts", res.Images[0].SnapshotID, f.ops("StartSnapshot", -1))
	}
	checkSnapshot(t, f, res.Images[0].SnapshotID, image)
}

func TestPublishDryRunCallsNothing(t *testing.T) {
	f := newFakeAWS(t)
	dir, _ := testBuild(t)
	var out bytes.Buffer
	o := testOptions(dir, &out)
	o.DryRun = true
	o.CopyTo = []string{"eu-central-1"}
	if _, err := Publish(context.Background(), f.clients(), o); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"4 of 16 blocks", "bulkhead-default-1.2.3", "uefi-preferred", "v2.0", "eu-central-1", "1 GiB"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("plan lacks %q:\n%s", s, out.String())
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("dry run called %v", f.calls)
	}
}

func TestPublishBadInput(t *testing.T) {
	f := newFakeAWS(t)
	for _, tc := range []struct {
		name  string
		setup func(dir string, o *Options)
		want  string
	}{
		{"no disk.raw", func(dir string, o *Options) { os.Remove(filepath.Join(dir, manifest.DiskRaw)) }, "disk.raw"},
		{"raw not whole blocks", func(dir string, o *Options) { os.Truncate(filepath.Join(dir, manifest.DiskRaw), 16*BlockSize+4096) }, "8392704 bytes, not a whole number of 512 KiB"},
		{"no manifest", func(dir string, o *Options) { os.Remove(filepath.Join(dir, manifest.ManifestFile)) }, "manifest"},
		{"no region", func(dir string, o *Options) { o.Region = "" }, "needs a region"},
		{"bad region", func(dir string, o *Options) { o.CopyTo = []string{"mars"} }, `region "mars"`},
		{"bad account", func(dir string, o *Options) { o.Share = []string{"12345"} }, `share "12345"`},
		{"reserved tag", func(dir string, o *Options) { o.Tags = map[string]string{"aws:x": "y"} }, `tag "aws:x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := testBuild(t)
			o := testOptions(dir, nil)
			tc.setup(dir, &o)
			_, err := Publish(context.Background(), f.clients(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if len(f.calls) != 0 {
		t.Errorf("bad input called AWS: %v", f.calls)
	}
}

// TestPublishClientErrorNotRetried: an EC2 error that is the caller's
// fault is not sent again, and its code and message reach the user.
func TestPublishClientErrorNotRetried(t *testing.T) {
	f := newFakeAWS(t)
	dir, _ := testBuild(t)
	f.inject = func(c fakeCall) *fakeErr {
		if c.Op == "RegisterImage" {
			return &fakeErr{Status: 400, Code: "InvalidParameterValue", Message: "bad boot mode"}
		}
		return nil
	}
	_, err := Publish(context.Background(), f.clients(), testOptions(dir, nil))
	var qe *QueryError
	if !errors.As(err, &qe) || qe.Code != "InvalidParameterValue" || !strings.Contains(err.Error(), "bad boot mode") {
		t.Fatalf("got %v, want the InvalidParameterValue error", err)
	}
	if n := f.ops("RegisterImage", -1); n != 1 {
		t.Errorf("RegisterImage sent %d times, want 1", n)
	}
}
