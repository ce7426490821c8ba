package ami

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/smithy-go"
)

// uploadState is ami-upload.json, written beside the manifest while a
// snapshot is being uploaded and removed once it is complete. An upload
// that was interrupted (^C, a network failure, a crash) is resumed by the
// next run: if the state names the same image (disk.raw's sha256 and size)
// and region, its snapshot is still pending (EBS keeps it for the Timeout
// given at StartSnapshot, 24 h here) and the blocks listed as done are not
// sent again. Their checksums are recomputed from disk.raw for the
// aggregate checksum, so a block is only ever trusted if it still hashes
// the same. A snapshot EBS no longer knows, or no longer takes blocks
// for, is abandoned and a new one started.
type uploadState struct {
	SnapshotID string           `json:"snapshotId"`
	Region     string           `json:"region"`
	RawSize    int64            `json:"rawSize"`
	RawSHA256  string           `json:"rawSHA256"`
	Done       map[int32]string `json:"done"` // block index -> base64 SHA-256 sent
}

func (p *plan) readState() *uploadState {
	b, err := os.ReadFile(p.statePath)
	if err != nil {
		return nil
	}
	var s uploadState
	if json.Unmarshal(b, &s) != nil || s.SnapshotID == "" || s.Region != p.o.Region ||
		s.RawSize != p.disk.Size() || s.RawSHA256 != p.rawSHA256 {
		return nil
	}
	if s.Done == nil {
		s.Done = map[int32]string{}
	}
	return &s
}

func (p *plan) writeState(s *uploadState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := p.statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("saving upload state %s: %w", p.statePath, err)
	}
	if err := os.Rename(tmp, p.statePath); err != nil {
		return fmt.Errorf("saving upload state %s: %w", p.statePath, err)
	}
	return nil
}

// errSnapshotGone says a resumed snapshot cannot take blocks any more.
var errSnapshotGone = errors.New("snapshot no longer pending")

// uploadSnapshot uploads disk.raw to a new (or resumed) EBS snapshot and
// completes it; it returns the snapshot ID.
func (p *plan) uploadSnapshot(ctx context.Context, c EBS) (string, error) {
	if s := p.readState(); s != nil {
		p.progress("resuming the upload to snapshot %s (%d blocks already sent)", s.SnapshotID, len(s.Done))
		id, err := p.upload(ctx, c, s)
		if !errors.Is(err, errSnapshotGone) {
			return id, err
		}
		p.progress("snapshot %s no longer takes blocks (%v): starting a new one", s.SnapshotID, err)
	}
	tags := make([]ebstypes.Tag, 0, len(p.tags))
	for _, k := range slices.Sorted(maps.Keys(p.tags)) {
		tags = append(tags, ebstypes.Tag{Key: aws.String(k), Value: aws.String(p.tags[k])})
	}
	out, err := c.StartSnapshot(ctx, &ebs.StartSnapshotInput{
		VolumeSize:  aws.Int64(p.volumeGiB),
		Description: aws.String(p.name),
		Tags:        tags,
		Timeout:     aws.Int32(snapshotExpiry),
		ClientToken: aws.String(fmt.Sprintf("%s-%d", p.name, time.Now().UnixNano())),
	})
	if err != nil {
		return "", fmt.Errorf("starting an EBS snapshot of %d GiB in %s: %w", p.volumeGiB, p.o.Region, err)
	}
	if out.BlockSize != nil && *out.BlockSize != BlockSize {
		return "", fmt.Errorf("snapshot %s has blocks of %d bytes, want %d", aws.ToString(out.SnapshotId), *out.BlockSize, BlockSize)
	}
	s := &uploadState{SnapshotID: aws.ToString(out.SnapshotId), Region: p.o.Region, RawSize: p.disk.Size(),
		RawSHA256: p.rawSHA256, Done: map[int32]string{}}
	if err := p.writeState(s); err != nil {
		return "", err
	}
	p.progress("uploading %s to snapshot %s in %s", p.disk.Path(), s.SnapshotID, p.o.Region)
	return p.upload(ctx, c, s)
}

type block struct {
	index int32
	data  []byte
	sum   string
}

