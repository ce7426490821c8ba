package fsroot

import (
	"os"
	"path/filepath"
	"testing"
)

func TestJoin(t *testing.T) {
	cases := []struct {
		name string
		root Root
		in   string
		want string
	}{
		{"host root", "/", "/etc/hostname", "/etc/hostname"},
		{"temp root", "/tmp/x", "/etc/hostname", "/tmp/x/etc/hostname"},
		{"relative", "/tmp/x", "etc/hostname", "/tmp/x/etc/hostname"},
		{"cannot climb", "/tmp/x", "../../etc/shadow", "/tmp/x/etc/shadow"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.root.Join(c.in); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "two" {
		t.Errorf("got %q, want %q", got, "two")
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("got mode %v, want 0644", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("got %d entries, want only the file (no temp left)", len(ents))
	}
}
