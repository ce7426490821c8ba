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
	// The conflicts stay listed (they used to vanish at the next boot)
	// until the operator resolves them: removes the .bulkhead-new file, or
	// the local file where there is none.
	first := string(conflicts)
	if now, _ := os.ReadFile(root.Join(ConflictsFile)); string(now) != first {
		t.Errorf("second run changed the conflict list:\n%s\nwant\n%s", now, first)
	}
	cs, _ := ReadConflicts(root)
	for _, c := range cs {
		p := c.Path
		if c.New != "" {
			p = c.New
		}
		if err := os.Remove(root.Join(EtcDir, p)); err != nil {
			t.Errorf("resolving %s: %v", c.Path, err)
		}
	}
	if _, err := Run(context.Background(), root, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if cs, err := ReadConflicts(root); err != nil || len(cs) != 0 {
		t.Errorf("got conflicts %v, %v once resolved, want none", cs, err)
	}
}

// TestMergeAccountsByEntry (issue 11, item 7): a new version adding a system
// user to passwd, group, shadow and gshadow, on a host where provisioning
// added its own: both are kept (the whole-file merge made it a conflict and
// lost the system user). A new entry whose id a local one holds is left
// out and reported, with the new file beside.
func TestMergeAccountsByEntry(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	tree{
		"passwd":  "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/usr/sbin/nologin\nold:x:50:50::/:/usr/sbin/nologin\n",
		"group":   "root:x:0:\ndaemon:x:1:\n",
		"shadow":  "root:*:1::::::\ndaemon:*:1::::::\nold:*:1::::::\n",
		"gshadow": "root:*::\ndaemon:*::\n",
	}.write(t, root.Join(BaseDir))
	tree{
		"passwd":  "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\nsystemd-network:x:998:998::/:/usr/sbin/nologin\nclash:x:1000:1000::/:/usr/sbin/nologin\n",
		"group":   "root:x:0:\ndaemon:x:1:\nsystemd-network:x:998:\n",
		"shadow":  "root:*:1::::::\ndaemon:*:1::::::\nsystemd-network:!*:1::::::\n",
		"gshadow": "root:*::\ndaemon:*::\nsystemd-network:!*::\n",
	}.write(t, root.Join(FactoryDir))
	tree{
		"passwd":  "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/usr/sbin/nologin\nold:x:50:50::/:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n",
		"group":   "root:x:0:\ndaemon:x:1:\nalice:x:1000:\n",
		"shadow":  "root:*:1::::::\ndaemon:*:1::::::\nold:*:1::::::\nalice:$6$hash:1::::::\n",
		"gshadow": "root:*::\ndaemon:*::\nalice:!::\n",
	}.write(t, root.Join(EtcDir))
	rep, err := Run(context.Background(), root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		// root's shell follows the defaults (untouched locally), old is
		// dropped, alice kept, systemd-network added, clash left out.
		"passwd":  "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\nsystemd-network:x:998:998::/:/usr/sbin/nologin\n",
		"group":   "root:x:0:\ndaemon:x:1:\nalice:x:1000:\nsystemd-network:x:998:\n",
		"shadow":  "root:*:1::::::\ndaemon:*:1::::::\nalice:$6$hash:1::::::\nsystemd-network:!*:1::::::\n",
		"gshadow": "root:*::\ndaemon:*::\nalice:!::\nsystemd-network:!*::\n",
	}
	for f, w := range want {
		if b, _ := os.ReadFile(root.Join(EtcDir, f)); string(b) != w {
			t.Errorf("/etc/%s: got\n%s\nwant\n%s", f, b, w)
		}
	}
	cs := rep.Conflicts()
	if len(cs) != 1 || cs[0].Path != "passwd" || !strings.Contains(cs[0].Reason, "id 1000 of new passwd entry clash is taken by local alice") || cs[0].New != "passwd"+NewSuffix {
		t.Errorf("got conflicts %+v, want the uid clash on passwd", cs)
	}
	if _, err := os.Stat(root.Join(EtcDir, "passwd"+NewSuffix)); err != nil {
		t.Errorf("new passwd not beside the local one: %v", err)
	}
}

