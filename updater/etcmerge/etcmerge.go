package etcmerge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// Where the trees live on a host, relative to its root.
const (
	BaseDir       = "/var/lib/bulkhead/updater/factory-etc"
	FactoryDir    = "/usr/share/factory/etc"
	EtcDir        = "/etc"
	ConflictsFile = "/var/lib/bulkhead/updater/etc-conflicts.json"
	// MergedFile holds the root hash (usrhash=) of the /usr whose factory
	// tree the last merge completed with: while the booted /usr is that
	// one, there is nothing new to merge and the boot skips the walk (the
	// builder writes it, with BaseDir, so a first boot skips it too).
	// bulkhead-etc-merge.service makes the same comparison in its
	// ExecCondition, so such a boot does not even start hostctl.
	MergedFile = "/var/lib/bulkhead/updater/etc-merged-usrhash"
)

// Skipped are top-level /etc entries the merge never touches: they belong to
// the host and the disk, not to a version. machine-id is the host's identity;
// fstab names partitions by PARTUUID, which are fixed for the life of a disk
// while a new version's factory copy carries the UUIDs of its own build (the
// builder leaves both out of its tmpfiles C lines for the same reason).
var Skipped = map[string]bool{"machine-id": true, "fstab": true}

// Action is what happened to one path in /etc.
type Action string

const (
	Added    Action = "added"    // new in the factory, copied into /etc
	Updated  Action = "updated"  // untouched locally, follows the new default
	Removed  Action = "removed"  // dropped by the factory, untouched locally
	Conflict Action = "conflict" // both sides changed: the local file is kept
)

// Change is one path the merge touched or could not decide.
type Change struct {
	Path   string `json:"path"` // relative to /etc
	Action Action `json:"action"`
	Reason string `json:"reason,omitempty"`
	// New, for a conflict, is where the new default was written beside the
	// kept local file (relative to /etc): the conflict is listed until the
	// operator removes it. Without one, it is listed until the local path
	// is gone.
	New string `json:"new,omitempty"`
}

// NewSuffix names the new default written beside a conflicting local file.
const NewSuffix = ".bulkhead-new"

// Report is the outcome of a merge; its conflicts are what
// /var/lib/bulkhead/updater/etc-conflicts.json holds.
type Report struct {
	FirstBoot bool `json:"firstBoot,omitempty"`
	// Unchanged: the booted /usr is the one the last merge completed with
	// (MergedFile); nothing was read but the pending conflicts.
	Unchanged bool     `json:"unchanged,omitempty"`
	Changes   []Change `json:"changes"`
	// BaseCurrent: the base already equals the new factory tree (no new
	// version since the last merge), so it need not be rewritten.
	BaseCurrent bool `json:"-"`
}

// Conflicts returns the conflicting paths only.
func (r Report) Conflicts() []Change {
	var out []Change
	for _, c := range r.Changes {
		if c.Action == Conflict {
			out = append(out, c)
		}
	}
	return out
}

// Trees are the three directories a merge reads, and the one it writes.
type Trees struct {
	Base  string // previous factory tree; may not exist (first boot)
	New   string // the booted version's factory tree
	Local string // /etc
}

// entry is what a merge compares: a file's bytes and permission bits, or a
// symlink's target. Ownership follows the factory when a file is copied.
type entry struct {
	kind   fs.FileMode // 0 for a regular file, fs.ModeSymlink, fs.ModeDir
	mode   fs.FileMode // permission bits
	data   []byte      // file content or link target
	uid    int
	gid    int
	exists bool
}

func (a entry) same(b entry) bool {
	if a.exists != b.exists {
		return false
	}
	if !a.exists {
		return true
	}
	if a.kind != b.kind {
		return false
	}
	if a.kind == fs.ModeSymlink {
		return bytes.Equal(a.data, b.data)
	}
	// Owner and mode are part of a file's meaning (shadow 0640 root:shadow,
	// a service's key readable by its user only).
	return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && bytes.Equal(a.data, b.data)
}

