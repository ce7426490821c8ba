package diskfmt

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bulkhead-os/bulkhead/builder/rawdisk"
	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// testRaw writes a sparse raw image of size bytes: random data in a few
// places (in the first grain, across a 64 KiB grain boundary, past the
// first 32 MiB grain table with one table's worth left empty, in the last
// sector), a run of written zeros, and holes everywhere else.
func testRaw(t *testing.T, dir string, size int64) string {
	t.Helper()
	path := filepath.Join(dir, manifest.DiskRaw)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	put := func(off, n int64) {
		if off+n > size {
			return
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 4096)
	put(64<<10-700, 1400)
	put(3<<20, 1<<20)
	put(70<<20, 200<<10)
	put(size-512, 512)
	if size >= 6<<20 {
		if _, err := f.WriteAt(make([]byte, 1<<20), 5<<20); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// qemuToRaw converts img (of format) back to raw with qemu-img, the peer.
func qemuToRaw(t *testing.T, format, img string) string {
	t.Helper()
	out := img + ".back.raw"
	cmd := exec.Command("qemu-img", "convert", "-f", format, "-O", "raw", img, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert -f %s %s: %v: %s", format, img, err, b)
	}
	return out
}

// qemuInfo is what qemu-img info says about img.
func qemuInfo(t *testing.T, format, img string) map[string]any {
	t.Helper()
	b, err := exec.Command("qemu-img", "info", "-f", format, "--output=json", img).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v: %s", img, err, b)
	}
	var info map[string]any
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// sameContent fails unless got holds want's bytes followed by zeros up to
// wantSize.
func sameContent(t *testing.T, got, want string, wantSize int64) {
	t.Helper()
	g, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := os.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	st, _ := g.Stat()
	if st.Size() != wantSize {
		t.Fatalf("%s: got %d bytes, want %d", got, st.Size(), wantSize)
	}
	gb, wb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < wantSize; off += int64(len(gb)) {
		n, _ := io.ReadFull(g, gb)
		clear(wb)
		io.ReadFull(w, wb[:n])
		if !bytes.Equal(gb[:n], wb[:n]) {
			i := 0
			for gb[i] == wb[i] {
				i++
			}
			t.Fatalf("%s differs from %s at byte %d: got %#x, want %#x", got, want, off+int64(i), gb[i], wb[i])
		}
	}
}

func openRaw(t testing.TB, path string) *rawdisk.Disk {
	t.Helper()
	d, err := rawdisk.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestVMDKMatchesRawThroughQemu(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"whole grain tables", 96 << 20},
		{"partial last grain", 80<<20 + 3*512},
		{"one grain", 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := testRaw(t, dir, tc.size)
			vmdk := filepath.Join(dir, "disk.vmdk")
			f, err := os.Create(vmdk)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteVMDK(f, openRaw(t, raw), VMDKOptions{CID: 0x1234abcd, FileName: "disk.vmdk"}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if b, err := exec.Command("qemu-img", "check", "-f", "vmdk", vmdk).CombinedOutput(); err != nil {
				t.Errorf("qemu-img check: %v: %s", err, b)
			}
			info := qemuInfo(t, "vmdk", vmdk)
			spec, _ := json.Marshal(info["format-specific"])
			if !strings.Contains(string(spec), `"create-type":"streamOptimized"`) || !strings.Contains(string(spec), `"compressed":true`) {
				t.Errorf("qemu-img info: got %s, want a compressed streamOptimized extent", spec)
			}
			if vs := int64(info["virtual-size"].(float64)); vs != tc.size {
				t.Errorf("virtual size: got %d, want %d", vs, tc.size)
			}
			sameContent(t, qemuToRaw(t, "vmdk", vmdk), raw, tc.size)
			// Zero grains are not stored: the file is far smaller than
			// the disk's data extents.
			st, _ := os.Stat(vmdk)
			if tc.size > 1<<20 && st.Size() > 4<<20 {
				t.Errorf("VMDK of %d bytes for about 1.3 MiB of random data: zero grains stored?", st.Size())
			}
		})
	}
}

func TestVMDKRejectsPartialSector(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "odd.raw")
	os.WriteFile(raw, make([]byte, 1000), 0o644)
	err := WriteVMDK(io.Discard, openRaw(t, raw), VMDKOptions{})
	if err == nil || !strings.Contains(err.Error(), "odd.raw") || !strings.Contains(err.Error(), "multiple of 512") {
		t.Fatalf("got %v, want an error naming odd.raw and its size", err)
	}
}

func TestVHDMatchesRawThroughQemu(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"aligned", 40 << 20},
		{"padded to a MiB", 40<<20 + 7*512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := testRaw(t, dir, tc.size)
			vhd := filepath.Join(dir, "disk.vhd")
			f, err := os.Create(vhd)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteVHD(f, openRaw(t, raw), VHDOptions{Time: time.Unix(1767225600, 0)}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			want := VHDSize(tc.size)
			if want%(1<<20) != 0 || want < tc.size {
				t.Fatalf("VHDSize(%d) = %d", tc.size, want)
			}
			st, _ := os.Stat(vhd)
			if st.Size() != want+512 {
				t.Errorf("file size: got %d, want %d (disk + footer)", st.Size(), want+512)
			}
			if vs := int64(qemuInfo(t, "vpc", vhd)["virtual-size"].(float64)); vs != want {
				t.Errorf("qemu-img virtual size: got %d, want %d", vs, want)
			}
			sameContent(t, qemuToRaw(t, "vpc", vhd), raw, want)
		})
	}
}

