package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// rootfsInputs is everything that decides the mmdebstrap tree; its hash keys
// the cache so that a second build neither downloads nor re-runs mmdebstrap.
type rootfsInputs struct {
	Suite, Mirror string
	Packages      []string
	Purge         []string // in order
	DracutConf    string
	PinnedUsers   string
	Epoch         int64
}

func newRootfsInputs(def *images.Definition, epoch int64) rootfsInputs {
	pkgs := append([]string(nil), def.Debian.Packages...)
	if !slices.Contains(pkgs, def.Kernel.Package) {
		pkgs = append(pkgs, def.Kernel.Package)
	}
	sort.Strings(pkgs)
	return rootfsInputs{
		Suite: def.Debian.Suite, Mirror: def.Debian.Mirror, Packages: pkgs, Purge: def.Debian.Purge,
		DracutConf: DracutConf(def), PinnedUsers: PinUsersScript(def.Users), Epoch: epoch,
	}
}

// key hashes the inputs (and a format number, bumped when the recipe changes).
func (in rootfsInputs) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "rootfs/3\x00%s\x00%s\x00%s\x00%d\x00", in.Suite, in.Mirror, strings.Join(in.Packages, ","), in.Epoch)
	if len(in.Purge) > 0 {
		fmt.Fprintf(h, "purge\x00%s\x00", strings.Join(in.Purge, ","))
	}
	io.WriteString(h, in.DracutConf)
	io.WriteString(h, in.PinnedUsers)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// DracutConf is written to /etc/dracut.conf.d before the kernel package
// installs, so its postinst builds the initrd once, with systemd, verity for
// /usr and the listed drivers. rd.emergency=reboot (on the command line)
// makes an initrd failure reboot rather than wait in a shell. zstd runs
// with dracut's own level and threads plus --rsyncable, so that a version
// whose initrd gains or changes a file still shares most of its compressed
// bytes with the last one (a delta update fetches 39% of the initrd instead
// of 93% when one package it holds changes, measured on less).
func DracutConf(def *images.Definition) string {
	return `# Written by the Bulkhead builder.
hostonly="no"
compress="zstd -15 -q -T0 --rsyncable"
reproducible="yes"
add_dracutmodules+=" systemd systemd-veritysetup dm "
omit_dracutmodules+=" plymouth network network-legacy network-manager nfs iscsi multipath lvm mdraid crypt biosdevname resume "
drivers="` + strings.Join(def.Kernel.InitrdDrivers, " ") + `"
`
}

// PinUsersScript appends the pinned system users and groups to the tree's
// passwd/group/shadow/gshadow after the essential packages install and
// before the rest, so that adduser and systemd-sysusers find them and keep
// their IDs stable across versions.
func PinUsersScript(users []images.User) string {
	var b strings.Builder
	b.WriteString("set -e\nr=\"$1\"\n")
	for _, u := range users {
		fmt.Fprintf(&b, "grep -q '^%s:' \"$r/etc/group\" || { echo '%s:x:%d:' >> \"$r/etc/group\"; echo '%s:!::' >> \"$r/etc/gshadow\"; }\n",
			u.Name, u.Name, u.GID, u.Name)
		if u.UID != nil {
			home, shell := u.Home, u.Shell
			if home == "" {
				home = "/nonexistent"
			}
			if shell == "" {
				shell = "/usr/sbin/nologin"
			}
			fmt.Fprintf(&b, "grep -q '^%s:' \"$r/etc/passwd\" || { echo '%s:x:%d:%d::%s:%s' >> \"$r/etc/passwd\"; echo '%s:!*:1::::::' >> \"$r/etc/shadow\"; }\n",
				u.Name, u.Name, *u.UID, u.GID, home, shell, u.Name)
		}
	}
	return b.String()
}

