package fsroot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// snapshot lists every path under dir with its mode, size and content, to
// show that nothing there changed.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := p + " " + st.Mode().String()
		if st.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// hostileTree makes a root whose /etc is an absolute symlink to a directory
// outside it, /var/lib a relative one climbing out, and /etc-file a symlink
// to a file outside.
func hostileTree(t *testing.T) (Root, string) {
	t.Helper()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "shadow"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(root, "etc")))
	must(os.MkdirAll(filepath.Join(root, "var"), 0o755))
	must(os.Symlink(strings.Repeat("../", 20)+strings.TrimPrefix(outside, "/"), filepath.Join(root, "var", "lib")))
	must(os.MkdirAll(filepath.Join(root, "home"), 0o755))
	must(os.Symlink(filepath.Join(outside, "shadow"), filepath.Join(root, "home", "shadow")))
	return Root(root), outside
}

// errAny accepts a refusal or a write that lands inside the root: a
// dangling absolute symlink is refused by pathrs.MkdirAllHandle, and
// followed inside the root by os.MkdirAll on a Join'ed path.
var errAny = errors.New("refused or done inside the root")

// TestSymlinksCannotEscape performs the attack: writes, mkdirs, chmods and
// chowns through symlinks that point out of the root; nothing outside it
// may change.
func TestSymlinksCannotEscape(t *testing.T) {
	for _, tc := range []struct {
		name    string
		do      func(r Root) error
		wantErr error // errAny: refused or done inside; nil: must succeed
		inside  string
	}{
		{"Root.WriteFile through absolute /etc", func(r Root) error { return r.WriteFile("/etc/hostname", []byte("x"), 0o644) }, errAny, ""},
		{"Root.WriteFile through climbing /var/lib", func(r Root) error { return r.WriteFile("/var/lib/state/x", []byte("x"), 0o644) }, errAny, ""},
		{"WriteFile(Join) through absolute /etc", func(r Root) error { return WriteFile(r.Join("/etc/hostname"), []byte("x"), 0o644) }, errAny, ""},
		{"WriteFile(Join) through climbing /var/lib", func(r Root) error { return WriteFile(r.Join("/var/lib/x"), []byte("x"), 0o644) }, errAny, ""},
		{"os.WriteFile(Join)", func(r Root) error { return os.WriteFile(r.Join("/etc/shadow"), []byte("pwned"), 0o644) }, errAny, ""},
		{"WriteFile over a symlink to outside", func(r Root) error { return r.WriteFile("/home/shadow", []byte("pwned"), 0o644) }, nil, "/home/shadow"},
		{"MkdirAll through /etc", func(r Root) error {
			d, err := r.MkdirAll("/etc/ssh/sshd_config.d", 0o755)
			if err == nil {
				d.Close()
			}
			return err
		}, errAny, ""},
		{"Chmod of a symlink to outside", func(r Root) error { return r.Chmod("/home/shadow", 0o666) }, ErrSymlink, ""},
		{"Chmod through /etc", func(r Root) error { return r.Chmod("/etc/shadow", 0o666) }, fs.ErrNotExist, ""},
		{"Chown of a symlink to outside", func(r Root) error { return r.Chown("/home/shadow", Owner{UID: 1234, GID: 1234}) }, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if os.Geteuid() != 0 && strings.Contains(tc.name, "Chown") {
				t.Fatal("chown needs root")
			}
			root, outside := hostileTree(t)
			before := snapshot(t, outside)
			err := tc.do(root)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("got error %v, want it done inside the root", err)
			}
			if tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if after := snapshot(t, outside); after != before {
				t.Errorf("outside the root changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if tc.inside != "" {
				st, err := os.Lstat(filepath.Join(string(root), tc.inside))
				if err != nil || !st.Mode().IsRegular() {
					t.Errorf("%s: got %v (%v), want a regular file inside the root", tc.inside, st, err)
				}
			}
		})
	}
}

func TestJoinResolvesInside(t *testing.T) {
	root, outside := hostileTree(t)
	for _, p := range []string{"/etc/hostname", "/var/lib/x/y", "/etc/../etc/passwd"} {
		got := root.Join(p)
		if !strings.HasPrefix(got, string(root)+"/") {
			t.Errorf("Join(%q): got %q, want a path under %s", p, got, root)
		}
		if strings.HasPrefix(got, outside) {
			t.Errorf("Join(%q): got %q, outside the root", p, got)
		}
		// No directory on the way may be a symlink the kernel would follow.
		rel, _ := filepath.Rel(string(root), filepath.Dir(got))
		at := string(root)
		for _, el := range strings.Split(rel, "/") {
			at = filepath.Join(at, el)
			if st, err := os.Lstat(at); err == nil && st.Mode()&os.ModeSymlink != 0 {
				t.Errorf("Join(%q): got %q, which goes through the symlink %s", p, got, at)
			}
		}
	}
	// The last element is not resolved: Lstat/Readlink see the link.
	if got, want := root.Join("/home/shadow"), filepath.Join(string(root), "home/shadow"); got != want {
		t.Errorf("Join(/home/shadow): got %q, want %q", got, want)
	}
}

func TestJoinLoopFails(t *testing.T) {
	root := t.TempDir()
	os.Symlink("b", filepath.Join(root, "a"))
	os.Symlink("a", filepath.Join(root, "b"))
	p := Root(root).Join("/a/x")
	if _, err := Root(root).Resolve("/a/x"); err == nil {
		t.Errorf("Resolve(/a/x) in a loop: got no error")
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err == nil {
		t.Errorf("writing %q: got no error, want every operation refused", p)
	}
}

func TestDirRefusesSymlinks(t *testing.T) {
	root, outside := hostileTree(t)
	d, err := root.MkdirAll("/home", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ReadFile("shadow", 1<<20); !errors.Is(err, ErrSymlink) {
		t.Errorf("ReadFile of a symlink: got %v, want ErrSymlink", err)
	}
	if err := os.Symlink(outside, filepath.Join(string(root), "home", "ssh")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Subdir("ssh", 0o700); !errors.Is(err, ErrSymlink) {
		t.Errorf("Subdir of a symlink: got %v, want ErrSymlink", err)
	}
	if err := os.Link(filepath.Join(outside, "shadow"), filepath.Join(string(root), "home", "hard")); err == nil {
		if _, err := d.ReadFile("hard", 1<<20); err == nil {
			t.Errorf("ReadFile of a hard link: got no error, want it refused")
		}
	}
}