// TestVHDFooterAgreesWithQemu compares our footer with the one qemu-img
// writes for a fixed disk: geometry, type, sizes, and a checksum that our
// function recomputes from qemu's bytes. Without force_size qemu rounds
// the size up to a whole CHS geometry and records that geometry, which the
// specification's algorithm must give back for that size.
func TestVHDFooterAgreesWithQemu(t *testing.T) {
	dir := t.TempDir()
	for _, req := range []int64{40 << 20, 3 << 30, 200 << 30, 5 << 20} {
		img := filepath.Join(dir, "q.vhd")
		os.Remove(img)
		if b, err := exec.Command("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", img, strconv.FormatInt(req, 10)).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img create: %v: %s", err, b)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		q := make([]byte, 512)
		st, _ := f.Stat()
		f.ReadAt(q, st.Size()-512)
		f.Close()
		size := int64(binary.BigEndian.Uint64(q[48:]))
		ours := vhdFooter(size, VHDOptions{})
		if got, want := binary.BigEndian.Uint32(q[64:]), vhdChecksum(q); got != want {
			t.Errorf("size %d: vhdChecksum of qemu's footer: got %#x, qemu wrote %#x", size, want, got)
		}
		for _, field := range []struct {
			name     string
			from, to int
		}{
			{"cookie", 0, 8}, {"features", 8, 12}, {"version", 12, 16}, {"data offset", 16, 24},
			{"original size", 40, 48}, {"current size", 48, 56}, {"geometry", 56, 60}, {"disk type", 60, 64},
		} {
			if !bytes.Equal(ours[field.from:field.to], q[field.from:field.to]) {
				t.Errorf("size %d: %s: got %x, qemu-img wrote %x", size, field.name, ours[field.from:field.to], q[field.from:field.to])
			}
		}
	}
}

