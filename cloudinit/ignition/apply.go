package ignition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/accounts"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/coreos/ignition/v2/config/v3_5/types"
)

// maxTotal bounds everything a config fetches: it is all held in memory
// until every fetch has succeeded, so that a failed one applies nothing.
const maxTotal = 512 << 20

// Applier applies configs to a root.
type Applier struct {
	Root   fsroot.Root
	Runner run.Runner
	Log    *slog.Logger
	// Offline says Root is an image tree, not the running system: files,
	// users and unit enablement are written, and nothing that acts on the
	// running kernel or service manager (hostname, reloads, starting and
	// stopping units) is run.
	Offline bool
	// MaxSize bounds each fetched resource; 0 takes DefaultMaxSize.
	MaxSize int64
}

// Result says what Apply found besides errors.
type Result struct {
	// Warnings of referenced configs (merge, replace), each prefixed with
	// its source.
	Warnings []string
}

// fileData is what was fetched for storage.files[i].
type fileData struct {
	contents []byte // nil when contents.source is absent
	appends  [][]byte
}

// Apply applies cfg all or nothing, as Ignition does: it resolves the
// referenced configs, refuses the whole config (a *RefusedError naming
// every path, nothing applied) when it uses anything Bulkhead does not
// implement or conflicts with the root, fetches every resource, and only
// when all of that succeeded writes: groups and users first (files may be
// owned by them), then directories, files and links by depth, then units;
// finally what was written is made to take effect (hostname, reloads,
// units enabled, disabled, masked, started or stopped).
func (a Applier) Apply(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	top, err := a.fetcherFor(ctx, nil, cfg)
	if err != nil {
		return res, &RefusedError{Problems: []string{err.Error()}}
	}
	if cfg, err = a.render(ctx, top, cfg, 0, &res.Warnings); err != nil {
		return res, &RefusedError{Problems: []string{err.Error()}}
	}
	if probs := append(Unsupported(cfg), a.conflicts(cfg)...); len(probs) > 0 {
		return res, &RefusedError{Problems: probs}
	}
	f, err := a.fetcherFor(ctx, top, cfg)
	if err != nil {
		return res, &RefusedError{Problems: []string{err.Error()}}
	}
	data, probs := fetchAll(ctx, f, cfg.Storage.Files)
	probs = append(probs, checkHostname(cfg.Storage.Files, data)...)
	if len(probs) > 0 {
		return res, &RefusedError{Problems: probs}
	}
	if err := a.passwd(ctx, cfg.Passwd); err != nil {
		return res, err
	}
	written, err := a.storage(cfg.Storage, data)
	if err != nil {
		return res, err
	}
	return res, a.systemd(ctx, cfg.Systemd.Units, written)
}

// fetchAll fetches the contents and appends of every file, reporting
// every failure by path.
func fetchAll(ctx context.Context, f *fetcher, files []types.File) ([]fileData, []string) {
	data := make([]fileData, len(files))
	var probs []string
	var total int
	for i, file := range files {
		if file.Contents.Source != nil {
			b, err := f.fetch(ctx, file.Contents)
			if err != nil {
				probs = append(probs, fmt.Sprintf("storage.files[%d].contents: %v", i, err))
			}
			data[i].contents = b
			total += len(b)
		}
		for j, r := range file.Append {
			b, err := f.fetch(ctx, r)
			if err != nil {
				probs = append(probs, fmt.Sprintf("storage.files[%d].append[%d]: %v", i, j, err))
			}
			data[i].appends = append(data[i].appends, b)
			total += len(b)
		}
		if total > maxTotal {
			return nil, append(probs, fmt.Sprintf("storage.files: more than %d bytes to fetch in all", maxTotal))
		}
	}
	return data, probs
}

// checkHostname refuses an /etc/hostname whose first line is not a host
// name: it is passed to hostname(1), where "-F/etc/shadow" would be an
// option, and the kernel keeps at most 64 bytes of it.
func checkHostname(files []types.File, data []fileData) []string {
	for i, f := range files {
		if filepath.Clean(f.Path) != "/etc/hostname" || data == nil {
			continue
		}
		content := data[i].contents
		for _, b := range data[i].appends {
			content = append(content[:len(content):len(content)], b...)
		}
		name, _, _ := strings.Cut(strings.TrimSpace(string(content)), "\n")
		if name = strings.TrimSpace(name); name != "" && !validHostname(name) {
			return []string{fmt.Sprintf("storage.files[%d]: /etc/hostname: %q is not a valid host name", i, name)}
		}
	}
	return nil
}

