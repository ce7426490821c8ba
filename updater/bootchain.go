package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/bootabi"
	"github.com/bulkhead-os/bulkhead/internal/bootdisk"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/updater/bootchain"
	"github.com/bulkhead-os/bulkhead/updater/payload"
	"github.com/bulkhead-os/bulkhead/updater/repo"
)

// BootIDFile is the running kernel's boot ID.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// BootID reads the running kernel's boot ID under root, "" when unknown.
func BootID(root fsroot.Root) string {
	b, _ := os.ReadFile(root.Join(BootIDFile))
	return strings.TrimSpace(string(b))
}

// BootChainPlan says what an update does to the boot chain.
type BootChainPlan struct {
	From     string `json:"from"`               // the installed chain's version (bootchain.Unknown without a record)
	FromNote string `json:"fromNote,omitempty"` // its package versions, for people
	To       string `json:"to,omitempty"`       // the version's chain; "" when its manifest has none
	ToNote   string `json:"toNote,omitempty"`   // the new chain's package versions, for people
	Install  bool   `json:"install,omitempty"`  // To differs from From: installed before the trial is set
	// ESPBytes is what installing it needs on the ESP: the new files and
	// the .prev copies of the old ones.
	ESPBytes int64 `json:"espBytes,omitempty"`
}

// planBootChain compares the installed chain with the manifest's.
func (u *Updater) planBootChain(m *payload.Manifest) (*BootChainPlan, error) {
	esp := u.host().ESP()
	rec, err := bootchain.ReadRecord(esp)
	if err != nil {
		return nil, err
	}
	from := bootchain.Unknown
	bp := &BootChainPlan{To: m.BootChainVersion()}
	if rec != nil {
		from, bp.FromNote = rec.Version, packagesNote(rec.Packages)
	}
	bp.From = from
	parts, ok := m.BootChain()
	if !ok {
		return bp, nil
	}
	bp.Install = bp.To != from
	for _, f := range bootabi.ChainFiles {
		if f.ESP == "" {
			continue
		}
		bp.ESPBytes += parts[f.Name].Size
		if st, err := os.Stat(filepath.Join(esp, filepath.FromSlash(f.ESP))); err == nil {
			bp.ESPBytes += st.Size()
		}
	}
	return bp, nil
}

// planBootChainBytes plans the boot chain of p's manifest: its download
// and its room on the ESP count with the slot's (DownloadBytes, ESPBytes).
func (u *Updater) planBootChainBytes(ctx context.Context, p *Plan) error {
	bp, err := u.planBootChain(p.Manifest)
	if err != nil {
		return err
	}
	p.BootChain = bp
	if !bp.Install {
		return nil
	}
	parts, _ := p.Manifest.BootChain()
	// The package list is a few bytes, checked like every part; without
	// it the plan only lacks the note.
	client := &repo.Client{Base: p.Source, HTTP: u.HTTP, Log: u.log()}
	if b, err := client.FetchPart(ctx, p.To, parts[bootabi.ChainPackages]); err == nil {
		bp.ToNote = packagesNote(bootabi.ParseRelease(b))
	} else {
		u.log().Warn("reading the new boot chain's package list", "version", p.To, "err", err)
	}
	p.DownloadBytes += p.bootChainToFetch()
	return nil
}

// bootChainToFetch is how many bytes of the new boot chain are still to
// download: its files are fetched whole, on the delta path too.
func (p *Plan) bootChainToFetch() int64 {
	if p.BootChain == nil || !p.BootChain.Install {
		return 0
	}
	parts, _ := p.Manifest.BootChain()
	var n int64
	for _, pt := range parts {
		if st, err := os.Stat(filepath.Join(p.DownloadDir, pt.File)); err != nil || st.Size() != pt.Size {
			n += pt.Size
		}
	}
	return n
}

// Describe renders the change for people.
func (bp *BootChainPlan) Describe() string {
	switch {
	case bp == nil:
		return "unknown"
	case bp.To == "":
		return fmt.Sprintf("unchanged: %s (the new version carries no boot chain)", bp.From)
	case !bp.Install:
		return fmt.Sprintf("unchanged: %s", bp.From)
	}
	from, to := bp.From, bp.To
	if bp.FromNote != "" {
		from += " (" + bp.FromNote + ")"
	}
	if bp.ToNote != "" {
		to += " (" + bp.ToNote + ")"
	}
	return fmt.Sprintf("%s\n        -> %s\n           installed before the trial is set; the old files are kept as .prev until a boot\n"+
		"           through the new chain is blessed", from, to)
}