func TestGCETarballExtractsWithGNUTar(t *testing.T) {
	dir := t.TempDir()
	const size = 24<<20 + 512
	raw := testRaw(t, dir, size)
	tgz := filepath.Join(dir, "disk.gce.tar.gz")
	f, err := os.Create(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteGCE(f, openRaw(t, raw), time.Unix(1767225600, 0)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// GNU tar, the peer: the one entry is an old-GNU sparse disk.raw.
	list, err := exec.Command("tar", "-tvzf", tgz).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tvzf: %v: %s", err, list)
	}
	if lines := strings.Split(strings.TrimSpace(string(list)), "\n"); len(lines) != 1 || !strings.HasSuffix(lines[0], " disk.raw") {
		t.Fatalf("tar -tv: got %q, want one entry disk.raw", list)
	}
	out := filepath.Join(dir, "x")
	os.Mkdir(out, 0o755)
	if b, err := exec.Command("tar", "-xzf", tgz, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, b)
	}
	sameContent(t, filepath.Join(out, "disk.raw"), raw, 1<<30)

	// Go's reader agrees, and the stream holds the data, not the holes.
	f, _ = os.Open(tgz)
	defer f.Close()
	zr, err := gzipReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{r: zr}
	tr := tar.NewReader(cr)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "disk.raw" || hdr.Size != 1<<30 || hdr.Format != tar.FormatGNU {
		t.Errorf("header: got %s %d bytes format %v, want disk.raw 1 GiB GNU", hdr.Name, hdr.Size, hdr.Format)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("second entry: got %v, want EOF", err)
	}
	io.Copy(io.Discard, cr)
	if cr.n > 4<<20 {
		t.Errorf("tar stream of %d bytes for a disk of ~2.5 MiB of data: holes stored?", cr.n)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestOldGNUSparseMapExtends(t *testing.T) {
	// 30 extents: 4 in the header, 21 + 5 in two extension blocks.
	var sp []sparseEntry
	for i := range 30 {
		sp = append(sp, sparseEntry{int64(i) * 4096, 512})
	}
	blocks := oldGNUSparseHeaders("disk.raw", time.Unix(0, 0), 1<<20, 30*512, sp)
	if len(blocks) != 3 {
		t.Fatalf("got %d blocks, want 3", len(blocks))
	}
	if blocks[0][482] != 1 || blocks[1][504] != 1 || blocks[2][504] != 0 {
		t.Errorf("isextended flags: got %d %d %d, want 1 1 0", blocks[0][482], blocks[1][504], blocks[2][504])
	}
	var stream bytes.Buffer
	for _, b := range blocks {
		stream.Write(b)
	}
	stream.Write(bytes.Repeat([]byte{7}, 30*512))
	stream.Write(make([]byte, 1024))
	tr := tar.NewReader(&stream)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Size != 1<<20 || len(data) != 1<<20 || data[29*4096+511] != 7 || data[29*4096+512] != 0 {
		t.Errorf("got size %d, %d bytes read", hdr.Size, len(data))
	}
}

func TestPutTarNumBase256(t *testing.T) {
	b := make([]byte, 12)
	putTarNum(b, 100<<30) // 100 GiB does not fit 11 octal digits
	if b[0] != 0x80 || binary.BigEndian.Uint64(b[4:]) != 100<<30 {
		t.Errorf("got %x, want base-256 of 100 GiB", b)
	}
	putTarNum(b, 0o644)
	if string(b) != "00000000644\x00" {
		t.Errorf("got %q, want octal", b)
	}
}

// fakeBuild makes an output directory like the builder's: disk.raw,
// disk.qcow2 (by qemu-img, as the builder makes it) and manifest.json.
func fakeBuild(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	raw := testRaw(t, dir, size)
	if b, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, filepath.Join(dir, manifest.DiskQcow2)).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, b)
	}
	m := &manifest.Build{Name: "default", Version: "1.2.3", SourceDateEpoch: 1767225600, DiskGUID: "6e7f7d7c-0000-4000-8000-000000000001", DiskSize: size,
		Parts: map[string]manifest.Part{}}
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConvertRecordsEveryFormat(t *testing.T) {
	dir := fakeBuild(t, 48<<20)
	var prog bytes.Buffer
	m, err := Convert(context.Background(), Options{OutDir: dir, Formats: Formats, Progress: &prog})
	if err != nil {
		t.Fatal(err)
	}
	back, err := manifest.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Formats {
		p, ok := back.Parts[string(f)]
		if !ok {
			t.Errorf("manifest: no part %s", f)
			continue
		}
		if p.File != FileName(f, "1.2.3") {
			t.Errorf("%s: file %s, want %s", f, p.File, FileName(f, "1.2.3"))
		}
		size, sum, err := manifest.HashFile(filepath.Join(dir, p.File))
		if err != nil {
			t.Fatal(err)
		}
		if size != p.Size || sum != p.SHA256 || m.Parts[string(f)] != p {
			t.Errorf("%s: manifest says %d %s, file is %d %s", f, p.Size, p.SHA256, size, sum)
		}
		if !strings.Contains(prog.String(), p.File) {
			t.Errorf("progress does not mention %s: %s", p.File, prog.String())
		}
	}
	if back.Parts[string(Vagrant)].File != "bulkhead-1.2.3.libvirt.box" {
		t.Errorf("box name: got %s", back.Parts[string(Vagrant)].File)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.partial"))
	tmps, _ := filepath.Glob(filepath.Join(dir, ".vagrant-*"))
	if len(left)+len(tmps) != 0 {
		t.Errorf("left behind: %v %v", left, tmps)
	}
	checkOVA(t, dir)
	checkVagrantBox(t, dir)
}

// readTar returns the files of a tar and their names in order.
func readTar(t *testing.T, path string) (map[string][]byte, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	files := map[string][]byte{}
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, names
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		files[hdr.Name], _ = io.ReadAll(tr)
		names = append(names, hdr.Name)
	}
}

