package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

func timeOf(epoch int64) time.Time { return time.Unix(epoch, 0) }

// WriteGPT writes a GPT (with a protective MBR) for parts onto a new sparse
// file of size bytes. The GUIDs are the caller's, so the table is the same
// bytes for the same inputs.
func WriteGPT(path string, size int64, diskGUID string, parts []manifest.Partition) error {
	_ = os.Remove(path)
	d, err := diskfs.Create(path, size, diskfs.SectorSizeDefault)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	defer d.Close()
	t := &gpt.Table{
		LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize,
		ProtectiveMBR: true, GUID: strings.ToUpper(diskGUID),
	}
	for i, p := range parts {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: i + 1,
			Start: uint64(p.Start / sectorSize), End: uint64((p.Start+p.Size)/sectorSize - 1),
			Type: gpt.Type(p.Type), Name: p.Label, GUID: strings.ToUpper(p.UUID),
		})
	}
	if err := d.Partition(t); err != nil {
		return fmt.Errorf("writing partition table to %s: %w", path, err)
	}
	return nil
}

// disk assembles disk.raw: the GPT, each partition's content copied in
// sparsely (zero blocks are skipped, so the file stays sparse), and GRUB's
// BIOS boot code in sector 0 and the BIOS boot partition. Slot B stays empty.
func (s *buildState) disk(ctx context.Context) error {
	raw := s.path(manifest.DiskRaw)
	if err := WriteGPT(raw, s.diskSize, bootabi.PristineDiskGUID, s.parts); err != nil {
		return err
	}
	f, err := os.OpenFile(raw, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	contents := map[string]string{
		LabelESP:        filepath.Join(s.work, "esp.img"),
		LabelUsrA:       s.path(manifest.UsrImage),
		LabelUsrAVerity: s.path(manifest.UsrVerity),
		LabelRoot:       filepath.Join(s.work, "root.img"),
	}
	for label, src := range contents {
		if err := s.fits(src, label); err != nil {
			return err
		}
		if err := copySparse(f, s.part(label).Start, src); err != nil {
			return fmt.Errorf("writing partition %s: %w", label, err)
		}
	}
	bootImg, err := os.ReadFile(s.path(manifest.BootChainFile(bootabi.ChainBootImg)))
	if err != nil {
		return fmt.Errorf("reading GRUB's boot.img: %w", err)
	}
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	coreLBA := uint64(s.part(LabelBIOS).Start / sectorSize)
	sector0, core, err := bootabi.PatchBootSectors(bootImg, mbr, s.coreImg, coreLBA)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(sector0, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(core, int64(coreLBA)*sectorSize); err != nil {
		return err
	}
	return f.Sync()
}

// copySparse copies src into dst at off, skipping all-zero blocks (dst is
// a fresh sparse file, so they read as zero already).
func copySparse(dst *os.File, off int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for pos := int64(0); ; {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