// downloadBootChain fetches the chain's files whole (they are small, and
// never delta-chunked) into the download directory, each checked against
// its size and sha256 in the verified manifest, and adds them to files by
// part name.
func (u *Updater) downloadBootChain(ctx context.Context, p *Plan, files map[string]string) error {
	if p.BootChain == nil || !p.BootChain.Install {
		return nil
	}
	parts, _ := p.Manifest.BootChain()
	client := &repo.Client{Base: p.Source, HTTP: u.HTTP, Log: u.log()}
	for _, f := range bootabi.ChainFiles {
		name := bootabi.ChainPart(f.Name)
		req := repo.DownloadRequest{Version: p.To, Name: name, Part: parts[f.Name], Dir: p.DownloadDir}
		if u.Progress != nil {
			req.Progress = func(part string, done, total int64) { u.Progress("download "+part, done, total) }
		}
		path, err := client.Download(ctx, req)
		if err != nil {
			return err
		}
		files[name] = path
	}
	return nil
}

// loadBootChain reads the downloaded chain and checks every file against
// the manifest again, before anything is written; nil when the update
// leaves the chain alone.
func (u *Updater) loadBootChain(p *Plan, files map[string]string) (*bootchain.Chain, error) {
	if p.BootChain == nil || !p.BootChain.Install {
		return nil, nil
	}
	parts, _ := p.Manifest.BootChain()
	paths := map[string]string{}
	for _, f := range bootabi.ChainFiles {
		paths[f.Name] = files[bootabi.ChainPart(f.Name)]
	}
	c, err := bootchain.Load(paths, parts)
	if c != nil {
		c.OSVersion = p.To
	}
	return c, err
}

// BootChainTarget is where this host's boot chain goes: its ESP and, when
// the boot disk has a BIOS boot partition ("bios"), the disk for the BIOS
// boot code. A root that is not a running host (no mountinfo) has no boot
// disk: only the ESP.
func BootChainTarget(root fsroot.Root, esp string) (bootchain.Target, error) {
	t := bootchain.Target{ESP: esp, BootID: BootID(root)}
	d, err := bootdisk.Find(root)
	switch {
	case errors.Is(err, bootdisk.ErrNoMountinfo):
		return t, nil
	case err != nil:
		return t, fmt.Errorf("finding the boot disk for the boot chain: %w", err)
	}
	if bp, ok := d.Part("bios"); ok {
		t.Disk, t.BIOSPart = root.Join(d.Dev), bp.Num
	}
	return t, nil
}

// installBootChain installs the loaded chain (step 4b of Upgrade).
func (u *Updater) installBootChain(ctx context.Context, p *Plan, c *bootchain.Chain) error {
	if c == nil {
		return nil
	}
	if err := u.installChain(ctx, c, false); err != nil {
		return fmt.Errorf("updating to %s: %w", p.To, err)
	}
	return nil
}

// installChain installs c on this host's ESP and BIOS boot code.
func (u *Updater) installChain(ctx context.Context, c *bootchain.Chain, force bool) error {
	t, err := BootChainTarget(u.Root, u.host().ESP())
	if err != nil {
		return err
	}
	if t.Disk == "" {
		u.log().Info("no BIOS boot partition on the boot disk: the BIOS boot code is left alone")
	}
	in := bootchain.Installer{Target: t, Log: u.log(), Progress: u.Progress, Force: force}
	return in.Install(ctx, c)
}

// InstallBootedChain installs the boot chain the booted /usr carries
// (bootabi.UsrChainDir, vouched for by dm-verity), under the update lock:
// `hostctl bootloader update` without a repository. Files that match are
// not written again unless force.
func (u *Updater) InstallBootedChain(ctx context.Context, force bool) (*BootChainResult, error) {
	version, c, err := u.bootedChain()
	if err != nil {
		return nil, err
	}
	lock, err := WaitLockFor(ctx, u.Root, DefaultLockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	return u.installBootedChain(ctx, version, c, force)
}

// bootedChain is the booted version and the chain its /usr carries.
func (u *Updater) bootedChain() (string, *bootchain.Chain, error) {
	version, err := u.runningVersion()
	if err != nil {
		return "", nil, err
	}
	c, err := u.usrChain(version)
	return version, c, err
}

// runningVersion is the version of the booted slot.
func (u *Updater) runningVersion() (string, error) {
	booted, err := u.host().Booted()
	if err != nil {
		return "", err
	}
	return u.bootedVersion(booted)
}

// usrChain loads the chain the booted /usr (version) carries;
// ErrNoBootChain for a /usr from before boot chain updates.
func (u *Updater) usrChain(version string) (*bootchain.Chain, error) {
	dir := u.Root.Join(bootabi.UsrChainDir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the booted %s carries no boot chain in %s: %w", version, bootabi.UsrChainDir, ErrNoBootChain)
	}
	c, err := bootchain.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("the boot chain of the booted %s: %w", version, err)
	}
	c.OSVersion = version
	return c, nil
}

