package builder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// customize turns the Debian tree into a Bulkhead tree: kernel out of /boot,
// our binaries, the overlay and the definition's files, identity, fstab,
// units, and no per-instance secrets.
func (s *buildState) customize(ctx context.Context) error {
	// Every path into the tree is resolved inside it: a package's absolute
	// symlink (/boot -> /boot, /var/run -> /run) leads into the tree, never
	// to the build host's files, which the builder runs as root over.
	boot, err := s.inTree("/boot")
	if err != nil {
		return err
	}
	kernels, _ := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("%w: found %d kernels, want exactly one", errNoKernel, len(kernels))
	}
	s.kver = strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	if err := copyFile(kernels[0], s.path(manifest.KernelImage), 0o644); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(boot, "initrd.img-"+s.kver), s.path(manifest.InitrdImage), 0o644); err != nil {
		return fmt.Errorf("the kernel package built no initrd: %w", err)
	}
	bootEnts, _ := os.ReadDir(boot)
	for _, e := range bootEnts {
		if err := os.RemoveAll(filepath.Join(boot, e.Name())); err != nil {
			return fmt.Errorf("emptying the tree's /boot: %w", err)
		}
	}
	// One multi-call binary: hostctl is hostd run under another name, so a
	// boot reads one Go binary's pages through dm-verity, not two.
	for _, bin := range Binaries {
		data, err := os.ReadFile(filepath.Join(s.b.BinDir, bin))
		if err != nil {
			return fmt.Errorf("installing %s: %w", bin, err)
		}
		if err := s.root().WriteFile("/usr/bin/"+bin, data, 0o755); err != nil {
			return fmt.Errorf("installing %s: %w", bin, err)
		}
		info := binaryInfo(bin, data)
		if askVersion[bin] && info.GoVersion != "" && (info.Version == "" || info.Version == "(devel)") {
			info.Version = s.askVersion(ctx, filepath.Join(s.b.BinDir, bin), info.Version)
		}
		s.binaries = append(s.binaries, info)
	}
	for _, name := range slices.Sorted(maps.Keys(Links)) {
		link := s.root().Join("/usr/bin", name) // the link itself, not what it points to
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("linking /usr/bin/%s: %w", name, err)
		}
		if err := os.Symlink(Links[name], link); err != nil {
			return fmt.Errorf("linking /usr/bin/%s to %s: %w", name, Links[name], err)
		}
	}
	if err := writeOverlay(images.Overlay(), s.root()); err != nil {
		return fmt.Errorf("writing the overlay: %w", err)
	}
	for i, f := range s.def.Files {
		data, err := s.def.ReadSource(f)
		if err != nil {
			return err
		}
		// Inside the tree: an absolute symlink in it (/var/run -> /run)
		// resolves within the tree, never onto the build host.
		if err := fsroot.Root(s.tree).WriteFile(f.Path, data, f.ModeOrDefault()); err != nil {
			return fmt.Errorf("files[%d] (%s): %w", i, f.Path, err)
		}
	}
	for i := range s.def.Keys {
		p := s.def.KeyPath(i)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) && s.def.Dir == "" {
			// The embedded default names the key `make image` generates.
			// Built without one, the image would trust no update: make it,
			// as make image does, and say where the private half is.
			keyPath, _, err := GenerateSigningKey(filepath.Dir(p), keyName(p), "")
			if err != nil {
				return fmt.Errorf("keys[%d]: making the default image's update signing key: %w", i, err)
			}
			s.b.progress("      made update signing key %s: keep it private, it signs this image's updates (builder publish --key)", keyPath)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("keys[%d]: %w", i, err)
		}
		if err := s.root().WriteFile("/usr/lib/bulkhead/keys/"+filepath.Base(p), data, 0o644); err != nil {
			return fmt.Errorf("keys[%d]: %w", i, err)
		}
	}
	esp, root := s.part(LabelESP), s.part(LabelRoot)
	generated := map[string]string{
		"usr/lib/os-release": OSRelease(s.def),
		"etc/fstab": "# Bulkhead: / and /usr are mounted by the initrd from the kernel command line.\n" +
			"PARTUUID=" + root.UUID + " / ext4 rw,x-systemd.growfs 0 1\n" +
			// No nofail here: the bless step needs the ESP mounted.
			"PARTUUID=" + esp.UUID + " /efi vfat umask=0077,shortname=winnt,flush,x-systemd.device-timeout=300s 0 2\n",
		// "uninitialized": the first boot generates the machine ID and counts as first boot.
		"etc/machine-id": "uninitialized\n",
		"etc/hostname":   "localhost\n",
	}
	for _, p := range slices.Sorted(maps.Keys(generated)) {
		if err := s.root().WriteFile(p, []byte(generated[p]), 0o644); err != nil {
			return err
		}
	}
	// Per-instance secrets are made on first boot, never shipped.
	sshDir, err := s.inTree("/etc/ssh")
	if err != nil {
		return err
	}
	keys, _ := filepath.Glob(filepath.Join(sshDir, "ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return fmt.Errorf("removing the tree's SSH host key: %w", err)
		}
	}
	for _, d := range []string{"efi", "usr/lib/bulkhead/keys", "var/lib/bulkhead", "etc/bulkhead", "var/log/journal"} {
		if err := mkdirTree(s.root(), d, 0o755); err != nil {
			return err
		}
	}
	if len(s.def.Units.Enable) > 0 {
		if _, err := s.chroot(ctx, "systemctl", append([]string{"enable"}, s.def.Units.Enable...)...); err != nil {
			return err
		}
	}
	if len(s.def.Units.Mask) > 0 {
		if _, err := s.chroot(ctx, "systemctl", append([]string{"mask"}, s.def.Units.Mask...)...); err != nil {
			return err
		}
	}
	if err := dropPaths(s.tree, s.def.Debian.DropPaths); err != nil {
		return err
	}
	return mkdirTree(s.root(), "var/log/journal", 0o755|os.ModeSetgid)
}

