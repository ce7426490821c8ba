package accounts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// User is an account to create or update. Nil pointers leave a setting to
// the tool's default (new user) or unchanged (existing user).
type User struct {
	Name         string
	Gecos        *string
	Homedir      *string
	Shell        *string
	PrimaryGroup *string
	Groups       []string
	UID          *int
	PasswordHash *string
	System       bool
	NoCreateHome bool
	NoUserGroup  bool
	NoLogInit    bool
	// Lock locks the password (no password login; keys still work).
	Lock bool
}

// Entry is a line of /etc/passwd.
type Entry struct {
	Name     string
	UID, GID int
	Home     string
}

// Lookup finds a user in the root's /etc/passwd.
func Lookup(root fsroot.Root, name string) (Entry, bool) {
	for _, f := range readColon(root.Join("/etc/passwd")) {
		if len(f) >= 6 && f[0] == name {
			uid, _ := strconv.Atoi(f[2])
			gid, _ := strconv.Atoi(f[3])
			return Entry{Name: name, UID: uid, GID: gid, Home: f[5]}, true
		}
	}
	return Entry{}, false
}

// LookupGroup finds a group's gid in the root's /etc/group.
func LookupGroup(root fsroot.Root, name string) (int, bool) {
	for _, f := range readColon(root.Join("/etc/group")) {
		if len(f) >= 3 && f[0] == name {
			gid, _ := strconv.Atoi(f[2])
			return gid, true
		}
	}
	return 0, false
}

func readColon(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, strings.Split(l, ":"))
		}
	}
	return out
}

// UserArgs builds useradd's arguments for a new user (pure, table-tested).
func UserArgs(u User) []string {
	var a []string
	if u.Gecos != nil {
		a = append(a, "--comment", *u.Gecos)
	}
	if u.Homedir != nil {
		a = append(a, "--home-dir", *u.Homedir)
	}
	if u.Shell != nil {
		a = append(a, "--shell", *u.Shell)
	}
	if u.PrimaryGroup != nil {
		a = append(a, "--gid", *u.PrimaryGroup)
	}
	if len(u.Groups) > 0 {
		a = append(a, "--groups", strings.Join(u.Groups, ","))
	}
	if u.UID != nil {
		a = append(a, "--uid", strconv.Itoa(*u.UID))
	}
	if u.PasswordHash != nil {
		a = append(a, "--password", *u.PasswordHash)
	}
	if u.System {
		a = append(a, "--system")
	}
	if u.NoCreateHome {
		a = append(a, "--no-create-home")
	} else {
		a = append(a, "--create-home")
	}
	if u.NoUserGroup {
		a = append(a, "--no-user-group")
	} else if u.PrimaryGroup == nil {
		a = append(a, "--user-group")
	}
	if u.NoLogInit {
		a = append(a, "--no-log-init")
	}
	return append(a, u.Name)
}

// modArgs builds usermod's arguments for an existing user: only what was
// asked for, and supplementary groups appended, never replaced.
func modArgs(u User) []string {
	var a []string
	if u.Gecos != nil {
		a = append(a, "--comment", *u.Gecos)
	}
	if u.Homedir != nil {
		a = append(a, "--home", *u.Homedir)
	}
	if u.Shell != nil {
		a = append(a, "--shell", *u.Shell)
	}
	if u.PrimaryGroup != nil {
		a = append(a, "--gid", *u.PrimaryGroup)
	}
	if len(u.Groups) > 0 {
		a = append(a, "--append", "--groups", strings.Join(u.Groups, ","))
	}
	if u.UID != nil {
		a = append(a, "--uid", strconv.Itoa(*u.UID))
	}
	if u.PasswordHash != nil {
		a = append(a, "--password", *u.PasswordHash)
	}
	if len(a) == 0 {
		return nil
	}
	return append(a, u.Name)
}

// Ensure creates the user, or updates it when it exists (a new instance
// of an image that already has the account), then locks the password if
// asked. Groups that do not exist yet are created first, as cloud-init does.
func Ensure(ctx context.Context, r run.Runner, root fsroot.Root, u User) error {
	for _, g := range u.Groups {
		if _, ok := LookupGroup(root, g); !ok {
			if err := EnsureGroup(ctx, r, root, Group{Name: g}); err != nil {
				return err
			}
		}
	}
	_, exists := Lookup(root, u.Name)
	if exists {
		if args := modArgs(u); args != nil {
			if _, err := r.Run(ctx, run.Cmd{Name: "usermod", Args: args}); err != nil {
				return fmt.Errorf("updating user %s: %w", u.Name, err)
			}
		}
	} else if _, err := r.Run(ctx, run.Cmd{Name: "useradd", Args: UserArgs(u)}); err != nil {
		return fmt.Errorf("creating user %s: %w", u.Name, err)
	}
	// useradd without --password writes "!" (locked) into shadow, so a new
	// account without a hash needs no second command: each one costs
	// seconds of first boot under emulation.
	if u.Lock && (exists || u.PasswordHash != nil) {
		if _, err := r.Run(ctx, run.Cmd{Name: "usermod", Args: []string{"--lock", u.Name}}); err != nil {
			return fmt.Errorf("locking password of %s: %w", u.Name, err)
		}
	}
	return nil
}

