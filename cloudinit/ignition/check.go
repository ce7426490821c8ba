package ignition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/accounts"
)

// ErrRefused marks a config refused whole: nothing of it was applied.
var ErrRefused = errors.New("ignition config refused, nothing applied")

// RefusedError lists every reason a config was refused, each starting
// with the JSON path it is about ("storage.disks[0]: ...").
type RefusedError struct {
	Problems []string
}

// Error puts one problem on each line.
func (e *RefusedError) Error() string {
	return ErrRefused.Error() + ":\n" + strings.Join(e.Problems, "\n")
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// notSupported is what a section Bulkhead does not implement gets: the
// storage devices and the kernel command line are set up by Ignition in
// the initramfs, before the root is mounted, and Bulkhead provisions a
// booted host whose disks and boot entries its own tools own.
const notSupported = "not supported by Bulkhead"

// Unsupported lists, by JSON path, every part of cfg that Bulkhead does
// not implement: the spec's disks, raid, filesystems, luks and
// kernelArguments sections, and sources whose scheme Bulkhead does not
// fetch. Ignition runs a config completely or fails, so one such entry
// refuses the whole config.
func Unsupported(cfg Config) []string {
	var probs []string
	each := func(section string, n int, hint string) {
		for i := range n {
			probs = append(probs, fmt.Sprintf("%s[%d]: %s%s", section, i, notSupported, hint))
		}
	}
	s := cfg.Storage
	const storageHint = " (disks are set up by storage-setup and the bulkhead: section)"
	each("storage.disks", len(s.Disks), storageHint)
	each("storage.raid", len(s.Raid), storageHint)
	each("storage.filesystems", len(s.Filesystems), storageHint)
	each("storage.luks", len(s.Luks), storageHint)
	const kargsHint = " (the kernel command line is part of the signed boot configuration)"
	each("kernelArguments.shouldExist", len(cfg.KernelArguments.ShouldExist), kargsHint)
	each("kernelArguments.shouldNotExist", len(cfg.KernelArguments.ShouldNotExist), kargsHint)
	source := func(path string, r Resource) {
		if r.Source == nil {
			return
		}
		if scheme, ok := schemeOf(*r.Source); !ok {
			probs = append(probs, fmt.Sprintf("%s.source: scheme %q %s (data, http and https are)", path, scheme, notSupported))
		}
	}
	for i, ca := range cfg.Ignition.Security.TLS.CertificateAuthorities {
		source(fmt.Sprintf("ignition.security.tls.certificateAuthorities[%d]", i), ca)
	}
	for i, f := range s.Files {
		source(fmt.Sprintf("storage.files[%d].contents", i), f.Contents)
		for j, r := range f.Append {
			source(fmt.Sprintf("storage.files[%d].append[%d]", i, j), r)
		}
	}
	return probs
}

// conflicts lists what in the root stops cfg from applying, checked before
// anything is written, with Ignition's rules for overwrite: false (its
// files stage, filesystemEntries.go): a file with contents may not
// replace an existing node, a directory may not replace a non-directory,
// a link may not replace anything but the same link. Owners named by
// nodes must exist or be created by the config.
func (a Applier) conflicts(cfg Config) []string {
	var probs []string
	users, groups := map[string]bool{}, map[string]bool{}
	for _, u := range cfg.Passwd.Users {
		if !isFalse(u.ShouldExist) {
			users[u.Name] = true
			if !isTrue(u.NoUserGroup) {
				groups[u.Name] = true
			}
		}
	}
	for _, g := range cfg.Passwd.Groups {
		if !isFalse(g.ShouldExist) {
			groups[g.Name] = true
		}
	}
	owner := func(path string, n Node) {
		if name := n.User.Name; n.User.ID == nil && name != nil && !users[*name] {
			if _, ok := accounts.Lookup(a.Root, *name); !ok {
				probs = append(probs, fmt.Sprintf("%s.user.name: no user %q in /etc/passwd or passwd.users", path, *name))
			}
		}
		if name := n.Group.Name; n.Group.ID == nil && name != nil && !groups[*name] {
			if _, ok := accounts.LookupGroup(a.Root, *name); !ok {
				probs = append(probs, fmt.Sprintf("%s.group.name: no group %q in /etc/group or passwd.groups", path, *name))
			}
		}
	}
	for i, d := range cfg.Storage.Directories {
		path := fmt.Sprintf("storage.directories[%d]", i)
		owner(path, d.Node)
		if st, err := os.Lstat(a.Root.Join(d.Path)); err == nil && !st.IsDir() && !isTrue(d.Overwrite) {
			probs = append(probs, fmt.Sprintf("%s: %s: a non-directory exists there and overwrite is false", path, d.Path))
		}
	}
	for i, f := range cfg.Storage.Files {
		path := fmt.Sprintf("storage.files[%d]", i)
		owner(path, f.Node)
		st, err := os.Lstat(a.Root.Join(f.Path))
		switch {
		case err != nil || isTrue(f.Overwrite):
		case !st.Mode().IsRegular():
			probs = append(probs, fmt.Sprintf("%s: %s: a non-regular file exists there and overwrite is false", path, f.Path))
		case f.Contents.Source != nil:
			probs = append(probs, fmt.Sprintf("%s: %s: a file exists there and overwrite is false", path, f.Path))
		}
	}
	for i, l := range cfg.Storage.Links {
		path := fmt.Sprintf("storage.links[%d]", i)
		if !isTrue(l.Hard) {
			owner(path, l.Node)
		}
		if l.Target == nil || isTrue(l.Overwrite) {
			continue
		}
		if msg := a.linkConflict(l); msg != "" {
			probs = append(probs, fmt.Sprintf("%s: %s: %s and overwrite is false", path, l.Path, msg))
		}
	}
	return probs
}

// linkConflict says why an existing node at a link's path is not that
// link, or "" when there is none or it is the same link.
func (a Applier) linkConflict(l Link) string {
	st, err := os.Lstat(a.Root.Join(l.Path))
	if err != nil {
		return ""
	}
	if isTrue(l.Hard) {
		tst, err := os.Lstat(a.Root.Join(*l.Target))
		if err != nil || !os.SameFile(st, tst) {
			return "a file exists there that is not the link's target"
		}
		return ""
	}
	if st.Mode()&os.ModeSymlink == 0 {
		return "a non-symlink exists there"
	}
	if target, _ := os.Readlink(a.Root.Join(l.Path)); filepath.Clean(target) != filepath.Clean(*l.Target) {
		return fmt.Sprintf("a symlink to %s exists there", target)
	}
	return ""
}