// root is the tree as a root directory: paths given to it resolve inside.
func (s *buildState) root() fsroot.Root { return fsroot.Root(s.tree) }

// inTree resolves every element of rel inside the tree, the last included
// (securejoin: an absolute symlink target is taken relative to the tree).
func (s *buildState) inTree(rel string) (string, error) {
	return inRoot(s.tree, rel)
}

// inRoot resolves rel inside root, symlinks included, for reading or
// listing a directory of a tree without leaving it.
func inRoot(root, rel string) (string, error) {
	p, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		return "", fmt.Errorf("resolving %s inside %s: %w", rel, root, err)
	}
	return p, nil
}

// mkdirTree makes rel and its parents inside root, rel with exactly mode
// (the umask of whoever runs the build does not reach the image).
func mkdirTree(root fsroot.Root, rel string, mode os.FileMode) error {
	d, err := root.MkdirAll(rel, mode.Perm())
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.ChmodSelf(mode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", d.Path(), err)
	}
	return nil
}

// OSRelease renders /usr/lib/os-release (/etc/os-release links to it).
func OSRelease(def *images.Definition) string {
	return fmt.Sprintf(`NAME="%s"
ID=%s
ID_LIKE=debian
PRETTY_NAME="%s %s"
VERSION="%s"
VERSION_ID="%s"
IMAGE_ID=%s
IMAGE_VERSION=%s
VARIANT_ID=%s
HOME_URL="https://github.com/bulkhead-os/bulkhead"
`, def.OS.Name, def.OS.ID, def.OS.Name, def.Version, def.Version, def.Version, def.Name, def.Version, def.Name)
}

// chroot runs a program inside the tree.
func (s *buildState) chroot(ctx context.Context, name string, args ...string) ([]byte, error) {
	return s.b.Runner.Run(ctx, run.Cmd{Name: "chroot", Args: append([]string{s.tree, name}, args...),
		Env: []string{"SYSTEMD_OFFLINE=1", "LC_ALL=C.UTF-8"}})
}

// pruneModules keeps the allow-listed kernel modules and their dependencies
// (from modules.dep) and deletes the rest, then re-runs depmod.
func (s *buildState) pruneModules(ctx context.Context) error {
	dir, err := s.inTree(filepath.Join("/usr/lib/modules", s.kver))
	if err != nil {
		return err
	}
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("reading modules.dep: %w", err)
	}
	keep, total, missing, err := KeepModules(dep, s.def.Kernel.Modules)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		// Built-in drivers are not in modules.dep: say so rather than fail.
		s.b.progress("      not modules (built in, or misspelt): %s", strings.Join(missing, " "))
	}
	err = filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isModule(p) {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !keep[rel] {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pruning modules: %w", err)
	}
	removeEmptyDirs(filepath.Join(dir, "kernel"))
	s.b.progress("      kept %d of %d kernel modules", len(keep), total)
	_, err = s.chroot(ctx, "depmod", "-a", s.kver)
	return err
}

// KeepModules reads modules.dep and returns the module paths to keep: those
// whose name matches an allow-list pattern (dashes and underscores are the
// same, as for modprobe), and everything they depend on.
func KeepModules(modulesDep []byte, allow []string) (keep map[string]bool, total int, missing []string, err error) {
	deps := map[string][]string{}
	var all []string
	sc := bufio.NewScanner(bytes.NewReader(modulesDep))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		all = append(all, mod)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	keep = map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if keep[m] {
			return
		}
		keep[m] = true
		for _, d := range deps[m] {
			visit(d)
		}
	}
	matched := map[string]bool{}
	for _, m := range all {
		name := moduleName(m)
		for _, pat := range allow {
			if ok, _ := filepath.Match(strings.ReplaceAll(pat, "-", "_"), name); ok {
				visit(m)
				matched[pat] = true
			}
		}
	}
	for _, pat := range allow {
		if !matched[pat] && !strings.ContainsAny(pat, "*?") {
			missing = append(missing, pat)
		}
	}
	sort.Strings(missing)
	return keep, len(all), missing, nil
}