// Group is a group to create, and users to add to it.
type Group struct {
	Name         string
	GID          *int
	System       bool
	PasswordHash *string
	Members      []string
}

// EnsureGroup creates the group if missing and adds its members.
func EnsureGroup(ctx context.Context, r run.Runner, root fsroot.Root, g Group) error {
	if _, ok := LookupGroup(root, g.Name); !ok {
		var a []string
		if g.GID != nil {
			a = append(a, "--gid", strconv.Itoa(*g.GID))
		}
		if g.System {
			a = append(a, "--system")
		}
		if g.PasswordHash != nil {
			a = append(a, "--password", *g.PasswordHash)
		}
		if _, err := r.Run(ctx, run.Cmd{Name: "groupadd", Args: append(a, g.Name)}); err != nil {
			return fmt.Errorf("creating group %s: %w", g.Name, err)
		}
	}
	for _, m := range g.Members {
		if _, err := r.Run(ctx, run.Cmd{Name: "gpasswd", Args: []string{"--add", m, g.Name}}); err != nil {
			return fmt.Errorf("adding %s to group %s: %w", m, g.Name, err)
		}
	}
	return nil
}

// SetPasswords runs chpasswd with "name:password" lines on standard input
// (never on the command line, where ps would show them). hashed selects -e.
func SetPasswords(ctx context.Context, r run.Runner, lines []string, hashed bool) error {
	if len(lines) == 0 {
		return nil
	}
	var args []string
	if hashed {
		args = append(args, "--encrypted")
	}
	in := strings.NewReader(strings.Join(lines, "\n") + "\n")
	if _, err := r.Run(ctx, run.Cmd{Name: "chpasswd", Args: args, Stdin: in}); err != nil {
		return fmt.Errorf("setting passwords: %w", err)
	}
	return nil
}

// maxAuthorizedKeys bounds the authorized_keys read back: sshd itself
// reads any size, but a user-writable file must not exhaust memory.
const maxAuthorizedKeys = 4 << 20

// AddAuthorizedKeys adds keys to the user's ~/.ssh/authorized_keys under
// the root, keeping keys already there and not repeating any, owned by the
// user, mode 0600 in a 0700 directory (sshd's StrictModes).
//
// The home directory belongs to the user, who may have made ~/.ssh or
// ~/.ssh/authorized_keys a symlink (to /etc, to /etc/shadow): both are
// refused by name, never followed, and the directory and file are changed
// through handles (internal/fsroot.Dir), so swapping them for a symlink
// while this runs redirects nothing. The path to the home directory is
// resolved inside the root.
func AddAuthorizedKeys(root fsroot.Root, name string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	e, ok := Lookup(root, name)
	if !ok {
		return fmt.Errorf("writing SSH keys of %s: no such user in /etc/passwd", name)
	}
	if err := addAuthorizedKeys(root, e, keys); err != nil {
		return fmt.Errorf("writing SSH keys of %s: %w", name, err)
	}
	return nil
}

func addAuthorizedKeys(root fsroot.Root, e Entry, keys []string) error {
	home, err := root.MkdirAll(e.Home, 0o700)
	if err != nil {
		return err
	}
	defer home.Close()
	dir, err := home.Subdir(".ssh", 0o700)
	if err != nil {
		return err
	}
	defer dir.Close()
	old, err := dir.ReadFile("authorized_keys", maxAuthorizedKeys)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var lines []string
	for _, l := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(lines, k) {
			lines = append(lines, k)
		}
	}
	var owner *fsroot.Owner
	if os.Geteuid() == 0 { // tests as a user write their own files
		owner = &fsroot.Owner{UID: e.UID, GID: e.GID}
	}
	if err := dir.WriteFile("authorized_keys", []byte(strings.Join(lines, "\n")+"\n"), 0o600, owner); err != nil {
		return err
	}
	if owner != nil {
		if err := dir.ChownSelf(*owner); err != nil {
			return err
		}
	}
	return dir.ChmodSelf(0o700)
}