// read loads the entry at p; a missing path is an entry that does not exist.
func read(p string) (entry, error) {
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return entry{}, nil
	}
	if err != nil {
		return entry{}, err
	}
	e := entry{exists: true, mode: st.Mode().Perm() | st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		e.uid, e.gid = int(sys.Uid), int(sys.Gid)
	}
	switch {
	case st.Mode().IsRegular():
		e.data, err = os.ReadFile(p)
	case st.Mode()&fs.ModeSymlink != 0:
		e.kind = fs.ModeSymlink
		var t string
		t, err = os.Readlink(p)
		e.data = []byte(t)
	case st.IsDir():
		e.kind = fs.ModeDir
	default:
		// Devices, sockets, fifos have no place in a factory tree.
		e.kind = st.Mode().Type()
	}
	return e, err
}

// list returns every path under dir (relative, sorted), or nil when dir does
// not exist.
func list(dir string) (map[string]bool, error) {
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out[rel] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return out, nil
}

// op is one planned write of a merge.
type op struct {
	path   string
	action Action
	e      entry // what to install (Added, Updated, the new default of a Conflict)
	reason string
	data   []byte // merged content of an account database (Updated or Conflict)
}

// Merge merges t.New into t.Local against t.Base and reports what it did. It
// reads everything and plans every path before it writes anything, so a
// path it cannot merge (a type change, a read error) never leaves /etc half
// merged. It does not update the base: Run does that once the merge
// succeeded.
func Merge(ctx context.Context, t Trees, log *slog.Logger) (Report, error) {
	rep, ops, removals, err := plan(ctx, t)
	if err != nil {
		return rep, err
	}
	for _, o := range ops {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := apply(t, o); err != nil {
			return rep, fmt.Errorf("merging /etc/%s: %w", o.path, err)
		}
		if o.action == Conflict && o.e.exists && o.e.kind != fs.ModeDir {
			rep.Changes = append(rep.Changes, Change{Path: o.path, Action: o.action, Reason: o.reason, New: o.path + NewSuffix})
		} else if o.e.kind != fs.ModeDir || o.action == Conflict {
			rep.Changes = append(rep.Changes, Change{Path: o.path, Action: o.action, Reason: o.reason})
		}
	}
	// Removals go deepest first so a directory empties before it goes.
	sort.Sort(sort.Reverse(sort.StringSlice(removals)))
	for _, p := range removals {
		lp := filepath.Join(t.Local, p)
		if err := os.Remove(lp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				continue // a directory still holding local files stays
			}
			return rep, fmt.Errorf("merging /etc/%s: %w", p, err)
		}
		if e, _ := read(filepath.Join(t.Base, p)); e.kind != fs.ModeDir {
			rep.Changes = append(rep.Changes, Change{Path: p, Action: Removed})
		}
	}
	sort.Slice(rep.Changes, func(i, j int) bool { return rep.Changes[i].Path < rep.Changes[j].Path })
	for _, c := range rep.Changes {
		log.Info("etc merge", "path", "/etc/"+c.Path, "action", c.Action, "reason", c.Reason)
	}
	return rep, nil
}