// validHostname accepts dot-separated labels of letters, digits and
// inner hyphens (RFC 1123), at most 64 bytes (HOST_NAME_MAX).
func validHostname(name string) bool {
	if len(name) > 64 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// passwd applies groups, then users (Ignition's createPasswd order);
// shouldExist: false deletes an existing one.
func (a Applier) passwd(ctx context.Context, p types.Passwd) error {
	for i, g := range p.Groups {
		path := fmt.Sprintf("passwd.groups[%d]", i)
		if isFalse(g.ShouldExist) {
			if _, ok := accounts.LookupGroup(a.Root, g.Name); ok {
				if _, err := a.Runner.Run(ctx, run.Cmd{Name: "groupdel", Args: []string{g.Name}}); err != nil {
					return fmt.Errorf("%s: deleting group %s: %w", path, g.Name, err)
				}
			}
			continue
		}
		if err := accounts.EnsureGroup(ctx, a.Runner, a.Root, accounts.Group{
			Name: g.Name, GID: g.Gid, System: isTrue(g.System), PasswordHash: g.PasswordHash,
		}); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	for i, u := range p.Users {
		path := fmt.Sprintf("passwd.users[%d]", i)
		if isFalse(u.ShouldExist) {
			if _, ok := accounts.Lookup(a.Root, u.Name); ok {
				if _, err := a.Runner.Run(ctx, run.Cmd{Name: "userdel", Args: []string{"--remove", u.Name}}); err != nil {
					return fmt.Errorf("%s: deleting user %s: %w", path, u.Name, err)
				}
			}
			continue
		}
		if err := a.user(ctx, u); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

func (a Applier) user(ctx context.Context, u types.PasswdUser) error {
	groups := make([]string, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = string(g)
	}
	err := accounts.Ensure(ctx, a.Runner, a.Root, accounts.User{
		Name: u.Name, Gecos: u.Gecos, Homedir: u.HomeDir, Shell: u.Shell, PrimaryGroup: u.PrimaryGroup,
		Groups: groups, UID: u.UID, PasswordHash: u.PasswordHash, System: isTrue(u.System),
		NoCreateHome: isTrue(u.NoCreateHome), NoUserGroup: isTrue(u.NoUserGroup), NoLogInit: isTrue(u.NoLogInit),
	})
	if err != nil {
		return err
	}
	keys := make([]string, len(u.SSHAuthorizedKeys))
	for i, k := range u.SSHAuthorizedKeys {
		keys[i] = string(k)
	}
	return accounts.AddAuthorizedKeys(a.Root, u.Name, keys)
}

// entry is one directory, file or link, with its JSON path.
type entry struct {
	path   string // JSON path, for errors
	node   types.Node
	create func() error
}

// storage creates directories, files and links in Ignition's order
// (getOrderedCreationList): by depth so parents come first, hard links
// last so they can point at anything the config creates. A node with
// overwrite: true replaces whatever is at its path. It returns the paths
// written.
func (a Applier) storage(s types.Storage, data []fileData) ([]string, error) {
	var entries, hard []entry
	for i, d := range s.Directories {
		entries = append(entries, entry{fmt.Sprintf("storage.directories[%d]", i), d.Node, func() error { return a.directory(d) }})
	}
	for i, f := range s.Files {
		entries = append(entries, entry{fmt.Sprintf("storage.files[%d]", i), f.Node, func() error { return a.file(f, data[i]) }})
	}
	for i, l := range s.Links {
		e := entry{fmt.Sprintf("storage.links[%d]", i), l.Node, func() error { return a.link(l) }}
		if isTrue(l.Hard) {
			hard = append(hard, e)
		} else {
			entries = append(entries, e)
		}
	}
	depth := func(p string) int { return strings.Count(filepath.Clean(p), "/") }
	sort.SliceStable(entries, func(i, j int) bool { return depth(entries[i].node.Path) < depth(entries[j].node.Path) })
	var written []string
	for _, e := range append(entries, hard...) {
		if isTrue(e.node.Overwrite) {
			if err := os.RemoveAll(a.Root.Join(e.node.Path)); err != nil {
				return written, fmt.Errorf("%s: removing %s to overwrite it: %w", e.path, e.node.Path, err)
			}
		}
		if err := e.create(); err != nil {
			return written, fmt.Errorf("%s: %w", e.path, err)
		}
		written = append(written, filepath.Clean(e.node.Path))
	}
	return written, nil
}

// directory creates a directory; an existing one only gets the mode
// and owner asked for (its mode is kept when none is).
func (a Applier) directory(d types.Directory) error {
	path := a.Root.Join(d.Path)
	st, err := os.Lstat(path)
	if err != nil {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("creating directory %s: %w", d.Path, err)
		}
	} else if !st.IsDir() {
		return fmt.Errorf("creating directory %s: a non-directory exists there and overwrite is false", d.Path)
	}
	mode := os.FileMode(0o755)
	if d.Mode != nil {
		mode = specMode(*d.Mode)
	} else if err == nil {
		mode = st.Mode()
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("setting mode of %s: %w", d.Path, err)
	}
	return a.chown(path, d.Node, false)
}

// file writes a file: its contents (empty when absent and no file is
// there; an existing file is kept when absent) followed by its appends.
func (a Applier) file(f types.File, data fileData) error {
	path := a.Root.Join(f.Path)
	var out []byte
	mode := os.FileMode(0o644)
	if f.Contents.Source == nil {
		if st, err := os.Lstat(path); err == nil {
			if !st.Mode().IsRegular() {
				return fmt.Errorf("writing %s: a non-regular file exists there and overwrite is false", f.Path)
			}
			old, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("reading %s to append to it: %w", f.Path, err)
			}
			out, mode = old, st.Mode().Perm()
		}
	} else {
		out = data.contents
	}
	for _, b := range data.appends {
		out = append(out, b...)
	}
	if f.Mode != nil {
		mode = specMode(*f.Mode)
	}
	if err := fsroot.WriteFile(path, out, mode); err != nil {
		return err
	}
	return a.chown(path, f.Node, false)
}

// link creates a symbolic or hard link; the same link already there is
// kept, its owner set.
func (a Applier) link(l types.Link) error {
	path := a.Root.Join(l.Path)
	if l.Target == nil {
		return errors.New("target: required")
	}
	if _, err := os.Lstat(path); err == nil {
		if msg := a.linkConflict(l); msg != "" {
			return fmt.Errorf("creating link %s: %s and overwrite is false", l.Path, msg)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating link %s: %w", l.Path, err)
		}
		if isTrue(l.Hard) {
			if err := os.Link(a.Root.Join(*l.Target), path); err != nil {
				return fmt.Errorf("creating hard link %s: %w", l.Path, err)
			}
			return nil // hard links have no owner of their own
		}
		if err := os.Symlink(*l.Target, path); err != nil {
			return fmt.Errorf("creating link %s: %w", l.Path, err)
		}
	}
	if isTrue(l.Hard) {
		return nil
	}
	return a.chown(path, l.Node, true)
}

// specMode keeps the permission bits of a spec mode. Ignition up to
// spec 3.5 does not apply setuid, setgid or sticky bits (its validation
// warns "not supported or functional in spec versions older than 3.6.0",
// and that warning reaches the console).
func specMode(m int) os.FileMode { return os.FileMode(m) & os.ModePerm }

// chown applies the node's owner by id or by name looked up in the root.
func (a Applier) chown(path string, n types.Node, link bool) error {
	uid, gid := -1, -1
	if n.User.ID != nil {
		uid = *n.User.ID
	} else if n.User.Name != nil {
		e, ok := accounts.Lookup(a.Root, *n.User.Name)
		if !ok {
			return fmt.Errorf("user %s: no such user", *n.User.Name)
		}
		uid = e.UID
	}
	if n.Group.ID != nil {
		gid = *n.Group.ID
	} else if n.Group.Name != nil {
		g, ok := accounts.LookupGroup(a.Root, *n.Group.Name)
		if !ok {
			return fmt.Errorf("group %s: no such group", *n.Group.Name)
		}
		gid = g
	}
	if uid == -1 && gid == -1 {
		return nil
	}
	var err error
	if link {
		err = os.Lchown(path, uid, gid)
	} else {
		err = os.Chown(path, uid, gid)
	}
	if err != nil && os.Geteuid() != 0 {
		return nil // unprivileged runs (unit tests) cannot give files away
	}
	return err
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