// installBootedChain installs c, the booted version's chain (from its /usr
// or from the repository), for a caller holding the update lock.
func (u *Updater) installBootedChain(ctx context.Context, version string, c *bootchain.Chain, force bool) (*BootChainResult, error) {
	res := &BootChainResult{Version: version, To: c.Version}
	var err error
	if res.From, err = bootchain.InstalledVersion(u.host().ESP()); err != nil {
		return nil, err
	}
	res.Changed = res.From != res.To
	if err := u.installChain(ctx, c, force); err != nil {
		return nil, fmt.Errorf("installing the boot chain of the booted %s: %w", version, err)
	}
	return res, nil
}

// BlessBootChain runs at a bless: a version that boots on a chain it did
// not install installs its own from its /usr. That is how a host whose
// updater predates boot chain updates (it staged this version and left the
// chain alone) gets the chain with its next upgrade; it also records a
// freshly built image's chain at its first boot. A chain recorded for a
// newer version is never replaced (a rollback to an older slot keeps the
// newer chain: its shim may have revoked the older GRUB), nor is one the
// same version recorded. It returns what it did; nil when nothing. The
// caller holds the update lock (bless does).
func (u *Updater) BlessBootChain(ctx context.Context) (*BootChainResult, error) {
	version, err := u.runningVersion()
	if err != nil {
		return nil, err
	}
	rec, err := bootchain.ReadRecord(u.host().ESP())
	if err != nil {
		return nil, err
	}
	// Decided from the record alone on most boots: the chain is read and
	// hashed only when this version may install it.
	if rec != nil && (rec.OSVersion == "" || payload.CompareVersions(version, rec.OSVersion) <= 0) {
		return nil, nil
	}
	c, err := u.usrChain(version)
	if errors.Is(err, ErrNoBootChain) {
		return nil, nil // a /usr from before boot chain updates: nothing to install
	}
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.Version == c.Version {
		return nil, nil
	}
	return u.installBootedChain(ctx, version, c, false)
}

// packagesNote renders a chain's package versions ("shim-signed 15.8, ...").
func packagesNote(pkgs map[string]string) string {
	d := bootabi.DescribeChain("", pkgs)
	return strings.TrimSuffix(strings.TrimPrefix(d, " ("), ")")
}

// BootChainOptions select where `hostctl bootloader update` takes the
// booted version's chain from.
type BootChainOptions struct {
	Source  string // repository URL or directory; "" for update.yaml's url
	Channel string // "" for update.yaml's channel
	Force   bool   // write every file and the BIOS core again, even where they match
}

// BootChainResult says what UpdateBootChain did.
type BootChainResult struct {
	Version string `json:"version"` // the booted version whose chain was installed
	From    string `json:"from"`
	To      string `json:"to"`
	Changed bool   `json:"changed"` // a chain of another version was replaced
}

// ErrNoBootChain means the version was published without a boot chain.
var ErrNoBootChain = errors.New("version published without a boot chain")

// UpdateBootChain installs the boot chain of the booted version from the
// repository, verified as an upgrade is (TUF metadata, the signed
// manifest, each file's size and sha256), under the update lock. Run again
// it repairs files that no longer match and writes nothing else.
func (u *Updater) UpdateBootChain(ctx context.Context, o BootChainOptions) (*BootChainResult, error) {
	h := u.host()
	booted, err := h.Booted()
	if err != nil {
		return nil, err
	}
	p := &Plan{Booted: booted}
	if p.From, err = u.bootedVersion(booted); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(u.Root)
	if err != nil {
		return nil, err
	}
	if err := p.setSource(cfg, o.Source, o.Channel); err != nil {
		return nil, err
	}
	image, err := u.bootedImage(booted)
	if err != nil {
		return nil, err
	}
	rel, err := u.resolve(ctx, p, p.From, image)
	if err != nil {
		return nil, err
	}
	p.To, p.Manifest = p.From, rel.Manifest
	if _, ok := p.Manifest.BootChain(); !ok {
		return nil, fmt.Errorf("installing the boot chain of %s: %w", p.From, ErrNoBootChain)
	}
	from, err := bootchain.InstalledVersion(h.ESP())
	if err != nil {
		return nil, err
	}
	p.DownloadDir = u.Root.Join(DownloadDir, "bootchain-"+p.From)
	p.BootChain = &BootChainPlan{From: from, To: p.Manifest.BootChainVersion(), Install: true}
	files := map[string]string{}
	if err := u.downloadBootChain(ctx, p, files); err != nil {
		return nil, err
	}
	chain, err := u.loadBootChain(p, files)
	if err != nil {
		return nil, err
	}
	lock, err := WaitLockFor(ctx, u.Root, DefaultLockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	res, err := u.installBootedChain(ctx, p.From, chain, o.Force)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(p.DownloadDir); err != nil {
		u.log().Warn("removing downloads", "err", err)
	}
	return res, nil
}
