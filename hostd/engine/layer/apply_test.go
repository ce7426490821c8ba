package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// entry is one tar member for a test layer.
type entry struct {
	name, link, body string
	typ              byte
	mode             int64
	pax              map[string]string
}

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body)), PAXRecords: e.pax}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: whiteouts are 0/0 device nodes and trusted.* xattrs")
	}
}

func TestApplyRegularLayer(t *testing.T) {
	dir := t.TempDir()
	data := tarOf(t,
		entry{name: "./", typ: tar.TypeDir},
		entry{name: "bin/", typ: tar.TypeDir},
		entry{name: "bin/sh", typ: tar.TypeReg, body: "#!shell", mode: 0o755},
		entry{name: "bin/ash", typ: tar.TypeLink, link: "bin/sh"},
		entry{name: "usr/lib/deep/file", typ: tar.TypeReg, body: "implicit parents"},
		entry{name: "etc/link", typ: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		entry{name: "etc/dup", typ: tar.TypeReg, body: "first"},
		entry{name: "etc/dup", typ: tar.TypeReg, body: "second"},
		entry{name: "fifo", typ: tar.TypeFifo},
	)
	st, err := Apply(context.Background(), dir, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 10 {
		t.Errorf("got %d entries, want 10", st.Entries)
	}
	checks := []struct{ path, want string }{
		{"bin/sh", "#!shell"},
		{"bin/ash", "#!shell"},
		{"usr/lib/deep/file", "implicit parents"},
		{"etc/dup", "second"},
	}
	for _, c := range checks {
		got, err := os.ReadFile(filepath.Join(dir, c.path))
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s: got %q, want %q", c.path, got, c.want)
		}
	}
	if l, _ := os.Readlink(filepath.Join(dir, "etc/link")); l != "/etc/passwd" {
		t.Errorf("symlink: got %q, want %q", l, "/etc/passwd")
	}
	fi, _ := os.Stat(filepath.Join(dir, "tmp"))
	if fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp mode: got %v, want sticky 0777", fi.Mode())
	}
	fi, _ = os.Stat(filepath.Join(dir, "bin/sh"))
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/sh mode: got %v, want 0755", fi.Mode())
	}
}

func TestApplyWhiteouts(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	data := tarOf(t,
		entry{name: "etc/", typ: tar.TypeDir},
		entry{name: "etc/.wh.removed", typ: tar.TypeReg},
		entry{name: "var/cache/.wh..wh..opq", typ: tar.TypeReg},
		entry{name: "var/cache/kept", typ: tar.TypeReg, body: "x"},
	)
	st, err := Apply(context.Background(), dir, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if st.Whiteouts != 2 {
		t.Errorf("got %d whiteouts, want 2", st.Whiteouts)
	}
	var s unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/removed"), &s); err != nil {
		t.Fatal(err)
	}
	if s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != 0 {
		t.Errorf("whiteout: got mode %o rdev %d, want char device 0/0", s.Mode, s.Rdev)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/.wh.removed")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the .wh. marker itself was written: %v", err)
	}
	buf := make([]byte, 8)
	n, err := unix.Getxattr(filepath.Join(dir, "var/cache"), OverlayOpaqueXattr, buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr: got %q (%v), want %q", buf[:n], err, "y")
	}
}

