package growpart

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/run"
)

// noKernel runs commands for real except partx, which needs a block device
// the kernel knows; these tests partition image files. It records partx.
type noKernel struct {
	run.Exec
	partx *int
}

func (r noKernel) Run(ctx context.Context, c run.Cmd) ([]byte, error) {
	if c.Name == "partx" {
		*r.partx++
		return nil, nil
	}
	return r.Exec.Run(ctx, c)
}

// A disk that grew: partition 2 reaches the new end, partition 1 is
// untouched, a GPT's backup header follows the disk (sfdisk --verify is
// clean), the kernel is told once, and a second run changes nothing.
func TestGrowImageFile(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Fatal("needs sfdisk (Debian package fdisk)")
	}
	for _, label := range []string{"dos", "gpt"} {
		t.Run(label, func(t *testing.T) {
			ctx := context.Background()
			img := imageFile(t, 1<<30)
			var partx int
			r := noKernel{run.Exec{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, &partx}
			layout := "label: " + label + "\nstart=2048, size=100MiB\nsize=200MiB\n"
			if _, err := r.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{"-q", img}, Stdin: strings.NewReader(layout)}); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 2<<30); err != nil {
				t.Fatal(err)
			}
			if changed, err := Grow(ctx, r, img, "2"); err != nil || !changed {
				t.Fatalf("Grow: changed %v, err %v; want true, nil", changed, err)
			}
			out, err := r.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{"--json", img}})
			if err != nil {
				t.Fatal(err)
			}
			var table struct {
				PartitionTable struct {
					Partitions []struct{ Start, Size uint64 }
				}
			}
			if err := json.Unmarshal(out, &table); err != nil {
				t.Fatal(err)
			}
			ps := table.PartitionTable.Partitions
			if len(ps) != 2 || ps[0].Size != 100<<11 {
				t.Fatalf("got partitions %+v, want 2 with the first one 100 MiB", ps)
			}
			// dos: to the last sector; GPT: to the last usable one, 33
			// sectors before the end, rounded down to the 1 MiB alignment.
			end, want := ps[1].Start+ps[1].Size, uint64(2<<30)/512
			if end > want || want-end > 2048 {
				t.Errorf("partition 2 ends at sector %d, want the disk's end %d", end, want)
			}
			// --verify reports problems on stderr and exits 0.
			if out, err := exec.Command("sfdisk", "--verify", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
				t.Errorf("sfdisk --verify: %s %v", out, err)
			}
			if changed, err := Grow(ctx, r, img, "2"); err != nil || changed {
				t.Errorf("second Grow: changed %v, err %v; want false, nil", changed, err)
			}
			if partx != 1 {
				t.Errorf("partx ran %d times, want once (only when the table changed)", partx)
			}
		})
	}
}

// A partition number the table does not have is an error naming it.
func TestGrowMissingPartition(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Fatal("needs sfdisk (Debian package fdisk)")
	}
	ctx := context.Background()
	img := imageFile(t, 64<<20)
	r := run.Exec{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := r.Run(ctx, run.Cmd{Name: "sfdisk", Args: []string{"-q", img}, Stdin: strings.NewReader("label: dos\nstart=2048, size=10MiB\n")}); err != nil {
		t.Fatal(err)
	}
	_, err := Grow(ctx, r, img, "3")
	if err == nil || !strings.Contains(err.Error(), "growing partition 3 of "+img) {
		t.Errorf("got %v, want an error about partition 3 of %s", err, img)
	}
}

// imageFile is a sparse file of size bytes standing in for a disk.
func imageFile(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	return img
}