func checkOVA(t *testing.T, dir string) {
	t.Helper()
	files, names := readTar(t, filepath.Join(dir, "disk.ova"))
	want := []string{"default-1.2.3.ovf", "default-1.2.3-disk1.vmdk", "default-1.2.3.mf"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("OVA entries: got %v, want %v (descriptor first)", names, want)
	}
	vmdk, _ := os.ReadFile(filepath.Join(dir, "disk.vmdk"))
	if !bytes.Equal(files[want[1]], vmdk) {
		t.Error("the OVA's VMDK is not disk.vmdk")
	}
	var env struct {
		File struct {
			Href string `xml:"href,attr"`
			Size int64  `xml:"size,attr"`
		} `xml:"References>File"`
		Disk struct {
			Capacity int64  `xml:"capacity,attr"`
			Format   string `xml:"format,attr"`
		} `xml:"DiskSection>Disk"`
		Items []struct {
			ResourceType int    `xml:"ResourceType"`
			SubType      string `xml:"ResourceSubType"`
			Quantity     int    `xml:"VirtualQuantity"`
		} `xml:"VirtualSystem>VirtualHardwareSection>Item"`
	}
	if err := xml.Unmarshal(files[want[0]], &env); err != nil {
		t.Fatalf("OVF descriptor: %v", err)
	}
	if env.File.Href != want[1] || env.File.Size != int64(len(vmdk)) || env.Disk.Capacity != 48<<20 ||
		!strings.HasSuffix(env.Disk.Format, "#streamOptimized") {
		t.Errorf("OVF references: got %+v %+v", env.File, env.Disk)
	}
	types := map[int]string{}
	for _, it := range env.Items {
		types[it.ResourceType] = it.SubType
	}
	if _, ok := types[17]; !ok || types[20] != "AHCI" || types[10] != "E1000" {
		t.Errorf("OVF hardware: got %v, want a disk on an AHCI controller and an E1000 card", types)
	}
	mf := string(files[want[2]])
	for _, n := range want[:2] {
		sum := sha256hex(files[n])
		if !strings.Contains(mf, "SHA256("+n+")= "+sum+"\n") {
			t.Errorf("manifest %q lacks %s's sha256 %s", mf, n, sum)
		}
	}
}

