package etcmerge

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/golden"
)

// tree is a directory as a map: path -> content; "->target" makes a symlink,
// a trailing "/" on the path makes a directory.
type tree map[string]string

func (tr tree) write(t *testing.T, dir string) {
	t.Helper()
	for p, c := range tr {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			os.MkdirAll(full, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		var err error
		if strings.HasPrefix(c, "->") {
			err = os.Symlink(c[2:], full)
		} else {
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// dump renders a directory for golden files: one line per path.
func dump(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st, _ := os.Lstat(p)
		switch {
		case d.IsDir():
			lines = append(lines, rel+"/")
		case st.Mode()&fs.ModeSymlink != 0:
			tgt, _ := os.Readlink(p)
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, tgt))
		default:
			b, _ := os.ReadFile(p)
			lines = append(lines, fmt.Sprintf("%s %s %q", rel, st.Mode().Perm(), b))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// The scenario covers every rule once; the file names say what they test.
var (
	base = tree{
		"untouched":              "v1\n",
		"untouched-same":         "same\n",
		"changed-local":          "v1\n",
		"changed-both":           "v1\n",
		"deleted-local":          "v1\n",
		"deleted-local-changed":  "v1\n",
		"dropped":                "v1\n",
		"dropped-changed":        "v1\n",
		"dropped-dir/file":       "v1\n",
		"link":                   "->untouched",
		"ssh/sshd_config":        "Port 22\n",
		"kept-dir/local-sibling": "v1\n",
		"fstab":                  "PARTUUID=v1\n",
	}
	newFactory = tree{
		"untouched":              "v2\n",
		"untouched-same":         "same\n",
		"changed-local":          "v1\n",
		"changed-both":           "v2\n",
		"deleted-local":          "v1\n",
		"deleted-local-changed":  "v2\n",
		"link":                   "->untouched-same",
		"ssh/sshd_config":        "Port 22\nPermitRootLogin no\n",
		"added":                  "new\n",
		"added-clash":            "factory\n",
		"added-dir/sub/file":     "new\n",
		"kept-dir/local-sibling": "v1\n",
		"fstab":                  "PARTUUID=v2\n",
		"machine-id":             "uninitialized\n",
	}
	local = tree{
		"untouched":              "v1\n",
		"untouched-same":         "same\n",
		"changed-local":          "mine\n",
		"changed-both":           "mine\n",
		"dropped":                "v1\n",
		"dropped-changed":        "mine\n",
		"dropped-dir/file":       "v1\n",
		"link":                   "->untouched",
		"ssh/sshd_config":        "Port 22\n",
		"added-clash":            "mine\n",
		"hostname":               "node1\n",
		"kept-dir/local-sibling": "v1\n",
		"kept-dir/mine":          "mine\n",
		"fstab":                  "PARTUUID=v1\n",
	}
)

func TestMergeGolden(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	base.write(t, root.Join(BaseDir))
	newFactory.write(t, root.Join(FactoryDir))
	local.write(t, root.Join(EtcDir))
	rep, err := Run(context.Background(), root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, c := range rep.Changes {
		fmt.Fprintf(&out, "%-9s %s %s\n", c.Action, c.Path, c.Reason)
	}
	out.WriteString("== /etc after\n" + dump(t, root.Join(EtcDir)))
	golden.Assert(t, "merge.txt", []byte(out.String()))
	conflicts, _ := os.ReadFile(root.Join(ConflictsFile))
	golden.Assert(t, "etc-conflicts.json", conflicts)
	if got, want := dump(t, root.Join(BaseDir)), dump(t, root.Join(FactoryDir)); got != want {
		t.Errorf("base after merge:\n%s\nwant the new factory tree:\n%s", got, want)
	}
	// A second run with nothing new changes nothing and reports nothing.
	before := dump(t, root.Join(EtcDir))
	rep, err = Run(context.Background(), root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.BaseCurrent {
		t.Error("second run: got BaseCurrent false, want the base left as it is")
	}
	if got := dump(t, root.Join(EtcDir)); got != before || len(rep.Changes) != 0 {
		t.Errorf("second run changed things: %+v", rep.Changes)
	}
	cs, err := ReadConflicts(root)
	if err != nil || len(cs) != 0 {
		t.Errorf("got conflicts %v, %v after a clean re-run, want none", cs, err)
	}
}

func TestMergeFirstBoot(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	newFactory.write(t, root.Join(FactoryDir))
	tree{"changed-local": "mine\n", "hostname": "node1\n"}.write(t, root.Join(EtcDir))
	rep, err := Run(context.Background(), root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.FirstBoot {
		t.Error("got FirstBoot false, want true")
	}
	golden.Assert(t, "first-boot.txt", []byte(dump(t, root.Join(EtcDir))))
}

// TestRunRecoversFromCutSwap: a power cut between the two renames of the base
// swap leaves only factory-etc.old; the next run uses it as the base.
func TestRunRecoversFromCutSwap(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	base.write(t, root.Join(BaseDir+".old"))
	newFactory.write(t, root.Join(FactoryDir))
	local.write(t, root.Join(EtcDir))
	rep, err := Run(context.Background(), root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstBoot {
		t.Error("got a first-boot merge, want the .old base used")
	}
	b, _ := os.ReadFile(root.Join(EtcDir, "untouched"))
	if string(b) != "v2\n" {
		t.Errorf("got %q, want %q", b, "v2\n")
	}
}