// MmdebstrapArgs builds the mmdebstrap argument list. dir holds the hook
// inputs (dracut.conf, pin-users.sh); debs is the .deb cache kept across
// builds (the sync-in/sync-out recipe of mmdebstrap(1), with
// essential/unlink skipped so the essential debs stay in it).
func MmdebstrapArgs(in rootfsInputs, dir, debs, target string) []string {
	args := []string{
		"--variant=essential",
		"--architectures=amd64",
		"--include=" + strings.Join(in.Packages, ","),
		"--aptopt=APT::Install-Recommends \"false\"",
		// Locales, docs and man pages are dead weight on an appliance (~60 MB).
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--skip=essential/unlink",
		`--setup-hook=mkdir -p "$1"/var/cache/apt/archives/ "$1"/etc/dracut.conf.d`,
		"--setup-hook=sync-in " + debs + " /var/cache/apt/archives/",
		"--setup-hook=upload " + filepath.Join(dir, "dracut.conf") + " /etc/dracut.conf.d/10-bulkhead.conf",
		`--essential-hook=sh ` + filepath.Join(dir, "pin-users.sh") + ` "$1"`,
		"--customize-hook=sync-out /var/cache/apt/archives " + debs,
	}
	// One package at a time, in the definition's order: a package's
	// removal script may need one purged after it (python3's prerm runs
	// py3clean).
	for _, p := range in.Purge {
		args = append(args, `--customize-hook=chroot "$1" dpkg --purge --force-depends `+p)
	}
	return append(args, in.Suite, target, in.Mirror)
}

// rootfs returns a cached tree for the inputs and its package lock,
// running mmdebstrap when the cache has none. The tree is built beside its
// final name and renamed, so an interrupted build never leaves a half tree
// that looks complete; its lock (lockPath) is written before the rename.
func (b *Builder) rootfs(ctx context.Context, in rootfsInputs) (string, []manifest.Package, error) {
	final := filepath.Join(b.CacheDir, "rootfs", in.key())
	debs := filepath.Join(b.CacheDir, "debs")
	if _, err := os.Stat(filepath.Join(final, "etc", "os-release")); err == nil {
		b.progress("root tree: cached %s", final)
		pkgs, err := loadLock(lockPath(final))
		if errors.Is(err, os.ErrNotExist) { // a tree cached before package locks
			if pkgs, err = treePackages(final, debs); err == nil {
				err = saveLock(lockPath(final), pkgs)
			}
		}
		if err != nil {
			return "", nil, err
		}
		return final, pkgs, nil
	}
	hooks := final + ".hooks"
	tmp := final + ".tmp"
	for _, d := range []string{debs, hooks} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, fmt.Errorf("making root tree: %w", err)
		}
	}
	if err := os.RemoveAll(tmp); err != nil {
		return "", nil, fmt.Errorf("making root tree: clearing %s: %w", tmp, err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "dracut.conf"), []byte(in.DracutConf), 0o644); err != nil {
		return "", nil, fmt.Errorf("making root tree: %w", err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "pin-users.sh"), []byte(in.PinnedUsers), 0o644); err != nil {
		return "", nil, fmt.Errorf("making root tree: %w", err)
	}
	b.progress("root tree: running mmdebstrap for %s (%d packages; cold ~2 min)", in.Suite, len(in.Packages))
	_, err := b.Runner.Run(ctx, run.Cmd{
		Name:   "mmdebstrap",
		Args:   MmdebstrapArgs(in, hooks, debs, tmp),
		Env:    []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", in.Epoch)},
		Stderr: b.Progress,
	})
	if err != nil {
		return "", nil, fmt.Errorf("making root tree with mmdebstrap: %w", err)
	}
	pkgs, err := treePackages(tmp, debs)
	if err != nil {
		return "", nil, err
	}
	if err := saveLock(lockPath(final), pkgs); err != nil {
		return "", nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", nil, fmt.Errorf("making root tree: %w", err)
	}
	_ = os.RemoveAll(hooks)
	return final, pkgs, nil
}

// lockPath is where a cached tree's package lock is kept.
func lockPath(tree string) string { return tree + ".packages.json" }

var errNoKernel = errors.New("no kernel in the root tree's /boot")
