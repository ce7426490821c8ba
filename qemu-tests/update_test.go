package qemutests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/updater/bootcfg"
	"github.com/bulkhead-os/bulkhead/updater/bootchain"
	"github.com/bulkhead-os/bulkhead/updater/guestcheck"
	"github.com/bulkhead-os/bulkhead/updater/payload"
)

// The versions the update tests publish: the image under test is v1.
const (
	updateV2 = "1.1.0" // images/default.yaml again, newer
	updateV3 = "1.2.0" // plus testdata/update-v3.yaml: fails its health gate
)

// tamperedErr is what hostctl upgrade says about a corrupted part.
const tamperedErr = "does not match the manifest's sha256"

// updateFixture is the update repositories, built once per test run under
// out/update-repo: v2/ and v3/ each with their version on channel stable,
// tampered/ a copy of v2/ with a corrupted usr.erofs and chunk store. Each
// also holds v1, the image under test, published first: its chunk indexes
// are what a delta update locates the booted slot's chunks by.
type updateFixture struct {
	repos        string
	payloadBytes int64 // v2's usr image, verity tree, kernel and initrd
	err          error
}

var (
	updateOnce sync.Once
	updateFix  updateFixture
)

// updateRepos builds (or reuses, when newer than their inputs) v2 and v3 of
// the image and publishes them, signed with images/keys/dev.key, which the
// image under test trusts.
func updateRepos(t testing.TB) *updateFixture {
	t.Helper()
	v1 := image(t)
	updateOnce.Do(func() {
		start := time.Now()
		updateFix = buildUpdateRepos(v1)
		t.Logf("update repositories ready in %s", time.Since(start).Round(time.Second))
	})
	if updateFix.err != nil {
		t.Fatal(updateFix.err)
	}
	return &updateFix
}

func buildUpdateRepos(v1 string) updateFixture {
	top, err := filepath.Abs("..")
	if err != nil {
		return updateFixture{err: err}
	}
	if os.Geteuid() != 0 {
		return updateFixture{err: errors.New("building the update versions needs root (builder build)")}
	}
	// Another test process may be building the same versions.
	lock, err := os.OpenFile(filepath.Join(top, "out/update-repo.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return updateFixture{err: err}
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return updateFixture{err: fmt.Errorf("locking the update repositories: %w", err)}
	}
	builder := filepath.Join(top, "out/bin/builder")
	inputs := []string{builder, filepath.Join(top, "out/bin/hostctl"), filepath.Join(top, "out/bin/hostd"), filepath.Join(top, "images/default.yaml")}
	v2, err := buildVersion(top, updateV2, filepath.Join(top, "images/default.yaml"), inputs)
	if err != nil {
		return updateFixture{err: err}
	}
	def, err := v3Definition(top)
	if err != nil {
		return updateFixture{err: err}
	}
	defer os.RemoveAll(filepath.Dir(def))
	v3, err := buildVersion(top, updateV3, def, append(inputs, filepath.Join(top, "qemu-tests/testdata/update-v3.yaml")))
	if err != nil {
		return updateFixture{err: err}
	}
	f := updateFixture{repos: filepath.Join(top, "out/update-repo")}
	key := filepath.Join(top, "images/keys/dev.key")
	done := filepath.Join(f.repos, "tampered/versions", updateV2, "usr.erofs")
	// Republished only when a version was rebuilt: another test process
	// may be serving these files to its guest right now.
	if !newer(done, filepath.Join(v1, "manifest.json"), filepath.Join(v2, "manifest.json"), filepath.Join(v3, "manifest.json"), key) {
		if err := os.RemoveAll(f.repos); err != nil {
			return updateFixture{err: err}
		}
		for repo, out := range map[string]string{"v2": v2, "v3": v3} {
			for _, dir := range []string{v1, out} {
				cmd := exec.Command(builder, "publish", "--repo", filepath.Join(f.repos, repo), "--channel", "stable", "--key", key, dir)
				if b, err := cmd.CombinedOutput(); err != nil {
					return updateFixture{err: fmt.Errorf("publishing %s: %w: %s", dir, err, b)}
				}
			}
		}
		if err := tamper(f.repos); err != nil {
			return updateFixture{err: err}
		}
	}
	body, err := os.ReadFile(filepath.Join(f.repos, "v2/versions", updateV2, "manifest.json"))
	if err != nil {
		return updateFixture{err: err}
	}
	m, err := payload.Parse(body)
	if err != nil {
		return updateFixture{err: fmt.Errorf("reading the published manifest: %w", err)}
	}
	for _, name := range payload.RequiredParts {
		f.payloadBytes += m.Parts[name].Size
	}
	return f
}

// buildVersion builds def as version into out/update-<version>, unless a
// build there is newer than every input; args go to builder build.
func buildVersion(top, version, def string, inputs []string, args ...string) (string, error) {
	out := filepath.Join(top, "out", "update-"+version)
	if newer(filepath.Join(out, "manifest.json"), inputs...) {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(top, "out/bin/builder"), append([]string{"build", "--version", version, "--out", out, def}, args...)...)
	cmd.Dir = top
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w: %s", version, err, b)
	}
	return out, nil
}