// upload sends the blocks not yet done, in parallel, then completes the
// snapshot with the aggregate (LINEAR) checksum of every non-zero block.
func (p *plan) upload(ctx context.Context, c EBS, s *uploadState) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		sums     = map[int32]string{}
		work     = make(chan block, p.o.Jobs)
		wg       sync.WaitGroup
		lastSave time.Time
	)
	bar := newBar(p.o.Progress, 0)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for range p.o.Jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := p.putBlock(ctx, c, s.SnapshotID, b); err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				s.Done[b.index] = b.sum
				var err error
				if time.Since(lastSave) > time.Second {
					lastSave = time.Now()
					err = p.writeState(s)
				}
				mu.Unlock()
				bar.add(1, int64(len(b.data)))
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	// One pass hashes every non-zero block; the ones not done are sent.
	var total, toSend int64
	err := p.disk.Blocks(BlockSize, func(i int64, data []byte) error {
		sum := sha256.Sum256(data)
		b := block{index: int32(i), sum: base64.StdEncoding.EncodeToString(sum[:])}
		total++
		sums[b.index] = b.sum
		mu.Lock()
		done := s.Done[b.index] == b.sum
		mu.Unlock()
		if done {
			return nil
		}
		toSend++
		bar.grow(1)
		b.data = bytes.Clone(data)
		select {
		case work <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	wg.Wait()
	bar.finish()
	if firstErr != nil {
		err = firstErr
	}
	// What was sent is kept for the next run, failed or not.
	if serr := p.writeState(s); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return "", fmt.Errorf("uploading %s to snapshot %s (%s has the blocks sent so far; run again to resume): %w",
			p.disk.Path(), s.SnapshotID, p.statePath, err)
	}
	p.o.Log.Info("snapshot blocks sent", "snapshot", s.SnapshotID, "sent", toSend, "nonzero", total, "blocks", p.blocks)

	// LINEAR: the SHA-256 of the blocks' SHA-256s in ascending index order.
	idx := make([]int32, 0, len(sums))
	for i := range sums {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	agg := sha256.New()
	for _, i := range idx {
		raw, _ := base64.StdEncoding.DecodeString(sums[i])
		agg.Write(raw)
	}
	out, err := c.CompleteSnapshot(ctx, &ebs.CompleteSnapshotInput{
		SnapshotId:                aws.String(s.SnapshotID),
		ChangedBlocksCount:        aws.Int32(int32(len(idx))),
		Checksum:                  aws.String(base64.StdEncoding.EncodeToString(agg.Sum(nil))),
		ChecksumAlgorithm:         ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		ChecksumAggregationMethod: ebstypes.ChecksumAggregationMethodChecksumAggregationLinear,
	})
	if err != nil {
		if gone(err) {
			return "", fmt.Errorf("completing snapshot %s: %w: %w", s.SnapshotID, errSnapshotGone, err)
		}
		return "", fmt.Errorf("completing snapshot %s (%d blocks): %w", s.SnapshotID, len(idx), err)
	}
	if out.Status == ebstypes.StatusError {
		return "", fmt.Errorf("completing snapshot %s: EBS says error", s.SnapshotID)
	}
	if err := os.Remove(p.statePath); err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("removing upload state %s: %w", p.statePath, err)
	}
	return s.SnapshotID, nil
}

// blockAttempts is how often one block is sent before the upload fails;
// each attempt is itself retried by the SDK's retryer on throttling and
// server errors.
const blockAttempts = 4

// putBlock sends one block with its checksum, again on failure.
func (p *plan) putBlock(ctx context.Context, c EBS, snap string, b block) error {
	var err error
	for attempt := range blockAttempts {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * p.o.Poll / 10):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		_, err = c.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{
			SnapshotId:        aws.String(snap),
			BlockIndex:        aws.Int32(b.index),
			BlockData:         bytes.NewReader(b.data),
			DataLength:        aws.Int32(int32(len(b.data))),
			Checksum:          aws.String(b.sum),
			ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if gone(err) {
			return fmt.Errorf("sending block %d: %w: %w", b.index, errSnapshotGone, err)
		}
		if final(err) {
			break
		}
		p.o.Log.Warn("block not taken, sending it again", "snapshot", snap, "block", b.index, "attempt", attempt+1, "err", err)
	}
	return fmt.Errorf("sending block %d: %w", b.index, err)
}

// gone reports an error that means the snapshot cannot take blocks: EBS
// does not know it (ResourceNotFoundException), or not as a snapshot being
// written (ValidationException INVALID_SNAPSHOT_ID: it expired or was
// completed).
func gone(err error) bool {
	var nf *ebstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return true
	}
	var ve *ebstypes.ValidationException
	return errors.As(err, &ve) && (ve.Reason == ebstypes.ValidationExceptionReasonInvalidSnapshotId)
}

// final reports an error that sending again cannot fix.
func final(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "AccessDeniedException", "ValidationException", "ServiceQuotaExceededException":
		return true
	}
	return false
}