func TestApplyRefusesMaliciousLayers(t *testing.T) {
	cases := []struct {
		name    string
		entries []entry
	}{
		{"dotdot", []entry{{name: "../escaped", typ: tar.TypeReg, body: "x"}}},
		{"dotdot inside", []entry{{name: "a/../../escaped", typ: tar.TypeReg, body: "x"}}},
		{"absolute", []entry{{name: "/escaped", typ: tar.TypeReg, body: "x"}}},
		{"symlink parent", []entry{
			{name: "link", typ: tar.TypeSymlink, link: ".."},
			{name: "link/escaped", typ: tar.TypeReg, body: "x"},
		}},
		{"symlink parent absolute", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "link/escaped", typ: tar.TypeReg, body: "x"},
		}},
		{"symlink deeper parent", []entry{
			{name: "a/b", typ: tar.TypeSymlink, link: "../.."},
			{name: "a/b/c/escaped", typ: tar.TypeReg, body: "x"},
		}},
		{"hardlink outside", []entry{{name: "hl", typ: tar.TypeLink, link: "../outside"}}},
		{"hardlink absolute", []entry{{name: "hl", typ: tar.TypeLink, link: "/etc/passwd"}}},
		{"hardlink through symlink", []entry{
			{name: "link", typ: tar.TypeSymlink, link: ".."},
			{name: "hl", typ: tar.TypeLink, link: "link/outside"},
		}},
		{"char device", []entry{{name: "dev/mem", typ: tar.TypeChar}}},
		{"block device", []entry{{name: "dev/sda", typ: tar.TypeBlock}}},
		{"whiteout dotdot", []entry{{name: "a/.wh...", typ: tar.TypeReg}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "layer")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			outside := filepath.Join(base, "outside")
			if err := os.WriteFile(outside, []byte("host"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Apply(context.Background(), dir, bytes.NewReader(tarOf(t, c.entries...)))
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("got %v, want ErrUnsafe", err)
			}
			ents, _ := os.ReadDir(base)
			if len(ents) != 2 {
				t.Errorf("got %d entries beside the layer, want 2 (layer, outside)", len(ents))
			}
			if _, err := os.Stat(filepath.Join(base, "escaped")); err == nil {
				t.Errorf("a file escaped the layer directory")
			}
			var st unix.Stat_t
			if err := unix.Stat(outside, &st); err != nil || st.Nlink != 1 {
				t.Errorf("the outside file was linked to: nlink %d", st.Nlink)
			}
		})
	}
}

func TestApplyDropsForgedOverlayXattrs(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	data := tarOf(t, entry{name: "d/", typ: tar.TypeDir, pax: map[string]string{
		"SCHILY.xattr.trusted.overlay.redirect": "/etc",
		"SCHILY.xattr.user.note":                "kept",
	}})
	if _, err := Apply(context.Background(), dir, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := unix.Getxattr(filepath.Join(dir, "d"), "trusted.overlay.redirect", buf); err == nil {
		t.Errorf("trusted.overlay.redirect from the layer was applied")
	}
	if n, err := unix.Getxattr(filepath.Join(dir, "d"), "user.note", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("user.note: got %q (%v), want %q", buf[:n], err, "kept")
	}
}

func TestCleanName(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "./", want: "."},
		{in: "./bin/sh", want: "bin/sh"},
		{in: "usr/lib/", want: "usr/lib"},
		{in: "a//b", want: "a/b"},
		{in: "../x", bad: true},
		{in: "a/../b", bad: true},
		{in: "/etc", bad: true},
	}
	for _, c := range cases {
		got, err := CleanName(c.in)
		if c.bad {
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("%q: got %q, %v, want ErrUnsafe", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q (%v), want %q", c.in, got, err, c.want)
		}
	}
}

// FuzzApply feeds arbitrary tar streams: whatever they hold, nothing may
// appear beside the layer directory.
func FuzzApply(f *testing.F) {
	f.Add(tarOf(f, entry{name: "a/b", typ: tar.TypeReg, body: "x"}))
	f.Add(tarOf(f, entry{name: "l", typ: tar.TypeSymlink, link: ".."}, entry{name: "l/x", typ: tar.TypeReg}))
	f.Add(tarOf(f, entry{name: "h", typ: tar.TypeLink, link: "../x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		dir := filepath.Join(base, "layer")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, _ = Apply(context.Background(), dir, bytes.NewReader(data))
		ents, _ := os.ReadDir(base)
		if len(ents) != 1 {
			t.Fatalf("got %d entries beside the layer, want 1", len(ents))
		}
	})
}
