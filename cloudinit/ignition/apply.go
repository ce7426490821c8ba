package ignition

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/accounts"
	"github.com/bulkhead-os/bulkhead/cloudinit/units"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/vincent-petithory/dataurl"
)

// Applier applies configs to a root.
type Applier struct {
	Root   fsroot.Root
	Runner run.Runner
	HTTP   *http.Client // for http(s) sources; nil for http.DefaultClient
	Log    *slog.Logger
}

// Result lists what Apply could not do, by JSON path; Apply goes on past
// each so one bad file does not stop the users from being created.
type Result struct {
	Errors []string
	// Unsupported lists sections that need the initramfs stage (disks,
	// filesystems, raid, luks, kernelArguments) and were skipped.
	Unsupported []string
}

// Apply applies cfg: groups and users first (files may be owned by them),
// then directories, files, links, then units.
func (a Applier) Apply(ctx context.Context, cfg Config) Result {
	var res Result
	fail := func(path string, err error) { res.Errors = append(res.Errors, path+": "+err.Error()) }
	s := cfg.Storage
	for name, n := range map[string]int{"storage.disks": len(s.Disks), "storage.filesystems": len(s.Filesystems),
		"storage.raid": len(s.Raid), "storage.luks": len(s.Luks),
		"kernelArguments": len(cfg.KernelArguments.ShouldExist) + len(cfg.KernelArguments.ShouldNotExist)} {
		if n > 0 {
			res.Unsupported = append(res.Unsupported, name+": not supported after the initramfs; use bulkhead.storage for container storage")
		}
	}
	slices.Sort(res.Unsupported) // map order is random; reports are compared
	for i, g := range cfg.Passwd.Groups {
		if err := accounts.EnsureGroup(ctx, a.Runner, a.Root, accounts.Group{
			Name: g.Name, GID: g.Gid, System: isTrue(g.System), PasswordHash: g.PasswordHash,
		}); err != nil {
			fail(fmt.Sprintf("passwd.groups.%d", i), err)
		}
	}
	for i, u := range cfg.Passwd.Users {
		if err := a.user(ctx, u); err != nil {
			fail(fmt.Sprintf("passwd.users.%d", i), err)
		}
	}
	for i, d := range s.Directories {
		if err := a.directory(d); err != nil {
			fail(fmt.Sprintf("storage.directories.%d", i), err)
		}
	}
	for i, f := range s.Files {
		if err := a.file(ctx, f); err != nil {
			fail(fmt.Sprintf("storage.files.%d", i), err)
		}
	}
	for i, l := range s.Links {
		if err := a.link(l); err != nil {
			fail(fmt.Sprintf("storage.links.%d", i), err)
		}
	}
	var us []units.Unit
	for _, u := range cfg.Systemd.Units {
		unit := units.Unit{Name: u.Name, Contents: u.Contents, Mask: isTrue(u.Mask), Enable: isTrue(u.Enabled)}
		if unit.Enable {
			// Ignition enables units in the initramfs, before the real
			// boot's transaction; we run inside it, so start them too.
			unit.Command = "start"
		}
		for _, d := range u.Dropins {
			unit.DropIns = append(unit.DropIns, units.DropIn{Name: d.Name, Contents: deref(d.Contents)})
		}
		us = append(us, unit)
	}
	if err := units.Apply(ctx, a.Runner, a.Root, us); err != nil {
		fail("systemd.units", err)
	}
	return res
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

func (a Applier) directory(d types.Directory) error {
	path := a.Root.Join(d.Path)
	mode := os.FileMode(0o755)
	if d.Mode != nil {
		mode = os.FileMode(*d.Mode)
	}
	if err := os.MkdirAll(path, mode); err != nil {
		return fmt.Errorf("creating directory %s: %w", d.Path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return a.chown(path, d.Node)
}

func (a Applier) file(ctx context.Context, f types.File) error {
	path := a.Root.Join(f.Path)
	var data []byte
	exists := false
	if old, err := os.ReadFile(path); err == nil {
		exists = true
		data = old
	}
	hasContents := f.Contents.Source != nil
	if exists && hasContents && !isTrue(f.Overwrite) {
		return fmt.Errorf("%s exists and overwrite is false", f.Path)
	}
	if hasContents || !exists {
		data = nil
	}
	if hasContents {
		c, err := a.fetch(ctx, f.Contents)
		if err != nil {
			return fmt.Errorf("contents of %s: %w", f.Path, err)
		}
		data = c
	}
	for i, r := range f.Append {
		c, err := a.fetch(ctx, r)
		if err != nil {
			return fmt.Errorf("append.%d of %s: %w", i, f.Path, err)
		}
		data = append(data, c...)
	}
	mode := os.FileMode(0o644)
	if f.Mode != nil {
		mode = os.FileMode(*f.Mode)
	}
	if err := fsroot.WriteFile(path, data, mode); err != nil {
		return err
	}
	return a.chown(path, f.Node)
}

func (a Applier) link(l types.Link) error {
	path := a.Root.Join(l.Path)
	if l.Target == nil {
		return fmt.Errorf("target: required")
	}
	if _, err := os.Lstat(path); err == nil {
		if !isTrue(l.Overwrite) {
			return fmt.Errorf("%s exists and overwrite is false", l.Path)
		}
		os.Remove(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if isTrue(l.Hard) {
		return os.Link(a.Root.Join(*l.Target), path)
	}
	if err := os.Symlink(*l.Target, path); err != nil {
		return err
	}
	return a.lchown(path, l.Node, true)
}

func (a Applier) chown(path string, n types.Node) error { return a.lchown(path, n, false) }

// lchown applies the node's owner by id or by name looked up in the root.
func (a Applier) lchown(path string, n types.Node, link bool) error {
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

// maxFetch bounds one fetched resource.
const maxFetch = 256 << 20

// fetch reads a resource (data: or http(s): URL), decompresses it and
// checks its verification hash against the bytes as fetched (Ignition
// hashes the compressed form).
func (a Applier) fetch(ctx context.Context, r types.Resource) ([]byte, error) {
	src := deref(r.Source)
	var raw []byte
	switch {
	case strings.HasPrefix(src, "data:"):
		u, err := dataurl.DecodeString(src)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		raw = u.Data
	case strings.HasPrefix(src, "http://"), strings.HasPrefix(src, "https://"):
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		for _, h := range r.HTTPHeaders {
			req.Header.Set(h.Name, deref(h.Value))
		}
		client := a.HTTP
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", src, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching %s: %s", src, resp.Status)
		}
		raw, err = io.ReadAll(io.LimitReader(resp.Body, maxFetch))
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", src, err)
		}
	default:
		return nil, fmt.Errorf("source: scheme of %q not supported (want data:, http: or https:)", src)
	}
	if err := verify(raw, r.Verification.Hash); err != nil {
		return nil, err
	}
	switch deref(r.Compression) {
	case "":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxFetch))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("compression: %q not supported (want gzip)", deref(r.Compression))
}

// verify checks "sha512-<hex>" or "sha256-<hex>".
func verify(data []byte, want *string) error {
	if want == nil {
		return nil
	}
	algo, sum, ok := strings.Cut(*want, "-")
	var h hash.Hash
	switch {
	case ok && algo == "sha512":
		h = sha512.New()
	case ok && algo == "sha256":
		h = sha256.New()
	default:
		return fmt.Errorf("verification.hash: %q: want sha512-<hex> or sha256-<hex>", *want)
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(sum) {
		return fmt.Errorf("verification.hash: got %s-%s, want %s", algo, got, *want)
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