// plan reads the three trees and decides every path.
func plan(ctx context.Context, t Trees) (Report, []op, []string, error) {
	var rep Report
	if _, err := os.Stat(t.Base); errors.Is(err, fs.ErrNotExist) {
		rep.FirstBoot = true
	}
	baseList, err := list(t.Base)
	if err != nil {
		return rep, nil, nil, err
	}
	newList, err := list(t.New)
	if err != nil {
		return rep, nil, nil, err
	}
	union := map[string]bool{}
	for p := range baseList {
		union[p] = true
	}
	for p := range newList {
		union[p] = true
	}
	paths := make([]string, 0, len(union))
	for p := range union {
		if !Skipped[strings.SplitN(p, string(filepath.Separator), 2)[0]] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var ops []op
	var removals []string
	// blocked holds paths whose subtree is left alone: their type changed,
	// so nothing below them can be merged without a half-merge.
	var blocked []string
	rep.BaseCurrent = !rep.FirstBoot
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return rep, nil, nil, err
		}
		var b, n, l entry
		for _, x := range []struct {
			dir string
			e   *entry
		}{{t.Base, &b}, {t.New, &n}, {t.Local, &l}} {
			if *x.e, err = read(filepath.Join(x.dir, p)); err != nil {
				return rep, nil, nil, fmt.Errorf("merging /etc/%s: %w", p, err)
			}
		}
		rep.BaseCurrent = rep.BaseCurrent && b.same(n)
		if under(p, blocked) {
			continue
		}
		if reason := typeClash(rep.FirstBoot, b, n, l); reason != "" {
			blocked = append(blocked, p)
			o := op{path: p, action: Conflict, reason: reason}
			if n.exists && n.kind != fs.ModeDir {
				o.e = n
			}
			ops = append(ops, o)
			continue
		}
		if Accounts[p] && !rep.FirstBoot && b.exists && n.exists && l.exists && b.kind == 0 && n.kind == 0 && l.kind == 0 && !l.same(n) && !b.same(n) {
			if o, ok := mergeAccounts(p, b, n, l); ok {
				ops = append(ops, o)
			}
			continue
		}
		act, reason := decide(rep.FirstBoot, b, n, l)
		switch act {
		case "":
		case Removed:
			removals = append(removals, p)
		case Conflict:
			o := op{path: p, action: act, reason: reason}
			if n.exists && n.kind != fs.ModeDir {
				o.e = n // written beside the local file
			}
			ops = append(ops, o)
		default:
			ops = append(ops, op{path: p, action: act, e: n})
		}
	}
	return rep, ops, removals, nil
}