// newer tells whether file exists and is newer than every input.
func newer(file string, inputs ...string) bool {
	st, err := os.Stat(file)
	if err != nil {
		return false
	}
	for _, in := range inputs {
		if ist, err := os.Stat(in); err != nil || !ist.ModTime().Before(st.ModTime()) {
			return false
		}
	}
	return true
}

// v3Definition writes images/default.yaml plus testdata/update-v3.yaml into
// a temporary directory (see derivedDefinition).
func v3Definition(top string) (string, error) {
	b, err := os.ReadFile(filepath.Join(top, "qemu-tests/testdata/update-v3.yaml"))
	if err != nil {
		return "", err
	}
	var add struct {
		Version string        `yaml:"version"`
		Files   []images.File `yaml:"files"`
	}
	if err := yaml.Unmarshal(b, &add); err != nil {
		return "", fmt.Errorf("reading testdata/update-v3.yaml: %w", err)
	}
	return derivedDefinition(top, func(d *images.Definition) {
		d.Version = add.Version
		d.Files = append(d.Files, add.Files...)
	})
}

// derivedDefinition writes images/default.yaml, changed by edit, into a
// temporary directory, the signing key's path made absolute (paths in a
// definition are relative to its file), and returns its path.
func derivedDefinition(top string, edit func(*images.Definition)) (string, error) {
	d, err := images.Load(filepath.Join(top, "images/default.yaml"))
	if err != nil {
		return "", err
	}
	edit(d)
	for i := range d.Keys {
		d.Keys[i] = d.KeyPath(i)
	}
	out, err := yaml.Marshal(d)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "bulkhead-update-def-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "image.yaml")
	if _, err := images.Parse(out, dir); err != nil {
		return "", fmt.Errorf("the derived definition: %w", err)
	}
	return p, os.WriteFile(p, out, 0o644)
}