func checkVagrantBox(t *testing.T, dir string) {
	t.Helper()
	files, _ := readTar(t, filepath.Join(dir, "bulkhead-1.2.3.libvirt.box"))
	var meta struct {
		Provider    string `json:"provider"`
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual_size"`
	}
	if err := json.Unmarshal(files["metadata.json"], &meta); err != nil {
		t.Fatalf("metadata.json: %v", err)
	}
	if meta.Provider != "libvirt" || meta.Format != "qcow2" || meta.VirtualSize != 1 {
		t.Errorf("metadata.json: got %+v, want libvirt qcow2 of 1 GiB", meta)
	}
	qcow, _ := os.ReadFile(filepath.Join(dir, manifest.DiskQcow2))
	if !bytes.Equal(files["box.img"], qcow) {
		t.Error("box.img is not disk.qcow2")
	}
	vf := string(files["Vagrantfile"])
	for _, s := range []string{`libvirt.storage :file, device: :cdrom`, `"seed.iso"`, `synced_folder ".", "/vagrant", disabled: true`} {
		if !strings.Contains(vf, s) {
			t.Errorf("Vagrantfile lacks %s", s)
		}
	}
	iso := filepath.Join(t.TempDir(), "seed.iso")
	os.WriteFile(iso, files["seed.iso"], 0o644)
	sf, err := seed.Read(iso)
	if err != nil {
		t.Fatalf("the box's seed: %v", err)
	}
	if !bytes.Equal(sf.UserData, VagrantUserData()) || !strings.Contains(string(sf.MetaData), "instance-id:") {
		t.Errorf("seed: user-data %q meta-data %q", sf.UserData, sf.MetaData)
	}
}

// TestVagrantUserData parses the box's user-data with Bulkhead's own
// cloud-config parser: one vagrant user, passwordless sudo, and Vagrant's
// insecure RSA key alone, a valid authorized_keys line.
func TestVagrantUserData(t *testing.T) {
	cfg, probs := cloudconfig.Parse(VagrantUserData())
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	if len(cfg.Users) != 1 {
		t.Fatalf("got %d users, want 1", len(cfg.Users))
	}
	u := cfg.Users[0]
	if u.Name != "vagrant" || strings.Join(u.Sudo, ";") != "ALL=(ALL) NOPASSWD:ALL" || len(u.SSHAuthorizedKeys) != 1 {
		t.Fatalf("user: got %+v", u)
	}
	pk, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(u.SSHAuthorizedKeys[0]))
	if err != nil {
		t.Fatalf("key %q: %v", u.SSHAuthorizedKeys[0], err)
	}
	if pk.Type() != "ssh-rsa" || comment != "vagrant insecure public key" {
		t.Errorf("key: got %s %q, want Vagrant's insecure RSA key", pk.Type(), comment)
	}
}

// TestVagrantRemovesBoxKey holds the box's keys against what Debian's
// Vagrant removes from the guest once its own key is in: the lines of its
// keys/vagrant.pub (grep -v -x -f in the Linux guest's remove_public_key).
// Every key the box authorizes must be among them, or it stays in.
func TestVagrantRemovesBoxKey(t *testing.T) {
	out, err := exec.Command("ruby", "-e", `print Gem::Specification.find_by_name("vagrant").gem_dir`).Output()
	if err != nil {
		t.Fatalf("finding Debian's vagrant (make deps installs it): %v", err)
	}
	pub := filepath.Join(string(out), "keys", "vagrant.pub")
	data, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	removed := strings.Split(strings.TrimSpace(string(data)), "\n")
	cfg, _ := cloudconfig.Parse(VagrantUserData())
	if len(cfg.Users) != 1 || len(cfg.Users[0].SSHAuthorizedKeys) == 0 {
		t.Fatalf("no vagrant user with keys in the box's user-data")
	}
	for _, k := range cfg.Users[0].SSHAuthorizedKeys {
		if !slices.Contains(removed, k) {
			t.Errorf("the box authorizes %.40s..., which Vagrant leaves in authorized_keys (not a line of %s)", k, pub)
		}
	}
}

