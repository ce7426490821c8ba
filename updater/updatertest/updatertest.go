package updatertest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/grubenv"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/verity"
)

// Build is a synthetic build output.
type Build struct {
	Dir      string // out/<name>
	Version  string
	RootHash string
	Usr      []byte
	Verity   []byte
	Kernel   []byte
	Initrd   []byte
}

// Args are the kernel arguments every fake build carries.
var Args = []string{"console=ttyS0,115200", "panic=10"}

// MakeBuild writes out/<name> for version under dir: usr.erofs of blocks
// 4 KiB blocks (content derived from the version), its veritysetup-format
// hash device, a kernel, an initrd and manifest.json.
func MakeBuild(t testing.TB, dir, version string, blocks int) Build {
	t.Helper()
	usr := make([]byte, blocks*verity.BlockSize)
	seed := sha256.Sum256([]byte(version))
	for i := range usr {
		usr[i] = seed[i%32] ^ byte(i/verity.BlockSize)
	}
	return MakeBuildFrom(t, dir, version, usr)
}

// MakeBuildFrom is MakeBuild with the given usr image (a whole number of
// 4 KiB blocks), for versions that share most of their bytes.
func MakeBuildFrom(t testing.TB, dir, version string, usr []byte) Build {
	t.Helper()
	out := filepath.Join(dir, "out-"+version, "default")
	seed := sha256.Sum256([]byte(version))
	blocks := len(usr) / verity.BlockSize
	salt := seed[:16]
	var hdev bytes.Buffer
	tree, err := verity.Format(&hdev, bytes.NewReader(usr), verity.Params{DataBlocks: uint64(blocks), Salt: salt})
	if err != nil {
		t.Fatal(err)
	}
	b := Build{Dir: out, Version: version, RootHash: tree.RootHex(), Usr: usr, Verity: hdev.Bytes(),
		Kernel: []byte("kernel " + version), Initrd: []byte("initrd " + version)}
	m := manifest.Build{
		Name: "default", Version: version, KernelVersion: "6.1.0-test-amd64", KernelArgs: Args,
		RootHash: b.RootHash, VeritySalt: hex.EncodeToString(salt), Parts: map[string]manifest.Part{},
	}
	for _, p := range []struct {
		key, file string
		data      []byte
	}{
		{manifest.PartUsr, manifest.UsrImage, b.Usr},
		{manifest.PartVerity, manifest.UsrVerity, b.Verity},
		{manifest.PartKernel, manifest.KernelImage, b.Kernel},
		{manifest.PartInitrd, manifest.InitrdImage, b.Initrd},
	} {
		WriteFile(t, filepath.Join(out, p.file), p.data)
		sum := sha256.Sum256(p.data)
		m.Parts[p.key] = manifest.Part{File: p.file, Size: int64(len(p.data)), SHA256: hex.EncodeToString(sum[:])}
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	WriteFile(t, filepath.Join(out, manifest.ManifestFile), mb)
	return b
}

// WriteFile writes a file, creating its directory.
func WriteFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Key is a signing key pair with its public key file's contents.
type Key struct {
	Private ed25519.PrivateKey
	PubFile []byte
}

// NewKey makes a signing key.
func NewKey(t testing.TB) Key {
	t.Helper()
	pub, priv, err := payload.GenerateKey(rand.Reader, "test")
	if err != nil {
		t.Fatal(err)
	}
	sk, err := payload.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Private: sk, PubFile: pub}
}

// Partition UUIDs of the fake disk.
var PartUUIDs = map[string]string{
	"root":         "11111111-0000-4000-8000-000000000001",
	"usr-a":        "11111111-0000-4000-8000-00000000000a",
	"usr-a-verity": "11111111-0000-4000-8000-0000000000aa",
	"usr-b":        "11111111-0000-4000-8000-00000000000b",
	"usr-b-verity": "11111111-0000-4000-8000-0000000000bb",
}

// PartSize is the size of each fake slot partition.
const PartSize = 1 << 20

// Host is a fake host root with slot A installed from build and booted.
type Host struct {
	Root fsroot.Root
}