// TestMergeComparesOwnersAndModes: the factory changing a file's owner or
// mode is an update (it was invisible); a local owner change is a local
// change (the new content used to overwrite it, owner and all).
func TestMergeComparesOwnersAndModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to chown (make test runs as root)")
	}
	root := fsroot.Root(t.TempDir())
	tr := tree{"owner-new": "same\n", "mode-new": "same\n", "owner-local": "v1\n"}
	tr.write(t, root.Join(BaseDir))
	tree{"owner-new": "same\n", "mode-new": "same\n", "owner-local": "v2\n"}.write(t, root.Join(FactoryDir))
	tr.write(t, root.Join(EtcDir))
	for _, c := range []struct {
		path string
		do   func(string) error
	}{
		{root.Join(FactoryDir, "owner-new"), func(p string) error { return os.Lchown(p, 0, 42) }},
		{root.Join(FactoryDir, "mode-new"), func(p string) error { return os.Chmod(p, 0o600) }},
		{root.Join(EtcDir, "owner-local"), func(p string) error { return os.Lchown(p, 1000, 1000) }},
	} {
		if err := c.do(c.path); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Merge(context.Background(), Trees{Base: root.Join(BaseDir), New: root.Join(FactoryDir), Local: root.Join(EtcDir)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Action{}
	for _, c := range rep.Changes {
		got[c.Path] = c.Action
	}
	if got["owner-new"] != Updated || got["mode-new"] != Updated || got["owner-local"] != Conflict {
		t.Errorf("got %v, want owner-new and mode-new updated, owner-local a conflict", got)
	}
	if l, _ := read(root.Join(EtcDir, "owner-new")); l.gid != 42 {
		t.Errorf("owner-new: got gid %d, want 42", l.gid)
	}
	if l, _ := read(root.Join(EtcDir, "mode-new")); l.mode != 0o600 {
		t.Errorf("mode-new: got mode %o, want 600", l.mode)
	}
	if l, _ := read(root.Join(EtcDir, "owner-local")); l.uid != 1000 || string(l.data) != "v1\n" {
		t.Errorf("owner-local: got uid %d %q, want the local file kept", l.uid, l.data)
	}
}

// TestMergeTypeChangeIsConflict: a file that became a directory in the new
// defaults (and the reverse) is a reported conflict with the local one
// kept; nothing below it is touched, and the rest of /etc still merges.
// Today's merge failed half-way, after writing part of the tree.
func TestMergeTypeChangeIsConflict(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	tree{"to-dir": "v1\n", "to-file/a": "v1\n", "z-updated": "v1\n"}.write(t, root.Join(BaseDir))
	tree{"to-dir/a": "new\n", "to-dir/b/c": "new\n", "to-file": "new\n", "z-updated": "v2\n", "a-added": "new\n"}.write(t, root.Join(FactoryDir))
	tree{"to-dir": "mine\n", "to-file/a": "mine\n", "z-updated": "v1\n"}.write(t, root.Join(EtcDir))
	rep, err := Run(context.Background(), root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("got %v, want a merge with conflicts", err)
	}
	got := map[string]Change{}
	for _, c := range rep.Changes {
		got[c.Path] = c
	}
	if c := got["to-dir"]; c.Action != Conflict || !strings.Contains(c.Reason, "is a file here and a directory in the new defaults") {
		t.Errorf("to-dir: got %+v", c)
	}
	if c := got["to-file"]; c.Action != Conflict || !strings.Contains(c.Reason, "is a directory here and a file in the new defaults") || c.New != "to-file"+NewSuffix {
		t.Errorf("to-file: got %+v", c)
	}
	if got["a-added"].Action != Added || got["z-updated"].Action != Updated {
		t.Errorf("the rest of /etc did not merge: %+v", rep.Changes)
	}
	if b, _ := os.ReadFile(root.Join(EtcDir, "to-dir")); string(b) != "mine\n" {
		t.Errorf("to-dir: got %q, want the local file", b)
	}
	if b, _ := os.ReadFile(root.Join(EtcDir, "to-file/a")); string(b) != "mine\n" {
		t.Errorf("to-file/a: got %q, want the local file", b)
	}
	if len(rep.Changes) != 4 {
		t.Errorf("got %d changes, want 4 (nothing below the clashing paths): %+v", len(rep.Changes), rep.Changes)
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

// TestRunSkipsWhenUsrUnchanged: a boot of the /usr the last merge completed
// with reads nothing but the pending conflicts; a boot of another /usr
// merges, and records its root hash.
func TestRunSkipsWhenUsrUnchanged(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	base.write(t, root.Join(BaseDir))
	newFactory.write(t, root.Join(FactoryDir))
	local.write(t, root.Join(EtcDir))
	cmdline := func(hash string) {
		tree{"cmdline": "root=PARTUUID=x usrhash=" + hash + " quiet\n"}.write(t, root.Join("/proc"))
	}
	quiet := slog.New(slog.DiscardHandler)
	cmdline("aaaa")
	rep, err := Run(context.Background(), root, quiet)
	if err != nil || rep.Unchanged || len(rep.Conflicts()) == 0 {
		t.Fatalf("first merge: %+v, %v; want a merge with conflicts", rep, err)
	}
	if got := mergedWith(root); got != "aaaa" {
		t.Errorf("recorded %q, want the booted usrhash", got)
	}
	conflicts, _ := ReadConflicts(root)
	// The same /usr again: nothing merged, even with the factory tree
	// changed under it (it cannot change without a new usrhash).
	tree{"untouched": "v3\n"}.write(t, root.Join(FactoryDir))
	os.Remove(root.Join(EtcDir, conflicts[0].New)) // the operator resolves one
	rep, err = Run(context.Background(), root, quiet)
	if err != nil || !rep.Unchanged {
		t.Fatalf("same /usr: %+v, %v; want unchanged", rep, err)
	}
	if b, _ := os.ReadFile(root.Join(EtcDir, "untouched")); string(b) != "v2\n" {
		t.Errorf("same /usr merged anyway: untouched is %q", b)
	}
	if now, _ := ReadConflicts(root); len(now) != len(conflicts)-1 {
		t.Errorf("conflicts %v after resolving one of %v", now, conflicts)
	}
	// Another /usr merges.
	cmdline("bbbb")
	if rep, err = Run(context.Background(), root, quiet); err != nil || rep.Unchanged {
		t.Fatalf("new /usr: %+v, %v", rep, err)
	}
	if b, _ := os.ReadFile(root.Join(EtcDir, "untouched")); string(b) != "v3\n" || mergedWith(root) != "bbbb" {
		t.Errorf("new /usr: untouched %q, recorded %q", b, mergedWith(root))
	}
}