// under tells whether p lies below one of dirs.
func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(p, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// typeClash returns why a path cannot be merged because a file became a
// directory (or the reverse) on one side while the other side has the
// other type, or "" when types agree.
func typeClash(firstBoot bool, b, n, l entry) string {
	if !n.exists || !l.exists || n.kind == l.kind {
		return ""
	}
	if !firstBoot && b.exists && l.same(b) && n.kind != fs.ModeDir && l.kind != fs.ModeDir {
		return "" // file <-> symlink: an ordinary update of an untouched path
	}
	if firstBoot && n.kind != fs.ModeDir && l.kind != fs.ModeDir {
		return ""
	}
	return fmt.Sprintf("is a %s here and a %s in the new defaults: kept the local one, nothing below it merged", kindName(l.kind), kindName(n.kind))
}

func kindName(k fs.FileMode) string {
	switch k {
	case 0:
		return "file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symlink"
	}
	return k.String()
}

// apply carries out one planned op under t.Local.
func apply(t Trees, o op) error {
	p := filepath.Join(t.Local, o.path)
	switch {
	case o.data != nil && o.action == Updated:
		l, err := read(p)
		if err != nil {
			return err
		}
		l.data = o.data
		return install(p, l) // the local file's owner and mode stay
	case o.action == Conflict && o.data != nil:
		l, err := read(p)
		if err != nil {
			return err
		}
		l.data = o.data
		if err := install(p, l); err != nil {
			return err
		}
		return install(p+NewSuffix, o.e)
	case o.action == Conflict:
		if !o.e.exists {
			return nil
		}
		return install(p+NewSuffix, o.e)
	}
	return install(p, o.e)
}

// decide is the three-way rule for one path; "" means leave it alone.
func decide(firstBoot bool, b, n, l entry) (Action, string) {
	switch {
	case firstBoot:
		// No record of earlier defaults: only fill in what is missing.
		if n.exists && !l.exists {
			return Added, ""
		}
		return "", ""
	case n.exists && !b.exists:
		switch {
		case !l.exists:
			return Added, ""
		case l.same(n):
			return "", ""
		case n.kind == fs.ModeDir && l.kind == fs.ModeDir:
			return "", ""
		}
		return Conflict, "new in the defaults, but a local file is already there: kept the local file, the new default beside it"
	case n.exists && b.exists:
		switch {
		case b.same(n), l.same(n):
			return "", ""
		case !l.exists:
			return Conflict, "deleted locally, changed in the new defaults: left deleted, the new default beside it"
		case l.same(b):
			return Updated, ""
		case n.kind == fs.ModeDir && l.kind == fs.ModeDir:
			return "", "" // owner or mode changed on both sides: the local one stays
		case bytes.Equal(l.data, n.data) || bytes.Equal(l.data, b.data):
			return Conflict, fmt.Sprintf("owner or mode changed locally (%s) and in the new defaults (%s): kept the local file", attrs(l), attrs(n))
		}
		return Conflict, "changed locally and in the new defaults: kept the local file, the new default beside it"
	case b.exists: // removed from the factory
		switch {
		case !l.exists:
			return "", ""
		case l.same(b):
			return Removed, ""
		case b.kind == fs.ModeDir && l.kind == fs.ModeDir:
			return Removed, "" // removed only if it ends up empty
		}
		return Conflict, "removed from the defaults, changed locally: kept the local file"
	}
	return "", ""
}

// attrs renders a file's mode and owner for a conflict reason.
func attrs(e entry) string { return fmt.Sprintf("%04o %d:%d", e.mode, e.uid, e.gid) }

// install puts e at p atomically (temp + rename), creating parent
// directories, with the factory's mode and, when running as root, owner.
func install(p string, e entry) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	switch e.kind {
	case fs.ModeDir:
		if err := os.Mkdir(p, e.mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(p, e.mode); err != nil {
			return err
		}
		return chown(p, e)
	case fs.ModeSymlink:
		tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".etcmerge")
		os.Remove(tmp)
		if err := os.Symlink(string(e.data), tmp); err != nil {
			return err
		}
		if err := chown(tmp, e); err != nil {
			return err
		}
		return os.Rename(tmp, p)
	case 0:
		if err := fsroot.WriteFile(p, e.data, e.mode); err != nil {
			return err
		}
		return chown(p, e)
	}
	return fmt.Errorf("unsupported file type %s in the factory tree", e.kind)
}

// copyEntry writes e at p without the per-file atomicity of install: for a
// fresh tree nobody reads yet.
func copyEntry(p string, e entry) error {
	if e.kind != 0 {
		return install(p, e)
	}
	if err := os.WriteFile(p, e.data, e.mode); err != nil {
		return err
	}
	if err := os.Chmod(p, e.mode); err != nil {
		return err
	}
	return chown(p, e)
}

func chown(p string, e entry) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(p, e.uid, e.gid)
}