func moduleName(p string) string {
	base := filepath.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

func isModule(p string) bool {
	return strings.HasSuffix(p, ".ko") || strings.HasSuffix(p, ".ko.xz") || strings.HasSuffix(p, ".ko.zst") || strings.HasSuffix(p, ".ko.gz")
}

func removeEmptyDirs(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i]) // fails, as wanted, when not empty
	}
}

// factoryEtc keeps the shipped /etc as /usr/share/factory/etc: the reference
// for the three-way merge on update, and the source systemd-tmpfiles copies
// missing files from (C lines) at every boot. Then every timestamp in the
// tree is clamped to the build epoch.
func (s *buildState) factoryEtc(ctx context.Context) error {
	if err := mkdirTree(s.root(), "usr/share/factory", 0o755); err != nil {
		return err
	}
	factory, err := s.inTree("/usr/share/factory/etc")
	if err != nil {
		return err
	}
	etc, err := s.inTree("/etc")
	if err != nil {
		return err
	}
	if _, err := s.b.Runner.Run(ctx, run.Cmd{Name: "cp", Args: []string{"-a", etc, factory}}); err != nil {
		return err
	}
	ents, err := os.ReadDir(etc)
	if err != nil {
		return fmt.Errorf("listing the tree's /etc: %w", err)
	}
	var b strings.Builder
	b.WriteString("# Written by the Bulkhead builder: restore shipped /etc entries that are missing.\n")
	for _, e := range ents {
		if e.Name() == "machine-id" || e.Name() == "fstab" {
			continue
		}
		fmt.Fprintf(&b, "C /etc/%s - - - -\n", e.Name())
	}
	if err := s.root().WriteFile("/usr/lib/tmpfiles.d/bulkhead-factory-etc.conf", []byte(b.String()), 0o644); err != nil {
		return err
	}
	return clampTimes(s.tree, time.Unix(s.b.Epoch, 0))
}

// clampTimes sets every file's times to t (without following symlinks), so
// filesystem images built from the tree are reproducible.
func clampTimes(root string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("setting times of %s: %w", p, err)
		}
		return nil
	})
}

// writeOverlay copies an fs.FS into the tree, inside it. Embedded files
// carry no mode, so a file that starts with "#!" is made executable.
func writeOverlay(fsys fs.FS, root fsroot.Root) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return mkdirTree(root, p, 0o755)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if bytes.HasPrefix(data, []byte("#!")) {
			mode = 0o755
		}
		return root.WriteFile(p, data, mode)
	})
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_ = os.Remove(path) // replace symlinks rather than write through them
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := writeFile(dst, data, mode); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return nil
}

// dropPaths removes what the definition's dropPaths globs match in tree.
// The globs are expanded inside the tree (globTree): /var/run/* with
// /var/run -> /run removes the tree's /run/*, never the build host's.
func dropPaths(tree string, globs []string) error {
	for i, g := range globs {
		matches, err := globTree(tree, g)
		if err != nil {
			return fmt.Errorf("dropPaths[%d] %s: %w", i, g, err)
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return fmt.Errorf("dropPaths[%d] %s: %w", i, g, err)
			}
		}
	}
	return nil
}

// globTree expands pattern (a path in the tree's terms) element by element
// inside tree: every directory on the way is resolved inside it, so an
// absolute symlink leads into the tree, and each match is a host path whose
// last element is not followed (removing it removes a symlink, not its
// target). The root itself is never a match.
func globTree(tree, pattern string) ([]string, error) {
	clean := path.Clean("/" + pattern)
	if clean == "/" {
		return nil, errors.New("the pattern names the whole tree")
	}
	cur := []string{"/"}
	for _, part := range strings.Split(clean[1:], "/") {
		if _, err := path.Match(part, ""); err != nil {
			return nil, fmt.Errorf("pattern %s: %w", pattern, err)
		}
		var next []string
		for _, c := range cur {
			dir, err := inRoot(tree, c)
			if err != nil {
				return nil, err
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue // not a directory, or gone: nothing below it matches
			}
			for _, e := range ents {
				if ok, _ := path.Match(part, e.Name()); ok {
					next = append(next, path.Join(c, e.Name()))
				}
			}
		}
		cur = next
	}
	root := fsroot.Root(tree)
	out := make([]string, len(cur))
	for i, c := range cur {
		out[i] = root.Join(c)
	}
	return out, nil
}
