package diskfmt

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/benchtable"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// BenchmarkConvertVersusQemuImg writes a stream-optimized VMDK and a
// fixed VHD of a 1 GiB sparse image holding 64 MiB of half-compressible
// data, with our writers and with qemu-img (the peer), and prints time and
// output size side by side: `go test -bench ConvertVersusQemuImg ./builder/diskfmt`.
func BenchmarkConvertVersusQemuImg(b *testing.B) {
	dir := b.TempDir()
	raw := filepath.Join(dir, manifest.DiskRaw)
	f, err := os.Create(raw)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(1 << 30)
	// Random 4 KiB pages between pages of text: about half compresses.
	chunk := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range chunk {
		if i/4096%2 == 0 {
			chunk[i] = byte(r.Uint32())
		} else {
			chunk[i] = "bulkhead container host "[i%24]
		}
	}
	for i := range 64 {
		chunk[0] = byte(i)
		f.WriteAt(chunk, int64(i)*(16<<20)) // spread over the disk
	}
	f.Close()
	times, sizes := benchtable.New("ms"), benchtable.New("MB")
	measure := func(row, out string, fn func() error) {
		os.Remove(out)
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatalf("%s: %v", row, err)
		}
		times.Add(row, float64(time.Since(start).Milliseconds()))
		st, _ := os.Stat(out)
		sizes.Add(row, float64(st.Size())/1e6)
	}
	qemu := func(args ...string) func() error {
		return func() error {
			if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}
	}
	ours := func(path string, write func(*os.File) error) func() error {
		return func() error { return writeFile(path, write) }
	}
	vmdk, vhd := filepath.Join(dir, "o.vmdk"), filepath.Join(dir, "o.vhd")
	qvmdk, qvhd := filepath.Join(dir, "q.vmdk"), filepath.Join(dir, "q.vhd")
	for range b.N * 3 {
		d := openRaw(b, raw)
		measure("vmdk bulkhead", vmdk, ours(vmdk, func(w *os.File) error { return WriteVMDK(w, d, VMDKOptions{FileName: "o.vmdk"}) }))
		measure("vmdk qemu-img", qvmdk, qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, qvmdk))
		measure("vhd bulkhead", vhd, ours(vhd, func(w *os.File) error { return WriteVHD(w, d, VHDOptions{}) }))
		measure("vhd qemu-img", qvhd, qemu("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, qvhd))
	}
	times.Write(os.Stdout)
	sizes.Write(os.Stdout)
}
