package slotwriter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-os/bulkhead/updater/verity"
)

// fixture is a slot image with its tree, as downloaded files, and two plain
// files standing in for the usr and verity partitions.
type fixture struct {
	slot             Slot
	usrDev, verDev   string
	usrData, verData []byte
}

func newFixture(t *testing.T, blocks int, partSize int64) fixture {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, blocks*verity.BlockSize)
	for i := range data {
		data[i] = byte(i*7 + i/4096)
	}
	var hdev bytes.Buffer
	tree, err := verity.Format(&hdev, bytes.NewReader(data), verity.Params{DataBlocks: uint64(blocks), Salt: []byte{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	old := bytes.Repeat([]byte{0xee}, int(partSize))
	f := fixture{
		usrDev: write("usr-b", old), verDev: write("usr-b-verity", old),
		usrData: data, verData: hdev.Bytes(),
	}
	f.slot = Slot{
		Usr:      Image{Name: "usr", Src: write("usr.erofs", data), Dev: f.usrDev, Size: int64(len(data)), SHA256: sum(data)},
		Verity:   Image{Name: "verity", Src: write("usr.verity", hdev.Bytes()), Dev: f.verDev, Size: int64(hdev.Len()), SHA256: sum(hdev.Bytes())},
		RootHash: tree.RootHex(),
	}
	return f
}

func TestWriteSlot(t *testing.T) {
	f := newFixture(t, 300, 2<<20)
	if err := (Writer{}).WriteSlot(context.Background(), f.slot); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f.usrDev)
	if !bytes.Equal(got[:len(f.usrData)], f.usrData) {
		t.Error("usr partition does not start with the image")
	}
	if len(got) != 2<<20 {
		t.Errorf("got partition of %d bytes, want it left at %d", len(got), 2<<20)
	}
}

// faultyDevice wraps a real file and misbehaves after a byte budget.
type faultyDevice struct {
	*os.File
	budget int64 // bytes WriteAt accepts before failing
	short  bool  // fail with a short write (no error) instead of an error
	flip   bool  // silently corrupt instead of failing (a bad disk)
}

var errInjected = errors.New("injected I/O error")

func (d *faultyDevice) WriteAt(b []byte, off int64) (int, error) {
	if d.flip && off == 0 {
		c := bytes.Clone(b)
		c[100] ^= 0xff
		return d.File.WriteAt(c, off)
	}
	if d.budget >= int64(len(b)) || d.flip {
		d.budget -= int64(len(b))
		return d.File.WriteAt(b, off)
	}
	n, _ := d.File.WriteAt(b[:d.budget], off)
	d.budget = 0
	if d.short {
		return n, nil
	}
	return n, errInjected
}

func TestWriteSlotFaults(t *testing.T) {
	cases := []struct {
		name   string
		dev    string // which device misbehaves: "usr" or "verity"
		fault  faultyDevice
		part   int64
		cancel bool
		want   error
	}{
		{"error mid usr", "usr", faultyDevice{budget: 1<<20 + 5}, 4 << 20, false, errInjected},
		{"short write usr", "usr", faultyDevice{budget: 4096, short: true}, 4 << 20, false, io.ErrShortWrite},
		{"error mid verity", "verity", faultyDevice{budget: 4096}, 4 << 20, false, errInjected},
		{"silent corruption", "usr", faultyDevice{flip: true}, 4 << 20, false, ErrReadBack},
		{"silent corruption of tree", "verity", faultyDevice{flip: true}, 4 << 20, false, ErrReadBack},
		{"partition too small", "", faultyDevice{}, 64 << 10, false, ErrTooSmall},
		{"cancelled", "", faultyDevice{}, 4 << 20, true, context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 600, c.part)
			w := Writer{Open: func(p string) (Device, error) {
				file, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					return nil, err
				}
				if (c.dev == "usr" && p == f.usrDev) || (c.dev == "verity" && p == f.verDev) {
					d := c.fault
					d.File = file
					return &d, nil
				}
				return file, nil
			}}
			ctx, cancel := context.WithCancel(context.Background())
			if c.cancel {
				cancel()
			}
			defer cancel()
			err := w.WriteSlot(ctx, f.slot)
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestWriteSlotRefusesUnalignedImage(t *testing.T) {
	f := newFixture(t, 3, 1<<20)
	f.slot.Usr.Size--
	if err := (Writer{}).WriteSlot(context.Background(), f.slot); !errors.Is(err, ErrNotBlockSize) {
		t.Errorf("got %v, want ErrNotBlockSize", err)
	}
}

// TestOpenDeviceExclusive (host integration): a block device another holder
// has open exclusively, as dm-verity holds the booted slot, is refused.
func TestOpenDeviceExclusive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: attaches a loop device")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Fatal("losetup not installed (apt-get install mount)")
	}
	img := filepath.Join(t.TempDir(), "part")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("needs loop devices: losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	d, err := OpenDevice(dev)
	if err != nil {
		t.Fatalf("opening a free loop device: %v", err)
	}
	defer d.Close()
	if _, err := OpenDevice(dev); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("got %v, want EBUSY for a device held exclusively", err)
	}
}

// TestWriteSlotFill: an image a Fill writes into the device (a delta
// update) is read back and verified like a copied one: the right bytes
// pass, one wrong byte is refused against the root hash.
func TestWriteSlotFill(t *testing.T) {
	for _, flip := range []bool{false, true} {
		f := newFixture(t, 300, 2<<20)
		f.slot.Usr.Src = "/nonexistent" // Fill, not a copy, must write it
		f.slot.Usr.Fill = func(_ context.Context, dev io.WriterAt) error {
			b := bytes.Clone(f.usrData)
			if flip {
				b[200_000] ^= 1
			}
			_, err := dev.WriteAt(b, 0)
			return err
		}
		err := (Writer{}).WriteSlot(context.Background(), f.slot)
		if flip && !errors.Is(err, ErrReadBack) {
			t.Errorf("corrupt fill: got %v, want ErrReadBack", err)
		}
		if !flip && err != nil {
			t.Errorf("good fill: %v", err)
		}
	}
}
