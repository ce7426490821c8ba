package accounts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func ptr[T any](v T) *T { return &v }

func TestUserArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    User
		want string
	}{
		{"minimal", User{Name: "a"}, "--create-home --user-group a"},
		{"full", User{Name: "b", Gecos: ptr("B B"), Homedir: ptr("/srv/b"), Shell: ptr("/bin/zsh"),
			Groups: []string{"x", "y"}, UID: ptr(1500), PasswordHash: ptr("$6$h"), System: true},
			"--comment B B --home-dir /srv/b --shell /bin/zsh --groups x,y --uid 1500 --password $6$h --system --create-home --user-group b"},
		{"primary group", User{Name: "c", PrimaryGroup: ptr("users")}, "--gid users --create-home c"},
		{"no home no group", User{Name: "d", NoCreateHome: true, NoUserGroup: true, NoLogInit: true}, "--no-create-home --no-user-group --no-log-init d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(UserArgs(tc.u), " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func fixture(t *testing.T) fsroot.Root {
	t.Helper()
	root := fsroot.Root(t.TempDir())
	os.MkdirAll(root.Join("/etc"), 0o755)
	os.WriteFile(root.Join("/etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"), 0o644)
	os.WriteFile(root.Join("/etc/group"), []byte("root:x:0:\nalice:x:1000:\nsudo:x:27:\n"), 0o644)
	return root
}

func TestEnsure(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    User
		want string
	}{
		{"new user, missing group made first; useradd leaves it locked", User{Name: "bob", Groups: []string{"sudo", "docker"}, Lock: true},
			"groupadd docker\nuseradd --groups sudo,docker --create-home --user-group bob\n"},
		{"new user with a hash, locked after", User{Name: "carol", PasswordHash: ptr("$6$x"), Lock: true},
			"useradd --password '$6$x' --create-home --user-group carol\nusermod --lock carol\n"},
		{"existing user locked", User{Name: "alice", Lock: true}, "usermod --lock alice\n"},
		{"existing user only gains groups", User{Name: "alice", Groups: []string{"sudo"}},
			"usermod --append --groups sudo alice\n"},
		{"existing user, nothing asked", User{Name: "alice"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &run.Recorder{}
			if err := Ensure(context.Background(), rec, fixture(t), tc.u); err != nil {
				t.Fatal(err)
			}
			if got := rec.Transcript(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSetPasswordsUsesStdin(t *testing.T) {
	rec := &run.Recorder{}
	if err := SetPasswords(context.Background(), rec, []string{"alice:secret"}, true); err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	if len(calls) != 1 || strings.Contains(calls[0].String(), "secret") || calls[0].Stdin == nil {
		t.Fatalf("got %v, want one chpasswd call with the password on stdin only", calls)
	}
	if got := calls[0].String(); got != "chpasswd --encrypted" {
		t.Errorf("got %q, want %q", got, "chpasswd --encrypted")
	}
}

func TestAddAuthorizedKeys(t *testing.T) {
	root := fixture(t)
	if err := AddAuthorizedKeys(root, "alice", []string{"ssh-ed25519 A one", "ssh-ed25519 B two"}); err != nil {
		t.Fatal(err)
	}
	// A second run (new instance) adds only what is new.
	if err := AddAuthorizedKeys(root, "alice", []string{"ssh-ed25519 B two", "ssh-rsa C three"}); err != nil {
		t.Fatal(err)
	}
	path := root.Join("/home/alice/.ssh/authorized_keys")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "ssh-ed25519 A one\nssh-ed25519 B two\nssh-rsa C three\n"
	if string(data) != want {
		t.Errorf("got %q, want %q", data, want)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: got mode %o, want %o", p, st.Mode().Perm(), mode)
		}
	}
	if err := AddAuthorizedKeys(root, "nobody", []string{"k"}); err == nil {
		t.Errorf("got no error for a missing user, want one")
	}
}

// TestAddAuthorizedKeysSymlinkAttack: alice owns her home and points
// ~/.ssh (or ~/.ssh/authorized_keys) at a directory or file she must not
// write; provisioning refuses by name and nothing there changes.
func TestAddAuthorizedKeysSymlinkAttack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root fsroot.Root, outside string)
	}{
		{"~/.ssh -> /etc inside the root", func(t *testing.T, root fsroot.Root, outside string) {
			mustSymlink(t, "/etc", root.Join("/home/alice/.ssh"))
		}},
		{"~/.ssh -> directory outside the root", func(t *testing.T, root fsroot.Root, outside string) {
			mustSymlink(t, outside, root.Join("/home/alice/.ssh"))
		}},
		{"~/.ssh/authorized_keys -> /etc/shadow", func(t *testing.T, root fsroot.Root, outside string) {
			if err := os.Mkdir(root.Join("/home/alice/.ssh"), 0o700); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, "/etc/shadow", root.Join("/home/alice/.ssh/authorized_keys"))
		}},
		{"~/.ssh/authorized_keys -> file outside the root", func(t *testing.T, root fsroot.Root, outside string) {
			if err := os.Mkdir(root.Join("/home/alice/.ssh"), 0o700); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, filepath.Join(outside, "shadow"), root.Join("/home/alice/.ssh/authorized_keys"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fixture(t)
			outside := t.TempDir()
			secrets := map[string]string{
				root.Join("/etc/shadow"):         "root:$6$secret:19000::::::\n",
				filepath.Join(outside, "shadow"): "outside secret\n",
			}
			for p, c := range secrets {
				if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(root.Join("/home/alice"), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, root, outside)
			err := AddAuthorizedKeys(root, "alice", []string{"ssh-ed25519 AAAA attacker"})
			if !errors.Is(err, fsroot.ErrSymlink) {
				t.Errorf("got error %v, want a refusal naming the symlink", err)
			}
			for p, c := range secrets {
				data, err := os.ReadFile(p)
				st, _ := os.Stat(p)
				if err != nil || string(data) != c || st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
					t.Errorf("%s changed: %q %v", p, data, st.Mode())
				}
			}
			for _, dir := range []string{root.Join("/etc"), outside} {
				if _, err := os.Stat(filepath.Join(dir, "authorized_keys")); err == nil {
					t.Errorf("%s/authorized_keys was written", dir)
				}
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