// tamper makes repos/tampered: repos/v2 hard-linked, except usr.erofs,
// which is a copy with one byte changed, and every chunk of the delta
// store, whose bytes are replaced: the mirror serves nothing true but the
// signed metadata, so the delta is refused chunk by chunk, and the full
// payload it falls back to by its sha256.
func tamper(repos string) error {
	dst := filepath.Join(repos, "tampered")
	if b, err := exec.Command("cp", "-al", filepath.Join(repos, "v2"), dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copying the repository: %w: %s", err, b)
	}
	err := filepath.WalkDir(filepath.Join(dst, "chunks"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if err := os.Remove(p); err != nil { // a hard link to v2's
			return err
		}
		return os.WriteFile(p, []byte("not this chunk"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("tampering with the chunk store: %w", err)
	}
	p := filepath.Join(dst, "versions", updateV2, "usr.erofs")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 0xff
	if err := os.Remove(p); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// serveRepo serves dir over HTTP for the guest until the test ends and
// returns its URL as the guest sees it: QEMU's user network forwards
// 10.0.2.2 to the host's loopback.
func serveRepo(t testing.TB, dir string) string {
	t.Helper()
	return serveHandler(t, http.FileServer(http.Dir(dir)))
}

// serveHandler serves h for the guest until the test ends and returns its
// URL as the guest sees it.
func serveHandler(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return guestURL(srv)
}

// guestURL is srv's URL as the guest sees it.
func guestURL(srv *httptest.Server) string {
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "http://10.0.2.2:" + port
}

var (
	bootedRE = regexp.MustCompile(`Booting Bulkhead \S+ from slot [ab]`)
	// rebootRE shows the guest went down or came up again.
	rebootRE = regexp.MustCompile(`reboot: Restarting system|Booting Bulkhead \S+ from slot [ab]`)
)

// qemuGuest is a guestcheck.Guest over the guest agent and serial console.
type qemuGuest struct {
	vm   *VM
	mark int // the console offset before the last command: WaitBoot waits for a boot after it
}

// Run runs cmd with /bin/sh -c, stderr into stdout. A command that reboots
// the guest may lose the agent before its exit status is read: when the
// console then shows the guest going down, that is its success.
func (g *qemuGuest) Run(ctx context.Context, cmd string) (string, error) {
	g.mark = g.vm.Console().Len()
	r, err := g.vm.Exec(ctx, "/bin/sh", "-c", "exec 2>&1\n"+cmd)
	if err != nil {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if _, _, werr := g.vm.Console().Wait(wctx, rebootRE, g.mark); werr == nil {
			return "", nil
		}
		return "", err
	}
	if r.Code != 0 {
		return r.Stdout, fmt.Errorf("guest command %q exited %d", cmd, r.Code)
	}
	return r.Stdout, nil
}

// WaitBoot waits for a boot after the last command that is blessed; boots
// that reboot before (failing trials) are passed over.
func (g *qemuGuest) WaitBoot(ctx context.Context) error {
	pos := g.mark
	for {
		_, next, err := g.vm.Console().Wait(ctx, bootedRE, pos)
		if err != nil {
			return err
		}
		pos = next
		for g.vm.Console().Count(bootedRE, pos) == 0 {
			if g.vm.Exited() {
				return errors.New("qemu exited while waiting for the guest to boot")
			}
			pctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			r, err := g.vm.Exec(pctx, "systemctl", "is-active", "bulkhead-bless.service")
			cancel()
			if err == nil && strings.TrimSpace(r.Stdout) == "active" {
				g.mark = g.vm.Console().Len()
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for the guest to be blessed: %w; last output:\n%s", ctx.Err(), g.vm.Console().tail(3000))
			case <-time.After(3 * time.Second):
			}
		}
	}
}

// consoleHas fails the test unless re matches the console after mark.
func consoleHas(t *testing.T, vm *VM, re string, mark int) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(vm.Console().String()[mark:]) {
		t.Errorf("console lacks %q after the step", re)
	}
}

// TestUpdateUpgradeRollback boots v1, has a tampered payload refused with
// the boot configuration untouched, upgrades to v2 from a repository served
// by the host and reboots into it, rolls back to v1 by hand, then has the
// running slot's /usr damaged on disk and its GRUB environment block
// damaged too: it boots v1 from the block's backup, finds the damage and
// moves to v2 by itself.
func TestUpdateUpgradeRollback(t *testing.T) {
	f := updateRepos(t)
	url := serveRepo(t, f.repos)
	vm := bootVM(t, BootOpts{Firmware: BIOS})
	v1 := checkBooted(t, vm).Slots.Version
	g := &qemuGuest{vm: vm}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	var half int
	if !t.Run("boot chain", func(t *testing.T) { half = checkBootChain(ctx, t, g, v1, bootchain.MarkMBR) }) {
		return
	}
	if !t.Run("tampered payload refused", func(t *testing.T) {
		if err := guestcheck.Refused(ctx, g, url+"/tampered", tamperedErr); err != nil {
			t.Fatal(err)
		}
	}) {
		return
	}
	if !t.Run("upgrade", func(t *testing.T) {
		mark := vm.Console().Len()
		if err := guestcheck.Upgrade(ctx, g, url+"/v2", updateV2); err != nil {
			t.Fatal(err)
		}
		consoleHas(t, vm, `Booting Bulkhead `+regexp.QuoteMeta(updateV2)+` from slot b`, mark)
		// SeaBIOS loaded GRUB from the half the forced install left;
		// v2's bless has dropped the copies kept since.
		if bc := bootChainStatus(ctx, t, g); bc.BIOS == nil || bc.BIOS.Half != half || bc.PreviousKept || !bc.OK() {
			t.Errorf("after booting v2: boot chain %+v, want the core in half %d, nothing kept, every file sound", bc, half)
		}
		st := status(t, vm)
		if got := fmtSlots(st); !strings.Contains(got, "a=good("+v1+")") || !strings.Contains(got, "b=booted("+updateV2+")") {
			t.Errorf("after the upgrade: slots %s, want a good (%s) and b booted (%s)", got, v1, updateV2)
		}
	}) {
		return
	}
	if !t.Run("rollback", func(t *testing.T) {
		mark := vm.Console().Len()
		if err := guestcheck.Rollback(ctx, g, v1); err != nil {
			t.Fatal(err)
		}
		consoleHas(t, vm, `Booting Bulkhead `+regexp.QuoteMeta(v1)+` from slot a`, mark)
	}) {
		return
	}
	t.Run("damaged slot and boot environment", func(t *testing.T) {
		// The block holds default a now. Damaged, it must not send GRUB to
		// slot a by chance: its backup holds the selection.
		if out, err := g.Run(ctx, "dd if=/dev/urandom of=/efi/grub/grubenv bs=1024 count=1 conv=notrunc,fsync status=none && hostctl status"); err != nil ||
			!strings.Contains(out, "Boot environment damaged") || !strings.Contains(out, "Default: slot a") {
			t.Fatalf("status over a damaged block: %v\n%s\nwant the damage reported and default a from the backup", err, out)
		}
		// One 4 KiB block of the booted slot a's /usr partition, under a
		// file the boot never reads, is overwritten on the disk. Reading
		// it through dm-verity must restart the machine (not hand dd an
		// I/O error: dd failing fails the test). GRUB boots a from the
		// backup; the check finds the block and hands over to slot b,
		// which holds v2, blessed, writing both copies of the block.
		mark := vm.Console().Len()
		if out, err := g.Run(ctx, damageUsr("/usr/bin/shuf", "usr-a")); err != nil {
			t.Fatalf("reading the damaged block: %v\n%s\nwant the machine restarted", err, out)
		}
		// a comes up and is blessed as the default before its check (at
		// idle priority, after hostd) finds the damage and moves to b:
		// wait for b's boot, then for its blessing.
		match, end, err := vm.Console().Wait(ctx, bootsOf(updateV2, "b"), mark)
		if err != nil {
			t.Fatalf("waiting for the move to slot b: %v", err)
		}
		g.mark = end - len(match)
		if err := g.WaitBoot(ctx); err != nil {
			t.Fatal(err)
		}
		consoleHas(t, vm, `dm-verity device corrupted`, mark)
		consoleHas(t, vm, `boot environment block is damaged; using its backup`, mark)
		consoleHas(t, vm, `Booting Bulkhead `+regexp.QuoteMeta(v1)+` from slot a`, mark)
		consoleHas(t, vm, `slot b holds a blessed build and is the default now`, mark)
		consoleHas(t, vm, `Booting Bulkhead `+regexp.QuoteMeta(updateV2)+` from slot b`, mark)
		st := status(t, vm)
		if got := fmtSlots(st); st.Slots.Booted != "b" || st.Slots.Default != "b" || !strings.Contains(got, "a=corrupt("+v1+")") {
			t.Errorf("after the damage: booted %s, default %s, slots %s; want b, b and a corrupt (%s)", st.Slots.Booted, st.Slots.Default, got, v1)
		}
		// A damaged slot is no rollback target, and repair-boot mends a
		// damaged block without a reboot.
		if out, err := g.Run(ctx, "hostctl rollback"); err == nil {
			t.Errorf("hostctl rollback to the damaged slot a was accepted:\n%s", out)
		}
		out, err := g.Run(ctx, "dd if=/dev/urandom of=/efi/grub/grubenv bs=1024 count=1 conv=notrunc,fsync status=none && "+
			"hostctl repair-boot && hostctl status && cmp /efi/grub/grubenv /efi/grub/grubenv.bak && echo SAME")
		if err != nil || strings.Contains(out, "Boot environment damaged") || !strings.Contains(out, "Default: slot b") || !strings.Contains(out, "SAME") {
			t.Errorf("after hostctl repair-boot: %v\n%s\nwant default b, no damage, the two copies equal", err, out)
		}
	})
}

// checkBootChain checks the boot chain of a booted, blessed host built with
// boot chain updates: its first bless recorded the chain its /usr carries.
// Made to look like a host from before (no record, an older grub.cfg), a
// bless installs the /usr's chain again, keeping the older grub.cfg as
// .prev. Then hostctl bootloader update --force, which writes every file
// again and the BIOS core into the other half of its partition, is cut
// (QEMU killed) when it reaches cut: the host boots, and the command run
// again leaves a sound chain. It returns the half the BIOS core is in.
func checkBootChain(ctx context.Context, t *testing.T, g *qemuGuest, v1, cut string) int {
	bc := bootChainStatus(ctx, t, g)
	if bc.Version == bootchain.Unknown || bc.OSVersion != v1 || !bc.OK() || bc.BIOS == nil || bc.BIOS.Half != 1 {
		t.Fatalf("after the first boot: boot chain %+v; want v1's recorded, every file sound, the core in half 1", bc)
	}
	recorded := bc.Version
	out, err := g.Run(ctx, "rm /efi/bootchain.json && echo '# an older grub.cfg' >>/efi/grub/grub.cfg && hostctl bless")
	if err != nil || !strings.Contains(out, "boot chain of "+v1+" installed: "+bootchain.Unknown+" -> "+recorded) {
		t.Errorf("bless on a chain it did not install: %v\n%s\nwant the /usr's chain installed", err, out)
	}
	if out, err := g.Run(ctx, "cmp /usr/lib/bulkhead/bootchain/grub.cfg /efi/grub/grub.cfg && tail -n1 /efi/grub/grub.cfg.prev"); err != nil || !strings.Contains(out, "an older grub.cfg") {
		t.Errorf("grub.cfg after the bless: %v\n%s\nwant the /usr's, the older one kept as .prev", err, out)
	}
	return cutBootloaderUpdate(ctx, t, g, recorded, cut)
}

// cutBootloaderUpdate starts hostctl bootloader update --force, which
// writes every file of the chain again and the BIOS core into the other
// half of its partition, and cuts the power (kills QEMU) when it reaches
// cut: the host must boot, and the command run again must leave the chain
// (version want) whole. It returns the half the BIOS core is in then.
func cutBootloaderUpdate(ctx context.Context, t *testing.T, g *qemuGuest, want, cut string) int {
	vm := g.vm
	mark := vm.Console().Len()
	if out, err := g.Run(ctx, "systemd-run --unit=bulkhead-test-bootloader --property=StandardOutput=tty --property=StandardError=tty "+
		"--property=TTYPath=/dev/ttyS0 hostctl bootloader update --force"); err != nil {
		t.Fatalf("starting hostctl bootloader update --force: %v\n%s", err, out)
	}
	if _, _, err := vm.Console().Wait(ctx, regexp.MustCompile(regexp.QuoteMeta(cut)), mark); err != nil {
		t.Fatalf("waiting for %q: %v", cut, err)
	}
	vm.Kill()
	t.Logf("power cut at %q", cut)
	g.mark = vm.Console().Len()
	if err := vm.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitBoot(ctx); err != nil {
		t.Fatalf("booting after a cut at %q: %v", cut, err)
	}
	// A boot after a cut reads /usr whole in the background, then writes
	// the GRUB environment: let it finish before anything else looks.
	if out, err := g.Run(ctx, "until systemctl is-active -q bulkhead-verify-usr.service; do "+
		"systemctl is-failed -q bulkhead-verify-usr.service && exit 1; sleep 2; done"); err != nil {
		t.Fatalf("the /usr check after the cut: %v\n%s", err, out)
	}
	if out, err := g.Run(ctx, "hostctl bootloader update --force"); err != nil {
		t.Fatalf("hostctl bootloader update --force after the cut: %v\n%s", err, out)
	}
	bc := bootChainStatus(ctx, t, g)
	if bc.Version != want || !bc.OK() || bc.BIOS == nil || !bc.BIOS.OK || bc.BIOS.Half == 0 {
		t.Fatalf("after bootloader update --force, cut at %q and run again: boot chain %+v, want %s whole", cut, bc, want)
	}
	return bc.BIOS.Half
}

// TestBootChainPowerCut cuts the power at each write point of a boot chain
// install (hostctl bootloader update --force, which passes them all: GRUB
// EFI, MokManager, shim, the BIOS core, sector 0, grub.cfg, the record)
// under SeaBIOS and under UEFI with Secure Boot: each time the host boots
// and is blessed, and the install run again leaves the chain whole. (Booting
// through a finished install is TestUpdateUpgradeRollback's, under SeaBIOS,
// and TestBootUEFI's.)
func TestBootChainPowerCut(t *testing.T) {
	for _, fw := range []Firmware{BIOS, SecureBoot} {
		for _, cut := range bootchain.Markers {
			t.Run(string(fw)+"/"+cut, func(t *testing.T) {
				vm := bootVM(t, BootOpts{Firmware: fw})
				checkBooted(t, vm)
				g := &qemuGuest{vm: vm}
				ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
				defer cancel()
				half := cutBootloaderUpdate(ctx, t, g, bootChainStatus(ctx, t, g).Version, cut)
				t.Logf("cut at %q under %s: booted and blessed; run again, the BIOS core is in half %d", cut, fw, half)
			})
		}
	}
}

// bootChainStatus is hostctl bootloader status --json in the guest.
func bootChainStatus(ctx context.Context, t *testing.T, g *qemuGuest) bootchain.Status {
	t.Helper()
	out, err := g.Run(ctx, "hostctl bootloader status --json 2>/dev/null")
	var st bootchain.Status
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
		t.Fatalf("hostctl bootloader status: %v, %v\n%s", err, jerr, out)
	}
	return st
}

// bootsOf matches one boot of version v from slot: the entry's echo, once
// under SeaBIOS, twice in a row under OVMF (its console mirrors the serial
// port GRUB also writes).
func bootsOf(v, slot string) *regexp.Regexp {
	return regexp.MustCompile(`(?:Booting Bulkhead ` + regexp.QuoteMeta(v) + ` from slot ` + slot + `)+`)
}

// damageUsr is a guest command that overwrites, on the booted slot's /usr
// partition (label), the 4 KiB block holding the start of file, then reads
// that block through dm-verity, bypassing the page cache: with
// restart-on-corruption the machine restarts (a dd that fails instead is
// an I/O error handed to the reader, and fails the caller).
func damageUsr(file, label string) string {
	return `blk=$(filefrag -v -b4096 ` + file + ` | awk '$1=="0:" {sub(/\.\./, "", $4); print $4; exit}') && [ -n "$blk" ] && ` +
		`dd if=/dev/urandom of=$(readlink -f /dev/disk/by-partlabel/` + label + `) bs=4096 seek=$blk count=1 oflag=direct conv=notrunc,fsync status=none && ` +
		`dd if=/dev/mapper/usr of=/dev/null bs=4096 skip=$blk count=1 iflag=direct status=none`
}

// TestUpdateBootPathCorruption damages the first block of hostd in the
// booted, blessed slot b on the disk. Every boot of b then restarts the
// machine when hostd starts (dm-verity, restart-on-corruption), before the
// /usr check could move the boot away: GRUB counts those boots and, at the
// third, moves the default to the spare slot a (v1, blessed), and the host
// records b as failing. Under UEFI with Secure Boot: Debian's signed GRUB
// saves the count (TestUpdateUpgradeRollback runs SeaBIOS).
func TestUpdateBootPathCorruption(t *testing.T) {
	f := updateRepos(t)
	url := serveRepo(t, f.repos)
	vm := bootVM(t, BootOpts{Firmware: SecureBoot})
	v1 := checkBooted(t, vm).Slots.Version
	g := &qemuGuest{vm: vm}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	if err := guestcheck.Upgrade(ctx, g, url+"/v2", updateV2); err != nil {
		t.Fatal(err)
	}
	if out, err := g.Run(ctx, "grep -a ^bulkhead_ /efi/grub/grubenv"); err != nil || !strings.Contains(out, "bulkhead_spare=a") {
		t.Fatalf("after the upgrade: %v\n%s\nwant slot a as the spare", err, out)
	}
	mark := vm.Console().Len()
	if out, err := g.Run(ctx, damageUsr("/usr/bin/hostd", "usr-b")); err != nil {
		t.Fatalf("reading the damaged block: %v\n%s\nwant the machine restarted", err, out)
	}
	if err := g.WaitBoot(ctx); err != nil {
		t.Fatal(err)
	}
	b := bootsOf(updateV2, "b")
	if n := vm.Console().Count(b, mark); n != bootcfg.MaxBoots {
		t.Errorf("%s booted %d times after the damage, want %d", updateV2, n, bootcfg.MaxBoots)
	}
	consoleHas(t, vm, `slot b restarted 3 boots running before its check; moving to slot a`, mark)
	consoleHas(t, vm, `Booting Bulkhead `+regexp.QuoteMeta(v1)+` from slot a`, mark)
	st := status(t, vm)
	if got := fmtSlots(st); st.Slots.Booted != "a" || st.Slots.Default != "a" || !strings.Contains(got, "b=corrupt("+updateV2+")") {
		t.Errorf("after the moves: booted %s, default %s, slots %s; want a, a and b corrupt", st.Slots.Booted, st.Slots.Default, got)
	}
}

// TestUpdateFailedTrial upgrades v1 to a v3 whose health gate fails: GRUB
// tries it three times, falls back to v1 by itself, v3 is reported bad and
// not offered again; under BIOS and under UEFI with Secure Boot.
func TestUpdateFailedTrial(t *testing.T) {
	f := updateRepos(t)
	url := serveRepo(t, f.repos)
	// SeaBIOS (GRUB's i386-pc core) and OVMF with Secure Boot (shim and
	// Debian's signed GRUB, whose save_env path differs).
	for _, fw := range []Firmware{BIOS, SecureBoot} {
		t.Run(string(fw), func(t *testing.T) {
			vm := bootVM(t, BootOpts{Firmware: fw})
			checkBooted(t, vm)
			g := &qemuGuest{vm: vm}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
			defer cancel()

			mark := vm.Console().Len()
			if err := guestcheck.FailedTrial(ctx, g, url+"/v3", updateV3); err != nil {
				t.Fatal(err)
			}
			if n := vm.Console().Count(bootsOf(updateV3, "b"), mark); n != 3 {
				t.Errorf("%s booted %d times, want 3 (the tries)", updateV3, n)
			}
		})
	}
}

// TestUpdatePowerCut cuts the power (kills QEMU) at each phase of an
// upgrade: the next boot must be a good slot, and a fresh upgrade then
// completes.
func TestUpdatePowerCut(t *testing.T) {
	f := updateRepos(t)
	url := serveRepo(t, f.repos) + "/v2"
	// SeaBIOS (GRUB's i386-pc core) and OVMF with Secure Boot (shim and
	// Debian's signed GRUB, whose save_env path differs): the same ESP
	// binaries boot UEFI with Secure Boot off.
	for _, fw := range []Firmware{BIOS, SecureBoot} {
		for _, marker := range guestcheck.Markers {
			t.Run(string(fw)+"/"+marker.String(), func(t *testing.T) { powerCutAt(t, url, fw, marker) })
		}
	}
}

// powerCutAt upgrades v1 to v2 under firmware fw, cuts the power when the
// upgrade reaches marker, and checks the host boots a good slot and can
// finish the update. The repository offers a delta, and the upgrade must
// take it; cut in the middle of writing usr, the next upgrade fetches
// nothing again: the chunks fetched before the cut are kept.
func powerCutAt(t *testing.T, url string, fw Firmware, marker guestcheck.Marker) {
	vm := bootVM(t, BootOpts{Firmware: fw})
	v1 := checkBooted(t, vm).Slots.Version
	g := &qemuGuest{vm: vm}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	mark := vm.Console().Len()
	if err := guestcheck.StartUpgrade(ctx, g, url); err != nil {
		t.Fatal(err)
	}
	if _, _, err := vm.Console().Wait(ctx, regexp.MustCompile(marker.Pattern()), mark); err != nil {
		t.Fatal(err)
	}
	vm.Kill()
	t.Logf("power cut at %q under %s", marker, fw)
	if strings.Contains(vm.Console().String()[mark:], "full payload") {
		t.Errorf("the upgrade cut at %q was not a delta:\n%s", marker, vm.Console().tail(3000))
	}
	g.mark = vm.Console().Len()
	if err := vm.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitBoot(ctx); err != nil {
		t.Fatal(err)
	}
	if marker.Phase == "write usr" && marker.Percent > 0 {
		var p struct {
			Delta         bool  `json:"delta"`
			DownloadBytes int64 `json:"downloadBytes"`
			FullBytes     int64 `json:"fullBytes"`
		}
		out, err := g.Run(ctx, "hostctl upgrade --dry-run --json --from "+url+" 2>/dev/null")
		if err == nil {
			err = json.Unmarshal([]byte(out), &p)
		}
		// Left to fetch: the chunk indexes (a few hundred KB), no chunk.
		if err != nil || !p.Delta || p.DownloadBytes > p.FullBytes/50 {
			t.Errorf("resuming after a cut at %q: %v, delta %v, %d of %d bytes to fetch; want a delta fetching no chunk again\n%s",
				marker, err, p.Delta, p.DownloadBytes, p.FullBytes, out)
		}
	}
	if err := guestcheck.AfterPowerCut(ctx, g, url, updateV2, v1, updateV2); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateTrialEmergency: a trial boot that ends in emergency mode, where
// the health gate never runs, must reboot so GRUB counts the try down
// rather than sit at a shell with the try spent. The trial is set up by
// hand in the environment block: slot a stands in for a freshly written slot on
// trial, b (empty here) for the good default it would fall back to. Then
// the reverse: a trial of the empty slot b, whose boot files cannot load,
// falls back to a instead of stopping at GRUB's menu.
func TestUpdateTrialEmergency(t *testing.T) {
	vm := bootVM(t, BootOpts{Firmware: BIOS})
	checkBooted(t, vm)
	guestScript(t, vm, setGrubEnv, "bulkhead_default=b", "bulkhead_try=a", "bulkhead_tries=2")
	mark := vm.Console().Len()
	// Through systemd-run: isolating stops the guest agent answering us.
	sh(t, vm, "systemd-run --on-active=2 systemctl isolate emergency.target")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for _, want := range []string{`slot a is on trial \(2 tries left\): rebooting`, `Booting Bulkhead \S+ from slot a`} {
		_, end, err := vm.Console().Wait(ctx, regexp.MustCompile(want), mark)
		if err != nil {
			t.Fatalf("waiting for %q on the console: %v", want, err)
		}
		mark = end
	}
	// GRUB took a try (2 -> 1) and booted a; its health gate passes and
	// bless makes it the default.
	checkBooted(t, vm)

	// A trial slot whose boot files cannot load (here: b is empty, as after
	// a power cut before its files reached the disk) must not leave GRUB at
	// its menu: it falls back to the default slot.
	guestScript(t, vm, setGrubEnv, "bulkhead_default=a", "bulkhead_try=b", "bulkhead_tries=1")
	mark = vm.Console().Len()
	sh(t, vm, "systemd-run --on-active=2 systemctl reboot")
	for _, want := range []string{`Bulkhead: slot b \(default a`, `Falling back to`, `Booting Bulkhead \S+ from slot a`} {
		_, end, err := vm.Console().Wait(ctx, regexp.MustCompile(want), mark)
		if err != nil {
			t.Fatalf("waiting for %q on the console: %v", want, err)
		}
		mark = end
	}
	checkBooted(t, vm)
}

// oldImageCommit is the last commit whose image knows nothing of boot chain
// updates: its builder writes no record and no /usr copy of the chain, and
// its updater leaves the chain alone.
const oldImageCommit = "823c17657bf9fb2078f6b9d620cc4be0926161a8"

// oldImage builds images/default.yaml as it was at oldImageCommit, with
// that commit's builder and binaries, into out/old-image (reused once
// built). The sources come from the repository's history (git archive), so
// this needs a clone with history; the image trusts this checkout's
// images/keys/dev.pub, like the update repositories' signatures.
func oldImage(t *testing.T) string {
	t.Helper()
	top, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(top, "out/old-image")
	if _, err := os.Stat(filepath.Join(out, "manifest.json")); err == nil {
		return out
	}
	src := filepath.Join(top, "out/old-image-src")
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	steps := [][]string{
		{"mkdir", "-p", src},
		{"sh", "-c", "git -C " + top + " archive " + oldImageCommit + " | tar -x -C " + src},
		{"cp", "-a", filepath.Join(top, "images/keys/."), filepath.Join(src, "images/keys/")},
		{"make", "-C", src, "bin"},
		{filepath.Join(src, "out/bin/builder"), "build", "--out", out, filepath.Join(src, "images/default.yaml")},
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = src
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the image of %s: %v: %v\n%s", oldImageCommit, s, err, b)
		}
	}
	return out
}

// TestBootChainFromOldImage boots an image built before boot chain updates
// (oldImageCommit) under SeaBIOS, whose updater stages v2 and leaves the
// chain alone; v2 boots on the old chain and, at its bless, installs the
// chain its /usr carries: the record names it, and every file and the BIOS
// core check out. Then it boots through that chain again.
func TestBootChainFromOldImage(t *testing.T) {
	old := oldImage(t)
	f := updateRepos(t)
	url := serveRepo(t, f.repos)
	body, err := os.ReadFile(filepath.Join(f.repos, "v2/versions", updateV2, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := payload.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	vm := bootVM(t, BootOpts{Firmware: BIOS, Base: filepath.Join(old, "disk.qcow2")})
	checkBooted(t, vm)
	g := &qemuGuest{vm: vm}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if out, err := g.Run(ctx, "ls /efi/bootchain.json /usr/lib/bulkhead/bootchain"); err == nil {
		t.Fatalf("the image of %s has boot chain files:\n%s", oldImageCommit, out)
	}
	if err := guestcheck.Upgrade(ctx, g, url+"/v2", updateV2); err != nil {
		t.Fatal(err)
	}
	bc := bootChainStatus(ctx, t, g)
	if bc.Version != m.BootChainVersion() || bc.OSVersion != updateV2 || !bc.OK() || bc.BIOS == nil || !bc.BIOS.OK {
		t.Fatalf("after v2's bless: boot chain %+v, want %s of %s, whole", bc, m.BootChainVersion(), updateV2)
	}
	if out, err := g.Run(ctx, "systemctl reboot"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := g.WaitBoot(ctx); err != nil {
		t.Fatalf("booting through v2's chain: %v", err)
	}
	if v := status(t, vm).Slots.Version; v != updateV2 {
		t.Errorf("after the reboot: %s booted, want %s", v, updateV2)
	}
}