// MakeHost lays out a root: the ESP with /efi/a (kernel, initrd, entry.cfg,
// release) and grub/grubenv (default a), an empty slot B, partitions as
// files under /parts linked from /dev/disk/by-partlabel and by-partuuid,
// /proc/cmdline as slot A's entry gives it, os-release, and the trusted key.
func MakeHost(t testing.TB, booted Build, key Key) Host {
	t.Helper()
	root := fsroot.Root(t.TempDir())
	h := Host{Root: root}
	for label, uuid := range PartUUIDs {
		part := root.Join("/parts", label)
		content := bytes.Repeat([]byte{0xee}, PartSize)
		switch label {
		case "usr-a":
			copy(content, booted.Usr)
		case "usr-a-verity":
			copy(content, booted.Verity)
		}
		WriteFile(t, part, content)
		for _, link := range []string{root.Join("/dev/disk/by-partlabel", label), root.Join("/dev/disk/by-partuuid", uuid)} {
			os.MkdirAll(filepath.Dir(link), 0o755)
			if err := os.Symlink("../../../parts/"+label, link); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := h.Entry(bootcfg.SlotA, booted)
	WriteFile(t, root.Join("/efi/a", bootcfg.KernelFile), booted.Kernel)
	WriteFile(t, root.Join("/efi/a", bootcfg.InitrdFile), booted.Initrd)
	WriteFile(t, root.Join("/efi/a", bootcfg.EntryFile), []byte(e.GrubConfig()))
	WriteFile(t, root.Join("/efi/a", bootcfg.ReleaseFile), []byte(e.Release("default")))
	os.MkdirAll(root.Join("/efi/grub"), 0o755)
	for _, name := range []string{bootcfg.ESPGrubEnv, bootcfg.ESPGrubEnvBackup} {
		if err := grubenv.Create(root.Join("/efi", name), bootcfg.State{Default: bootcfg.SlotA}.Env(grubenv.Env{})); err != nil {
			t.Fatal(err)
		}
	}
	WriteFile(t, root.Join("/proc/cmdline"), []byte("BOOT_IMAGE=/a/vmlinuz "+e.Cmdline()+"\n"))
	WriteFile(t, root.Join("/usr/lib/os-release"), []byte(fmt.Sprintf("NAME=\"Bulkhead\"\nID=bulkhead\nVERSION_ID=%q\n", booted.Version)))
	WriteFile(t, root.Join("/etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"))
	WriteFile(t, root.Join(payload.KeysDir, "test.pub"), key.PubFile)
	return h
}

// Entry is the boot entry of slot s holding build b on this fake disk.
func (h Host) Entry(s bootcfg.Slot, b Build) bootcfg.Entry {
	return bootcfg.Entry{
		Slot: s, Version: b.Version, RootPartUUID: PartUUIDs["root"],
		UsrPartUUID: PartUUIDs["usr-"+string(s)], VerityPartUUID: PartUUIDs["usr-"+string(s)+"-verity"],
		RootHash: b.RootHash, Args: Args,
	}
}

// Snapshot is the bytes of everything an update may touch, for proving that
// a refused update changed nothing.
func (h Host) Snapshot(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range []string{"/efi", "/parts"} {
		filepath.Walk(h.Root.Join(dir), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[h.Root.Rel(p)] = hex.EncodeToString(sum[:])
			return nil
		})
	}
	return out
}

// SameSnapshot fails the test when the two snapshots differ.
func SameSnapshot(t testing.TB, before, after map[string]string) {
	t.Helper()
	for p, s := range before {
		if after[p] != s {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// RandomBytes is n pseudo-random bytes from seed: incompressible, like an
// erofs image's compressed extents, and the same on every run.
func RandomBytes(seed uint64, n int) []byte {
	r := mrand.New(mrand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// BootChain is a synthetic boot chain, tagged: its files by chain file
// name (bootabi.ChainFiles), with a BIOS core of coreSectors sectors whose
// blocklist says so.
func BootChain(tag string, coreSectors int) map[string][]byte {
	core := bytes.Repeat([]byte("core "+tag+" "), coreSectors*512)[:coreSectors*512]
	binary.LittleEndian.PutUint16(core[512-12+8:], uint16(coreSectors-1))
	return map[string][]byte{
		bootabi.ChainGrubEFI:  []byte("grub efi " + tag),
		bootabi.ChainMM:       []byte("mok manager " + tag),
		bootabi.ChainShim:     []byte("shim " + tag),
		bootabi.ChainCore:     core,
		bootabi.ChainBootImg:  bytes.Repeat([]byte{tag[0]}, 512),
		bootabi.ChainGrubCfg:  []byte("# grub.cfg " + tag + "\n"),
		bootabi.ChainPackages: []byte("shim-signed=15." + tag + "\ngrub-efi-amd64-signed=2.06." + tag + "\ngrub-pc-bin=2.06." + tag + "\n"),
	}
}

// AddBootChain writes files into b's payload/bootchain/ and lists them in
// its manifest.json, as builder build does.
func AddBootChain(t testing.TB, b Build, files map[string][]byte) {
	t.Helper()
	p := filepath.Join(b.Dir, manifest.ManifestFile)
	m, err := manifest.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		file := manifest.BootChainFile(name)
		WriteFile(t, filepath.Join(b.Dir, file), data)
		sum := sha256.Sum256(data)
		m.Parts[bootabi.ChainPart(name)] = manifest.Part{File: file, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	WriteFile(t, p, mb)
}

// InstallESPChain puts a chain's ESP files on the host's ESP, as the
// builder does (no record).
func (h Host) InstallESPChain(t testing.TB, files map[string][]byte) {
	t.Helper()
	for _, f := range bootabi.ChainFiles {
		if f.ESP != "" {
			WriteFile(t, h.Root.Join("/efi", f.ESP), files[f.Name])
		}
	}
}
