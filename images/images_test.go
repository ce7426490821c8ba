package images

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

func TestDefaultIsValid(t *testing.T) {
	d, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "default" || d.Partitions.Usr != 2<<30 || d.Partitions.ESP != 512<<20 {
		t.Errorf("got %+v", d)
	}
}

func TestOverlayHasUnits(t *testing.T) {
	for _, p := range []string{"usr/lib/systemd/system/hostd.service", "usr/lib/systemd/system/bulkhead-bless.service"} {
		if _, err := fs.Stat(Overlay(), p); err != nil {
			t.Errorf("overlay lacks %s: %v", p, err)
		}
	}
}

func TestEveryProblemReportedWithPath(t *testing.T) {
	_, err := Load("testdata/bad.yaml")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	golden.Assert(t, "bad.problems", []byte(strings.ReplaceAll(err.Error(), "  ", "")+"\n"))
}

func TestUnknownFieldRejected(t *testing.T) {
	b := append(DefaultYAML(), []byte("\nbogus: 1\n")...)
	_, err := Parse(b, "")
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("got %v, want an error naming the unknown field", err)
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"512MiB", 512 << 20, true},
		{"2GiB", 2 << 30, true},
		{"4096", 4096, true},
		{"1 TiB", 1 << 40, true},
		{"2G", 0, false},
		{"-1MiB", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q): got %d, %v, want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestVerityTreeSize(t *testing.T) {
	// 2 GiB of 4 KiB blocks: 524288 hashes = 4096 blocks, then 32, then 1,
	// plus the superblock (what veritysetup format writes).
	if got, want := verityTreeSize(2<<30), int64(4096+32+1+1)*4096; got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}

func TestFileSourceRelativeToDefinition(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "motd"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := strings.Replace(string(DefaultYAML()), "units:\n", "files:\n  - {path: /etc/motd, source: motd, mode: \"0600\"}\nunits:\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "img.yaml"), []byte(b), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Load(filepath.Join(dir, "img.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadSource(d.Files[0])
	if err != nil || string(got) != "hello\n" || d.Files[0].ModeOrDefault() != 0o600 {
		t.Errorf("got %q, %v, mode %v", got, err, d.Files[0].ModeOrDefault())
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	bad, _ := os.ReadFile("testdata/bad.yaml")
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b, "")
		if err == nil && d.Validate() != nil {
			t.Fatal("Parse accepted a definition that does not validate")
		}
	})
}
