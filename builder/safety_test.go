package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/images"
	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// The builder runs as root: --out must never delete a directory that a
// build did not make, and a failed build must leave the previous one.
func TestCheckOutDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, files ...string) string {
		d := filepath.Join(base, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(d, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	m := `{"name":"default","parts":{"disk.raw":{"file":"disk.raw","sha256":"ab"}}}`
	if err := os.MkdirAll(filepath.Join(base, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "old", "manifest.json"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dir  string
		ok   bool
	}{
		{"missing", filepath.Join(base, "nope"), true},
		{"empty", mk("empty"), true},
		{"marked output", mk("marked", outMarker, "disk.raw"), true},
		{"output from before the marker", mk("old", "disk.qcow2"), true},
		{"a project's manifest.json", mk("project", "manifest.json", "main.go"), false},
		{"someone's home", mk("home", ".bashrc", "thesis.tex"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkOutDir(tc.dir)
			if tc.ok && err != nil {
				t.Errorf("got %v, want it accepted", err)
			}
			if !tc.ok && !errors.Is(err, ErrNotBuildOutput) {
				t.Errorf("got %v, want ErrNotBuildOutput", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(base, "home", "thesis.tex")); err != nil {
		t.Errorf("a refused directory lost a file: %v", err)
	}
}

func TestReplaceDir(t *testing.T) {
	base := t.TempDir()
	out, staging := filepath.Join(base, "out"), filepath.Join(base, "out.building")
	for dir, content := range map[string]string{out: "previous", staging: "new"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "disk.raw"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := replaceDir(staging, out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "disk.raw")); string(b) != "new" {
		t.Errorf("out has %q, want the new build", b)
	}
	for _, gone := range []string{staging, out + ".old"} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", gone)
		}
	}
}

// dropPaths globs are expanded inside the tree: through an absolute
// symlink (/var/run -> /run) they reach the tree's /run, and a symlink to
// a build host directory removes nothing there.
func TestDropPathsStayInTree(t *testing.T) {
	tree, host := t.TempDir(), t.TempDir()
	victim := filepath.Join(host, "precious")
	mkfile := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkfile(victim)
	mkfile(filepath.Join(tree, "var", "cache", "apt", "pkgcache.bin"))
	mkfile(filepath.Join(tree, "run", "stale.pid"))
	if err := os.Symlink("/run", filepath.Join(tree, "var", "run")); err != nil {
		t.Fatal(err)
	}
	// The host directory by its absolute path: the tree has no such path.
	if err := os.Symlink(host, filepath.Join(tree, "var", "hostlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(tree, "var", "lock")); err != nil {
		t.Fatal(err)
	}
	err := dropPaths(tree, []string{"/var/cache/apt/*", "/var/run/*", "/var/hostlink/*", "/var/lock/../lock/precious", "/var/lock"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the build host's file was removed: %v", err)
	}
	for _, gone := range []string{"var/cache/apt/pkgcache.bin", "run/stale.pid", "var/lock"} {
		if _, err := os.Lstat(filepath.Join(tree, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the glob inside the tree did not remove it", gone)
		}
	}
	if _, err := os.Lstat(filepath.Join(tree, "var", "hostlink")); err != nil {
		t.Error("a match below a symlink removed the symlink itself")
	}
	if err := dropPaths(tree, []string{"/"}); err == nil {
		t.Error("a pattern naming the whole tree was accepted")
	}
}

// customize writes and removes only inside the tree: absolute symlinks
// in it (as a package may ship) that name build host directories lead to
// the tree's paths of those names. The old customize emptied the host's
// directory behind /boot, removed the host's SSH host keys behind
// /etc/ssh and wrote the update keys through /usr/lib/bulkhead.
func TestCustomizeStaysInTree(t *testing.T) {
	base, host := t.TempDir(), t.TempDir()
	tree := filepath.Join(base, "tree")
	mk := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostBoot, hostSSH, hostLib := filepath.Join(host, "boot"), filepath.Join(host, "ssh"), filepath.Join(host, "lib")
	mk(filepath.Join(hostBoot, "vmlinuz-6.1.0-host"), "host kernel")
	mk(filepath.Join(hostBoot, "initrd.img-6.1.0-host"), "host initrd")
	mk(filepath.Join(hostSSH, "ssh_host_ed25519_key"), "host key")
	if err := os.MkdirAll(hostLib, 0o755); err != nil {
		t.Fatal(err)
	}
	// The tree's own kernel, where its /boot leads inside the tree.
	mk(filepath.Join(tree, hostBoot, "vmlinuz-6.1.0-tree"), "tree kernel")
	mk(filepath.Join(tree, hostBoot, "initrd.img-6.1.0-tree"), "tree initrd")
	mk(filepath.Join(tree, "etc", "os-release"), "")
	for link, target := range map[string]string{"boot": hostBoot, "etc/ssh": hostSSH, "usr/lib/bulkhead": hostLib} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(tree, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tree, hostLib), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, b := range Binaries {
		mk(filepath.Join(bin, b), "#!/bin/sh\n")
	}
	_, pub, err := GenerateSigningKey(t.TempDir(), "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	def := defaultDef(t)
	def.Keys = []string{pub}
	def.Units.Enable, def.Units.Mask = nil, nil // no chroot: the tree has no systemctl
	def.Debian.DropPaths = []string{"/boot/*"}
	b := &Builder{Epoch: DefaultEpoch, BinDir: bin}
	s, err := b.newState(def, filepath.Join(base, "out"))
	if err != nil {
		t.Fatal(err)
	}
	s.tree = tree
	if err := s.customize(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"boot/vmlinuz-6.1.0-host", "boot/initrd.img-6.1.0-host", "ssh/ssh_host_ed25519_key"} {
		if _, err := os.Stat(filepath.Join(host, f)); err != nil {
			t.Errorf("the build host's %s: %v", f, err)
		}
	}
	if ents, _ := os.ReadDir(hostLib); len(ents) != 0 {
		t.Errorf("the build host's directory behind /usr/lib/bulkhead got %v", ents)
	}
	if _, err := os.Stat(filepath.Join(tree, hostLib, "keys", "dev.pub")); err != nil {
		t.Errorf("the update key is not in the tree: %v", err)
	}
	if got, _ := os.ReadFile(s.path(manifest.KernelImage)); string(got) != "tree kernel" {
		t.Errorf("the payload kernel is %q, want the tree's", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(tree, hostBoot)); len(ents) != 0 {
		t.Errorf("the tree's /boot still holds %v", ents)
	}
}

func TestGenerateSigningKeyNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	key, pub, err := GenerateSigningKey(dir, "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v %v, want 0600", st, err)
	}
	before, _ := os.ReadFile(pub)
	if _, _, err := GenerateSigningKey(dir, "dev", ""); err == nil {
		t.Error("a second keygen overwrote the key")
	}
	if after, _ := os.ReadFile(pub); string(after) != string(before) {
		t.Error("the public key changed")
	}
}

// customizeState is a build of def over a minimal tree (a kernel and an
// initrd in /boot) with stand-in binaries, ready for customize.
func customizeState(t *testing.T, def *images.Definition) *buildState {
	t.Helper()
	base, bin := t.TempDir(), t.TempDir()
	for _, b := range Binaries {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	def.Units.Enable, def.Units.Mask = nil, nil // no chroot: the tree has no systemctl
	s, err := (&Builder{Epoch: DefaultEpoch, BinDir: bin}).newState(def, filepath.Join(base, "out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"boot/vmlinuz-6.1.0-tree", "boot/initrd.img-6.1.0-tree"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(s.tree, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.tree, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// builder build with no argument: the embedded default names keys/dev.pub
// relative to the working directory; when it is missing the build makes
// the key pair there and the image trusts it, instead of an image that
// refuses every update. A definition from a file never gets a key made up.
func TestDefaultBuildMakesItsUpdateKey(t *testing.T) {
	t.Chdir(t.TempDir())
	s := customizeState(t, defaultDef(t))
	if err := s.customize(context.Background()); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join("keys", "dev.pub"))
	if err != nil {
		t.Fatalf("no key made for the default image: %v", err)
	}
	if st, err := os.Stat(filepath.Join("keys", "dev.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the private key: %v %v, want mode 0600", st, err)
	}
	inImage, err := os.ReadFile(filepath.Join(s.tree, "usr/lib/bulkhead/keys/dev.pub"))
	if err != nil || !bytes.Equal(inImage, pub) {
		t.Errorf("the image trusts %q (%v), want the key made: %q", inImage, err, pub)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "image.yaml"), images.DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	def, err := images.Load(filepath.Join(dir, "image.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := customizeState(t, def).customize(context.Background()); err == nil || !strings.Contains(err.Error(), "keys[0]") {
		t.Errorf("a definition file with a missing key: %v, want keys[0] refused", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a key was made for a definition file")
	}
}

// Build refuses, before anything runs, an --out that holds someone's
// files, and a foreign directory where it would stage (OUT.building), and
// leaves both as they were.
func TestBuildRefusesForeignOut(t *testing.T) {
	bin := t.TempDir()
	for _, b := range Binaries {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake := &fakeDebootstrap{versions: map[string]string{"zstd": "1.5.4+dfsg2-5"}}
	b := &Builder{Runner: fake, CacheDir: t.TempDir(), BinDir: bin, Epoch: DefaultEpoch}
	base := t.TempDir()
	home := filepath.Join(base, "home")
	for _, f := range []string{filepath.Join(home, "thesis.tex"), filepath.Join(base, "out.building", "notes.txt")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, out := range []string{home, filepath.Join(base, "out")} {
		if _, err := b.Build(context.Background(), defaultDef(t), out); !errors.Is(err, ErrNotBuildOutput) {
			t.Errorf("--out %s: got %v, want ErrNotBuildOutput", out, err)
		}
	}
	for _, f := range []string{filepath.Join(home, "thesis.tex"), filepath.Join(base, "out.building", "notes.txt")} {
		if got, err := os.ReadFile(f); err != nil || string(got) != "mine" {
			t.Errorf("%s: %q %v, want it untouched", f, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "home.building")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused build staged beside the refused --out")
	}
	if fake.runs != 0 {
		t.Errorf("mmdebstrap ran %d times for a refused build", fake.runs)
	}
}
