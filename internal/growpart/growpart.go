package growpart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Grow grows partition num of disk (e.g. "/dev/vda", "2") as far as the
// free space after it allows and tells the kernel. It reports whether the
// table changed; a partition that already ends where it can is no error,
// so callers can run it every boot.
//
// sfdisk moves the partition's end, and with a GPT the backup header to the
// disk's end. --no-reread skips the "disk in use" check and the table
// re-read the kernel would refuse; partx then updates the one partition
// through BLKPG, which works while it is mounted or a PV.
func Grow(ctx context.Context, r run.Runner, disk, num string) (bool, error) {
	before, err := dump(ctx, r, disk)
	if err != nil {
		return false, err
	}
	// sfdisk -N on a number the table lacks would create the partition.
	if !has(before, disk, num) {
		return false, fmt.Errorf("growing partition %s of %s: the partition table has no partition %s", num, disk, num)
	}
	grow := run.Cmd{Name: "sfdisk", Args: []string{"--no-reread", "--no-tell-kernel", "-q", "-N", num, disk}, Stdin: strings.NewReader(", +\n")}
	if _, err := r.Run(ctx, grow); err != nil {
		return false, fmt.Errorf("growing partition %s of %s: %w", num, disk, err)
	}
	after, err := dump(ctx, r, disk)
	if err != nil {
		return false, err
	}
	if bytes.Equal(before, after) {
		return false, nil
	}
	if _, err := r.Run(ctx, run.Cmd{Name: "partx", Args: []string{"--update", "--nr", num, disk}}); err != nil {
		return true, fmt.Errorf("telling the kernel the new size of partition %s of %s: %w", num, disk, err)
	}
	return true, nil
}

// has reports whether an sfdisk --json table lists partition num; its node
// is the disk's name and the number, with a "p" between two digits
// (/dev/nvme0n1p2).
func has(table []byte, disk, num string) bool {
	var t struct {
		PartitionTable struct{ Partitions []struct{ Node string } }
	}
	if json.Unmarshal(table, &t) != nil {
		return false
	}
	for _, p := range t.PartitionTable.Partitions {
		if p.Node == disk+num || p.Node == disk+"p"+num {
			return true
		}
	}
	return false
}

func dump(ctx context.Context, r run.Runner, disk string) ([]byte, error) {
	out, err := r.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{"--json", disk}})
	if err != nil {
		return nil, fmt.Errorf("reading the partition table of %s: %w", disk, err)
	}
	return out, nil
}