// Run merges the host's /etc and then records the new factory tree as the
// base for the next merge, and the conflicts for `hostctl status`. A power
// cut before the base is replaced only means the merge runs again: it is
// idempotent.
func Run(ctx context.Context, root fsroot.Root, log *slog.Logger) (Report, error) {
	t := Trees{Base: root.Join(BaseDir), New: root.Join(FactoryDir), Local: root.Join(EtcDir)}
	// A cut between the two renames below leaves only the .old tree.
	if _, err := os.Stat(t.Base); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(t.Base + ".old"); err == nil {
			if err := os.Rename(t.Base+".old", t.Base); err != nil {
				return Report{}, fmt.Errorf("restoring %s: %w", t.Base, err)
			}
		}
	}
	prev, err := ReadConflicts(root)
	if err != nil {
		return Report{}, err
	}
	hash := bootedUsrHash(root)
	if hash != "" && mergedWith(root) == hash {
		if _, err := os.Stat(t.Base); err == nil {
			// Conflicts the operator resolved since leave the list.
			if now := Pending(t.Local, prev, nil); len(now) != len(prev) {
				if err := writeConflicts(root, now); err != nil {
					return Report{}, err
				}
			}
			return Report{Unchanged: true}, nil
		}
	}
	rep, err := Merge(ctx, t, log)
	if err != nil {
		return rep, err
	}
	if err := writeConflicts(root, Pending(t.Local, prev, rep.Conflicts())); err != nil {
		return rep, err
	}
	if !rep.BaseCurrent {
		if err := replaceTree(t.New, t.Base); err != nil {
			return rep, fmt.Errorf("recording factory defaults in %s: %w", t.Base, err)
		}
	}
	if hash != "" {
		if err := fsroot.WriteFile(root.Join(MergedFile), []byte(hash+"\n"), 0o644); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func writeConflicts(root fsroot.Root, c []Change) error {
	b, err := json.MarshalIndent(struct {
		Conflicts []Change `json:"conflicts"`
	}{c}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding /etc conflicts: %w", err)
	}
	return fsroot.WriteFile(root.Join(ConflictsFile), append(b, '\n'), 0o644)
}

// bootedUsrHash is the usrhash= of the running kernel's command line; ""
// when there is none.
func bootedUsrHash(root fsroot.Root) string {
	b, _ := os.ReadFile(root.Join("/proc/cmdline"))
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "usrhash="); ok {
			return v
		}
	}
	return ""
}

// mergedWith is MergedFile's root hash; "" when there is none.
func mergedWith(root fsroot.Root) string {
	b, _ := os.ReadFile(root.Join(MergedFile))
	return strings.TrimSpace(string(b))
}

// Pending is the conflict list to keep: this merge's conflicts, and every
// earlier one on another path the operator has not resolved yet (its
// .bulkhead-new beside the local file still there; or, without one, the
// local path still there). A conflict is thus listed until resolved, not
// only on the boot that found it.
func Pending(local string, prev, now []Change) []Change {
	out := append([]Change{}, now...)
	seen := map[string]bool{}
	for _, c := range now {
		seen[c.Path] = true
	}
	for _, c := range prev {
		if seen[c.Path] {
			continue
		}
		p := c.Path
		if c.New != "" {
			p = c.New
		}
		if _, err := os.Lstat(filepath.Join(local, p)); err == nil {
			out = append(out, c)
			seen[c.Path] = true
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ReadConflicts returns the conflicts of the last merge (none when no merge
// ran yet), for `hostctl status`.
func ReadConflicts(root fsroot.Root) ([]Change, error) {
	b, err := os.ReadFile(root.Join(ConflictsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading /etc conflicts: %w", err)
	}
	var v struct {
		Conflicts []Change `json:"conflicts"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("reading /etc conflicts %s: %w", root.Join(ConflictsFile), err)
	}
	// Those the operator resolved since (a boot that merged nothing does
	// not rewrite the file) are gone.
	return Pending(root.Join(EtcDir), v.Conflicts, nil), nil
}

// replaceTree copies src to dst.new, then swaps it in for dst.
func replaceTree(src, dst string) error {
	tmp := dst + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	paths, err := list(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		e, err := read(filepath.Join(src, p))
		if err != nil {
			return err
		}
		if err := copyEntry(filepath.Join(tmp, p), e); err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
	}
	// One filesystem sync instead of one per file: the copy only counts
	// once the rename below makes it the base.
	if d, err := os.Open(tmp); err == nil {
		err = unix.Syncfs(int(d.Fd()))
		d.Close()
		if err != nil {
			return fmt.Errorf("syncing %s: %w", tmp, err)
		}
	}
	if _, err := os.Stat(dst); err == nil {
		os.RemoveAll(dst + ".old")
		if err := os.Rename(dst, dst+".old"); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return os.RemoveAll(dst + ".old")
}
