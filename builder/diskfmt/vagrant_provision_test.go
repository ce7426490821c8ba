package diskfmt

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit"
	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// prefixRunner runs Debian's useradd and usermod for real against the
// test root's /etc (their --prefix) and only records the other commands.
type prefixRunner struct {
	root string
	rec  *run.Recorder
}

func (p prefixRunner) Run(ctx context.Context, c run.Cmd) ([]byte, error) {
	p.rec.Run(ctx, c)
	if c.Name == "useradd" || c.Name == "usermod" {
		c.Args = append([]string{"--prefix", p.root}, c.Args...)
		return run.Exec{}.Run(ctx, c)
	}
	return nil, nil
}

// TestVagrantSeedProvisionsVagrantUser gives the box's seed, as the guest
// reads it, to Bulkhead's provisioning over a root holding account
// databases: the vagrant user exists (made by the real useradd), may sudo
// without a password and has Vagrant's insecure RSA key and no other.
func TestVagrantSeedProvisionsVagrantUser(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{
		"/etc/passwd":          "root:x:0:0:root:/root:/bin/bash\n",
		"/etc/group":           "root:x:0:\nsudo:x:27:\n",
		"/etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"/etc/gshadow":         "root:*::\nsudo:*::\n",
		"/usr/lib/os-release":  "ID=bulkhead\n",
		"/proc/uptime":         "1.00 1.00\n",
		"/etc/login.defs":      "UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n",
		"/etc/default/useradd": "",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The seed exactly as the box carries it, read back as the guest does.
	iso := filepath.Join(t.TempDir(), "seed.iso")
	if err := seed.Write(iso, seed.Files{UserData: VagrantUserData(), MetaData: []byte(vagrantMetaData)}, seed.FormatISO); err != nil {
		t.Fatal(err)
	}
	files, err := seed.Read(iso)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "seed"), 0o755)
	os.WriteFile(filepath.Join(root, "seed/user-data"), files.UserData, 0o644)
	os.WriteFile(filepath.Join(root, "seed/meta-data"), files.MetaData, 0o644)

	rec := &run.Recorder{}
	rep, err := cloudinit.Provision(context.Background(), cloudinit.Options{
		Root: fsroot.Root(root), Runner: prefixRunner{root: root, rec: rec}, Cmdline: "ds=nocloud;s=/seed",
		IMDSBase: "http://127.0.0.1:1", NetWait: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems)+len(rep.Errors) != 0 || rep.InstanceID != "bulkhead-vagrant" || !strings.HasPrefix(rep.Source, "nocloud") {
		t.Errorf("report: problems %q, errors %q, instance %q from %q", rep.Problems, rep.Errors, rep.InstanceID, rep.Source)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	var home string
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if f[0] == "vagrant" && len(f) == 7 {
			home = f[5]
			if f[6] != "/bin/bash" {
				t.Errorf("vagrant's shell: got %s, want /bin/bash", f[6])
			}
		}
	}
	if home == "" {
		t.Fatalf("no vagrant user in /etc/passwd:\n%s\ncommands:\n%s", passwd, rec.Transcript())
	}
	sudoers, err := os.ReadFile(filepath.Join(root, "etc/sudoers.d/90-bulkhead-users"))
	if err != nil || !strings.Contains(string(sudoers), "vagrant ALL=(ALL) NOPASSWD:ALL\n") {
		t.Errorf("sudoers: got %q, %v", sudoers, err)
	}
	keys, err := os.ReadFile(filepath.Join(root, home, ".ssh/authorized_keys"))
	if err != nil {
		t.Fatalf("authorized_keys: %v\ncommands:\n%s", err, rec.Transcript())
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(keys)), "\n") {
		got = append(got, strings.TrimSpace(l))
	}
	if !slices.Equal(got, []string{VagrantBoxKey}) {
		t.Errorf("authorized_keys: got %q, want only Vagrant's insecure RSA key", got)
	}
}
