package storagesetup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// resolveInRoot follows symlinks in p the way readlink -e would, but keeps
// every step inside root, so /dev/disk/by-id links in a test tree resolve
// to the test tree's /dev. It returns the path as the system sees it.
func resolveInRoot(root fsroot.Root, p string) (string, error) {
	const maxLinks = 40
	done := "/"
	rest := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	links := 0
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, part)
		fi, err := os.Lstat(root.Join(next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolving %s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(root.Join(next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = "/"
		}
		rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
	}
	return done, nil
}

// isBlockDevice: a device node, or (in a test tree, where mknod needs root)
// any file whose name the kernel lists in /sys/class/block.
func isBlockDevice(root fsroot.Root, dev string) bool {
	fi, err := os.Stat(root.Join(dev))
	if err != nil {
		return false
	}
	if fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0 {
		return true
	}
	_, err = os.Stat(root.Join("/sys/class/block", path.Base(dev)))
	return err == nil
}

// blockDev is what lsblk says of a device and its children.
type blockDev struct {
	Name     string      `json:"name"`
	Type     string      `json:"type"`
	Size     json.Number `json:"size"` // a number in util-linux >= 2.33, a string before
	Children []blockDev  `json:"children"`
}

// firstPartition is the original's dev_query_first_child, limited to
// partitions (an LVM child of a whole-disk PV is not a partition).
func (b blockDev) firstPartition() string {
	for _, c := range b.Children {
		if c.Type == "part" {
			return c.Name
		}
	}
	return ""
}

func (b blockDev) bytes() uint64 {
	n, err := b.Size.Int64()
	if err != nil || n < 0 {
		return 0
	}
	return uint64(n)
}

func lsblk(ctx context.Context, r run.Runner, dev string) (blockDev, error) {
	out, err := r.Run(ctx, run.Cmd{Name: "lsblk", Args: []string{"--json", "--bytes", "--paths", "-o", "NAME,TYPE,SIZE", dev}})
	if err != nil {
		return blockDev{}, fmt.Errorf("running lsblk on %s: %w", dev, err)
	}
	var rep struct {
		BlockDevices []blockDev `json:"blockdevices"`
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.UseNumber()
	if err := dec.Decode(&rep); err != nil || len(rep.BlockDevices) == 0 {
		return blockDev{}, fmt.Errorf("reading lsblk output for %s: %v", dev, err)
	}
	return rep.BlockDevices[0], nil
}

// signature is one line of `wipefs -p` (parsable) output.
type signature struct{ Offset, UUID, Label, Type string }

// parseWipefs reads "# offset,uuid,label,type" followed by one CSV line per
// signature, as check_wipe_block_dev_sig in the original does.
func parseWipefs(out string) []signature {
	var sigs []signature
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, ",", 4)
		for len(f) < 4 {
			f = append(f, "")
		}
		sigs = append(sigs, signature{Offset: f[0], UUID: f[1], Label: f[2], Type: f[3]})
	}
	return sigs
}

// gptThreshold: an MBR (dos) partition table addresses at most 2^32
// sectors of 512 bytes, so disks over 2 TiB get GPT (the original's test
// 016-test-gpt-partition-table-creation-2tb.sh checks "label type gpt" on a
// 3T disk).
const gptThreshold = 2 << 40

// Partition types: 8e is "Linux LVM" for dos tables; for GPT the Linux
// LVM type GUID is E6D6D379-F507-44C2-A23C-238F2A3DF928.
const (
	dosLVMType = "8e"
	gptLVMType = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
)

// partitionScript is the sfdisk input for one partition over the whole disk
// starting at sector 2048, as create_partition_sfdisk in the original
// ("start= 2048, ... Id=8e"), with a GPT label for big disks.
func partitionScript(diskBytes uint64) string {
	if diskBytes > gptThreshold {
		return "label: gpt\nstart=2048, type=" + gptLVMType + "\n"
	}
	return "label: dos\nstart=2048, type=" + dosLVMType + "\n"
}

// splitPartition splits a partition device into disk and number, as
// growpart wants them: /dev/vda3 -> /dev/vda 3, /dev/nvme0n1p2 ->
// /dev/nvme0n1 2. The original's sed got the nvme case wrong.
func splitPartition(dev string) (disk, num string, ok bool) {
	i := len(dev)
	for i > 0 && dev[i-1] >= '0' && dev[i-1] <= '9' {
		i--
	}
	if i == len(dev) || i == 0 {
		return "", "", false
	}
	disk, num = dev[:i], dev[i:]
	// Names that end in a digit put a 'p' before the partition number.
	if strings.HasSuffix(disk, "p") && len(disk) > 1 && disk[len(disk)-2] >= '0' && disk[len(disk)-2] <= '9' {
		disk = disk[:len(disk)-1]
	}
	return disk, num, true
}

// errTimeout is returned by waitFor when the path never appeared.
var errTimeout = errors.New("timed out")

// waitFor polls until root has p or timeout passes (wait_for_dev in the
// original, which polled every 5 s; a second here). A zero timeout checks once.
func waitFor(ctx context.Context, root fsroot.Root, p string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		// Resolved inside root: an absolute link target must not be looked
		// up on the machine running the tests.
		if _, err := resolveInRoot(root, p); err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return errTimeout
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