func TestConvertBadInput(t *testing.T) {
	ctx := context.Background()
	t.Run("no manifest", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Convert(ctx, Options{OutDir: dir, Formats: []Format{VHD}})
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("got %v, want an error naming %s", err, dir)
		}
	})
	t.Run("no disk.raw", func(t *testing.T) {
		dir := fakeBuild(t, 1<<20)
		os.Remove(filepath.Join(dir, manifest.DiskRaw))
		_, err := Convert(ctx, Options{OutDir: dir, Formats: []Format{VHD}})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "disk.raw") {
			t.Fatalf("got %v, want not-exist naming disk.raw", err)
		}
	})
	t.Run("raw not whole sectors", func(t *testing.T) {
		dir := fakeBuild(t, 1<<20)
		os.Truncate(filepath.Join(dir, manifest.DiskRaw), 1<<20+100)
		_, err := Convert(ctx, Options{OutDir: dir, Formats: []Format{VMDK}})
		if err == nil || !strings.Contains(err.Error(), "1048676 bytes") {
			t.Fatalf("got %v, want an error giving the size", err)
		}
	})
	t.Run("box without qcow2", func(t *testing.T) {
		dir := fakeBuild(t, 1<<20)
		os.Remove(filepath.Join(dir, manifest.DiskQcow2))
		_, err := Convert(ctx, Options{OutDir: dir, Formats: []Format{Vagrant}})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "disk.qcow2") {
			t.Fatalf("got %v, want not-exist naming disk.qcow2", err)
		}
		if m, _ := manifest.Read(dir); len(m.Parts) != 0 {
			t.Errorf("manifest lists %v after a failure", m.Parts)
		}
	})
}

func TestParseFormats(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"vhd,vmdk", "vmdk vhd", ""},
		{"ova", "ova", ""},
		{"all", "vmdk ova vhd gce vagrant-libvirt", ""},
		{"vhd, vhd", "vhd", ""},
		{"qcow3", "", `unknown format "qcow3"`},
	} {
		got, err := ParseFormats(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want error %q", tc.in, err, tc.err)
			}
			continue
		}
		var s []string
		for _, f := range got {
			s = append(s, string(f))
		}
		if err != nil || strings.Join(s, " ") != tc.want {
			t.Errorf("%q: got %v %v, want %s", tc.in, s, err, tc.want)
		}
	}
}

// TestConvertReproducible converts the same build twice: every file is
// the same bytes, as the manifest's promise (same inputs, same manifest)
// asks.
func TestConvertReproducible(t *testing.T) {
	dir := fakeBuild(t, 8<<20)
	first, err := Convert(context.Background(), Options{OutDir: dir, Formats: Formats})
	if err != nil {
		t.Fatal(err)
	}
	parts := maps.Clone(first.Parts)
	second, err := Convert(context.Background(), Options{OutDir: dir, Formats: Formats})
	if err != nil {
		t.Fatal(err)
	}
	for k, p := range parts {
		if second.Parts[k] != p {
			t.Errorf("%s: first %+v, then %+v", k, p, second.Parts[k])
		}
	}
}

// TestConvertDoesNotFollowLinks: a symlink planted at an output's
// temporary name is replaced, and its target left alone.
func TestConvertDoesNotFollowLinks(t *testing.T) {
	dir := fakeBuild(t, 1<<20)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	if err := os.Symlink(victim, filepath.Join(dir, "disk.vhd.partial")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "disk.vhd")); err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(context.Background(), Options{OutDir: dir, Formats: []Format{VHD}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	if st, err := os.Lstat(filepath.Join(dir, "disk.vhd")); err != nil || !st.Mode().IsRegular() || st.Size() != 1<<20+512 {
		t.Errorf("disk.vhd: %v %v", st, err)
	}
}
