package cloudinit

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/run"
)

// These tests hold Bulkhead to what cloud-init does with the same input:
// the seeds virt-install writes (testdata/conformance, copied from the
// project's conformance set), the shapes Proxmox VE writes, and the
// semantics cloud-init documents for each module.

// seedDir writes a NoCloud seed into the root under /seed.
func (e *env) seed(t *testing.T, metaData, userData string) {
	t.Helper()
	writeFile(t, e.root.Join("/seed/meta-data"), metaData)
	writeFile(t, e.root.Join("/seed/user-data"), userData)
}

// stdinOf returns what the commands named name got on standard input.
func (e *env) stdinOf(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, c := range e.rec.Calls() {
		if c.Name != name || c.Stdin == nil {
			continue
		}
		if s, ok := c.Stdin.(io.Seeker); ok {
			_, _ = s.Seek(0, io.SeekStart)
		}
		b, err := io.ReadAll(c.Stdin)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join(c.Args, " ")+"|"+string(b))
	}
	return out
}

func readTestdata(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The bare virt-install seed: chpasswd.list as a multi-line string with a
// generated root password, expire: True, and a runcmd that disables
// provisioning on later boots.
func TestVirtInstallBareSeed(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: iid-bare\n", readTestdata(t, "testdata/conformance/virt-install-bare/user-data"))
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if !rep.OK() {
		t.Errorf("report has problems %q and errors %q", rep.Problems, rep.Errors)
	}
	if got, want := e.stdinOf(t, "chpasswd"), []string{"|root:IkfdEXzUmjbEvzuY\n"}; strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("chpasswd got %q, want %q", got, want)
	}
	tr := e.transcript()
	if !strings.Contains(tr, "passwd --expire root\n") {
		t.Errorf("root's password is not expired; commands:\n%s", tr)
	}
	// runcmd ran the shell line as written, and it disables later boots.
	script := readFile(e.root.Join(scriptsDir, "runcmd"))
	if want := "echo \"Disabled by virt-install\" > /etc/cloud/cloud-init.disabled\n"; !strings.HasSuffix(script, want) {
		t.Errorf("runcmd script %q, want it to end with %q", script, want)
	}
	writeFile(t, e.root.Join(DisabledFile), "Disabled by virt-install\n")
	e.rec = &run.Recorder{}
	again := e.provision(t, "ds=nocloud;s=/seed")
	if again.Disabled == "" || len(again.Modules) != 0 || e.transcript() != "" {
		t.Errorf("after cloud-init.disabled: report %+v, commands %q; want disabled and nothing run", again, e.transcript())
	}
	loaded, err := LoadReport(e.root)
	if err != nil || loaded.Disabled == "" {
		t.Errorf("saved report %+v, %v: want it to say disabled", loaded, err)
	}
}

// cloud-init=disabled on the kernel command line stops provisioning too.
func TestDisabledOnCmdline(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", "#cloud-config\nruncmd: [echo hi]\n")
	rep := e.provision(t, "ds=nocloud;s=/seed cloud-init=disabled")
	if rep.Disabled == "" || e.transcript() != "" {
		t.Errorf("got %+v and commands %q, want disabled", rep, e.transcript())
	}
}

// virt-install's root-ssh-key seed: users: [{name: root,
// ssh-authorized-keys: [...]}] with the dash spelling.
func TestVirtInstallRootSSHKeySeed(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: iid-key\n", readTestdata(t, "testdata/conformance/virt-install-root-ssh-key/user-data"))
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if !rep.OK() {
		t.Errorf("report has problems %q and errors %q", rep.Problems, rep.Errors)
	}
	pub := strings.TrimSpace(readTestdata(t, "testdata/conformance/virt-install-root-ssh-key/id_ed25519.pub"))
	if got := readFile(e.root.Join("/root/.ssh/authorized_keys")); !strings.Contains(got, pub) {
		t.Errorf("root's authorized_keys %q lacks %q", got, pub)
	}
	// users without "default": no default user, as in cloud-init.
	if strings.Contains(e.transcript(), "useradd") {
		t.Errorf("a user was created; commands:\n%s", e.transcript())
	}
	// lock_passwd defaults to true for root too (keys still log in).
	if !strings.Contains(e.transcript(), "usermod --lock root\n") {
		t.Errorf("root's password not locked; commands:\n%s", e.transcript())
	}
}

// chpasswd's shapes: the list as a multi-line string, as a YAML list, and
// chpasswd.users; R/RANDOM make a password printed to the console (never
// the literal word); hashes go to chpasswd --encrypted; expire defaults to
// true and covers every listed user.
func TestChpasswdShapes(t *testing.T) {
	for _, tc := range []struct {
		name, userData string
		plain, hashed  int // lines to chpasswd and chpasswd -e
		expired        []string
		random         int
	}{
		{"multi-line string", "chpasswd:\n  list: |\n    root:secret1\n    core:RANDOM\n", 2, 0, []string{"root", "core"}, 1},
		{"list", "chpasswd:\n  list:\n    - root:secret1\n    - core:R\n  expire: false\n", 2, 0, nil, 1},
		{"users", "chpasswd:\n  users:\n    - {name: root, password: secret1}\n    - {name: core, type: RANDOM}\n    - {name: bob, password: $6$salt$hashhashhash, type: hash}\n", 2, 1, []string{"root", "core", "bob"}, 1},
		{"hash in list", "chpasswd:\n  list: |\n    root:$6$rounds=4096$salt$abcdef\n", 0, 1, []string{"root"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed(t, "instance-id: one\n", "#cloud-config\n"+tc.userData)
			rep := e.provision(t, "ds=nocloud;s=/seed")
			if !rep.OK() {
				t.Fatalf("problems %q errors %q", rep.Problems, rep.Errors)
			}
			var plain, hashed []string
			for _, in := range e.stdinOf(t, "chpasswd") {
				args, lines, _ := strings.Cut(in, "|")
				for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
					if strings.HasSuffix(l, ":R") || strings.HasSuffix(l, ":RANDOM") {
						t.Errorf("chpasswd got the literal %q", l)
					}
					if args == "--encrypted" {
						hashed = append(hashed, l)
					} else {
						plain = append(plain, l)
					}
				}
			}
			if len(plain) != tc.plain || len(hashed) != tc.hashed {
				t.Errorf("got plain %q hashed %q, want %d and %d lines", plain, hashed, tc.plain, tc.hashed)
			}
			for _, u := range tc.expired {
				if !strings.Contains(e.transcript(), "passwd --expire "+u+"\n") {
					t.Errorf("%s not expired:\n%s", u, e.transcript())
				}
			}
			if tc.expired == nil && strings.Contains(e.transcript(), "--expire") {
				t.Errorf("expire: false still expired:\n%s", e.transcript())
			}
			if got := strings.Count(e.console.String(), "Set the following 'random' passwords"); got != min(tc.random, 1) {
				t.Errorf("console %q: want the random password printed", e.console.String())
			}
			if tc.random > 0 {
				for _, l := range plain {
					if strings.HasPrefix(l, "core:") && !strings.Contains(e.console.String(), l) {
						t.Errorf("random password %q not on the console", l)
					}
				}
			}
		})
	}
}

// What Proxmox VE writes: user, password (a hash), manage_etc_hosts,
// chpasswd {expire: False}, users: [default], package_upgrade.
func TestProxmoxUserData(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: pve-1\n", `#cloud-config
hostname: pve-test
manage_etc_hosts: true
fqdn: pve-test.example.org
user: alice
password: $5$6jvYVsxu$Td2ddH5.0RnXD4SE6T5Ebql23.uI8itGYKp0pU8hXX5
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIProxmoxKey alice@pve
chpasswd:
  expire: False
users:
  - default
package_upgrade: true
`)
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if len(rep.Errors) != 0 {
		t.Errorf("errors %q", rep.Errors)
	}
	if got := strings.Join(rep.Problems, "\n"); !strings.Contains(got, "package_upgrade: ignored") || strings.Contains(got, "unknown key") {
		t.Errorf("problems %q: want only package_upgrade named as ignored", rep.Problems)
	}
	tr := e.transcript()
	if !strings.Contains(tr, "useradd") || !strings.Contains(tr, " alice\n") {
		t.Errorf("alice was not created as the default user:\n%s", tr)
	}
	if got := e.stdinOf(t, "chpasswd"); len(got) != 1 || got[0] != "--encrypted|alice:$5$6jvYVsxu$Td2ddH5.0RnXD4SE6T5Ebql23.uI8itGYKp0pU8hXX5\n" {
		t.Errorf("chpasswd got %q, want alice's hash with --encrypted", got)
	}
	if strings.Contains(tr, "--expire") {
		t.Errorf("expire: False still expired:\n%s", tr)
	}
	if got := readFile(e.root.Join("/home/alice/.ssh/authorized_keys")); !strings.Contains(got, "ProxmoxKey") {
		t.Errorf("alice's keys %q: want the top-level key", got)
	}
	hosts := readFile(e.root.Join("/etc/hosts"))
	if !strings.Contains(hosts, "127.0.1.1 pve-test.example.org pve-test\n") || !strings.Contains(hosts, "127.0.0.1 localhost\n") {
		t.Errorf("/etc/hosts = %q", hosts)
	}
	// Every other module still ran.
	st := moduleStatuses(rep)
	for _, m := range []string{"hostname", "update_etc_hosts", "users_groups", "ssh", "set_passwords"} {
		if st[m] != StatusRan {
			t.Errorf("module %s: %q, want ran", m, st[m])
		}
	}
}

func moduleStatuses(r *Report) map[string]Status {
	m := map[string]Status{}
	for _, mod := range r.Modules {
		m[mod.Name] = mod.Status
	}
	return m
}

// The top-level password goes to the default user, and a user: mapping
// sets the default user's settings.
func TestTopLevelPasswordAndUserMapping(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", "#cloud-config\nuser: {name: ops, shell: /bin/sh, sudo: false}\npassword: passw0rd\nchpasswd: {expire: false}\n")
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if !rep.OK() {
		t.Fatalf("problems %q errors %q", rep.Problems, rep.Errors)
	}
	if got := e.stdinOf(t, "chpasswd"); len(got) != 1 || got[0] != "|ops:passw0rd\n" {
		t.Errorf("chpasswd got %q", got)
	}
	if strings.Contains(readFile(e.root.Join("/etc/sudoers.d/90-bulkhead-users")), "ops") {
		t.Errorf("sudo: false still gave ops sudo")
	}
}

// lock_passwd (default true) holds even when plain_text_passwd is given:
// the password is set, then the account locked, as cloud-init does.
func TestLockPasswdHoldsWithPlainTextPassword(t *testing.T) {
	for _, tc := range []struct {
		lock     string
		wantLock bool
	}{{"", true}, {"lock_passwd: true", true}, {"lock-passwd: true", true}, {"lock_passwd: false", false}} {
		t.Run(tc.lock, func(t *testing.T) {
			e := newEnv(t)
			e.seed(t, "instance-id: one\n", "#cloud-config\nusers:\n  - name: bob\n    plain_text_passwd: hunter2\n    "+tc.lock+"\n")
			rep := e.provision(t, "ds=nocloud;s=/seed")
			if !rep.OK() {
				t.Fatalf("problems %q errors %q", rep.Problems, rep.Errors)
			}
			tr := e.transcript()
			set := strings.Index(tr, "chpasswd")
			lock := strings.LastIndex(tr, "usermod --lock bob")
			if tc.wantLock && (set < 0 || lock < set) {
				t.Errorf("want the password set, then locked:\n%s", tr)
			}
			if !tc.wantLock && lock >= 0 {
				t.Errorf("lock_passwd: false still locked:\n%s", tr)
			}
		})
	}
}

// runcmd list items are quoted like cloud-init's shellify: every element
// single-quoted, so nothing in them is expanded or split.
func TestRuncmdQuoting(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", "#cloud-config\nruncmd:\n  - [echo, \"$HOME\", \"it's\", a b, 42]\n  - echo $HOME\n")
	e.provision(t, "ds=nocloud;s=/seed")
	want := "#!/bin/sh\n'echo' '$HOME' 'it'\\''s' 'a b' '42'\necho $HOME\n"
	if got := readFile(e.root.Join(scriptsDir, "runcmd")); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The stages: init runs before the network and sshd, final after them;
// runcmd, deferred files, the final message and power_state are final's.
// power_state acts only once the report is saved.
func TestStages(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", "#cloud-config\nhostname: h1\nbootcmd: [echo boot]\nruncmd: [echo run]\n"+
		"write_files: [{path: /etc/late, content: x, defer: true}]\npower_state: {mode: reboot}\n")
	var sawReport string
	e.rec.Respond = func(c run.Cmd) ([]byte, error) {
		if c.Name == "shutdown" {
			sawReport = readFile(e.root.Join(StateDir, "report.json"))
		}
		return nil, nil
	}
	stage := func(s Stage) *Report {
		t.Helper()
		rep, err := Provision(context.Background(), Options{Root: e.root, Runner: e.rec, Console: e.console,
			Cmdline: "ds=nocloud;s=/seed", Now: fakeClock(), Stage: s})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	init := stage(StageInit)
	st := moduleStatuses(init)
	if st["hostname"] != StatusRan || st["bootcmd"] != StatusRan {
		t.Errorf("init stage: %v", st)
	}
	for _, m := range []string{"runcmd", "write_files_deferred", "final_message", "power_state"} {
		if _, ran := st[m]; ran {
			t.Errorf("init stage ran %s", m)
		}
	}
	if init.Done() || strings.Contains(e.transcript(), "runcmd") || fileExists(e.root.Join("/etc/late")) {
		t.Errorf("init stage did final work: done %v, commands %q", init.Done(), e.transcript())
	}
	// The final stage reads this boot's data (the seed may be gone).
	if err := os.RemoveAll(e.root.Join("/seed")); err != nil {
		t.Fatal(err)
	}
	final := stage(StageFinal)
	st = moduleStatuses(final)
	for _, m := range []string{"runcmd", "write_files_deferred", "final_message", "power_state", "hostname", "bootcmd"} {
		if st[m] != StatusRan {
			t.Errorf("after the final stage, %s is %q, want ran (report %v)", m, st[m], st)
		}
	}
	if !final.Done() || !fileExists(e.root.Join("/etc/late")) {
		t.Errorf("final stage: done %v, /etc/late exists %v", final.Done(), fileExists(e.root.Join("/etc/late")))
	}
	if !strings.Contains(sawReport, `"power_state"`) {
		t.Errorf("shutdown ran before the report listed power_state: %q", sawReport)
	}
	if !strings.HasSuffix(e.transcript(), "shutdown -r now\n") {
		t.Errorf("shutdown is not the last command:\n%s", e.transcript())
	}
}

func fileExists(p string) bool { _, err := os.Lstat(p); return err == nil }

// A per-instance final module that hangs (the machine is rebooted while
// it runs) is not run again at the next boot.
func TestHungRuncmdNotRerun(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", "#cloud-config\nruncmd: [sleep infinity]\n")
	ctx, cancel := context.WithCancel(context.Background())
	e.rec.Respond = func(c run.Cmd) ([]byte, error) {
		if strings.HasSuffix(c.Name, "scripts/runcmd") {
			cancel() // the boot ends while runcmd runs
			return nil, errors.New("signal: killed")
		}
		return nil, nil
	}
	if _, err := Provision(ctx, Options{Root: e.root, Runner: e.rec, Cmdline: "ds=nocloud;s=/seed", Now: fakeClock()}); err != nil {
		t.Fatal(err)
	}
	e.rec = &run.Recorder{}
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if got := moduleStatuses(rep)["runcmd"]; got != StatusSkipped {
		t.Errorf("runcmd at the next boot: %q, want skipped", got)
	}
}

// Script output and errors reach the output log, as
// /var/log/cloud-init-output.log.
func TestOutputLog(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", "#cloud-config\nruncmd: [echo hi]\nfinal_message: all done here\n")
	e.rec.Respond = func(c run.Cmd) ([]byte, error) {
		if strings.HasSuffix(c.Name, "scripts/runcmd") && c.Stderr != nil {
			_, _ = io.WriteString(c.Stderr, "runcmd says on stderr\n")
		}
		return nil, nil
	}
	e.provision(t, "ds=nocloud;s=/seed")
	log := readFile(e.root.Join(OutputLog))
	for _, want := range []string{"runcmd says on stderr", "all done here"} {
		if !strings.Contains(log, want) {
			t.Errorf("output log %q lacks %q", log, want)
		}
	}
	if st, err := os.Stat(e.root.Join(OutputLog)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("output log mode: %v %v, want 0600", st, err)
	}
}

// A new instance gets new host keys (the clone's are deleted), made
// in-process in OpenSSH's formats, and their fingerprints are printed
// between cloud-init's markers exactly as ssh-keygen -l prints them.
func TestSSHHostKeys(t *testing.T) {
	e := newEnv(t)
	e.hostKey = nil // real keys, read back by OpenSSH
	writeFile(t, e.root.Join("/etc/ssh/ssh_host_rsa_key"), "old clone key")
	writeFile(t, e.root.Join("/etc/ssh/ssh_host_rsa_key.pub"), "ssh-rsa OLD")
	e.seed(t, "instance-id: one\n", "#cloud-config\nssh_genkeytypes: [ed25519, ecdsa, rsa]\n")
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if !rep.OK() {
		t.Fatalf("problems %q errors %q", rep.Problems, rep.Errors)
	}
	var fps, pubs []string
	for _, typ := range []string{"ecdsa", "ed25519", "rsa"} {
		key := e.root.Join("/etc/ssh/ssh_host_" + typ + "_key")
		if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want a 0600 private key", key, st, err)
		}
		pub, err := os.ReadFile(key + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(pub), "OLD") {
			t.Errorf("the clone's %s key was kept", typ)
		}
		// OpenSSH itself reads the private key and derives the same public key.
		derived, err := exec.Command("ssh-keygen", "-y", "-f", key).Output()
		if err != nil {
			t.Fatalf("ssh-keygen -y -f %s: %v", key, err)
		}
		if d, f := strings.Fields(string(derived)), strings.Fields(string(pub)); len(d) < 2 || len(f) < 2 || d[0] != f[0] || d[1] != f[1] {
			t.Errorf("%s: ssh-keygen derives %q from the private key, the .pub says %q", typ, derived, pub)
		}
		fp, err := exec.Command("ssh-keygen", "-l", "-f", key+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		fps, pubs = append(fps, strings.TrimSpace(string(fp))), append(pubs, strings.TrimSpace(string(pub)))
	}
	want := "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n" + strings.Join(fps, "\n") + "\n-----END SSH HOST KEY FINGERPRINTS-----\n" +
		"-----BEGIN SSH HOST KEY KEYS-----\n" + strings.Join(pubs, "\n") + "\n-----END SSH HOST KEY KEYS-----\n"
	if !strings.Contains(e.console.String(), want) {
		t.Errorf("console %q lacks\n%s", e.console.String(), want)
	}
	bad := newEnv(t)
	bad.seed(t, "instance-id: one\n", "#cloud-config\nssh_genkeytypes: [dsa]\n")
	if rep := bad.provision(t, "ds=nocloud;s=/seed"); !strings.Contains(strings.Join(rep.Errors, ";"), `ssh_genkeytypes: "dsa"`) {
		t.Errorf("errors %q: want dsa refused by name", rep.Errors)
	}
}

// The bulkhead section is checked by the code that reads its files later:
// a typo is reported now, naming the key, and that file is not written;
// the valid parts are.
func TestBulkheadSectionValidated(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", `#cloud-config
bulkhead:
  update:
    stratgey: immediate
  storage:
    DEVS: [/dev/vdb]
    VG: docker-vg
    STORAGE_DRIVERR: overlay2
  containers:
    - name: web
      image: registry.example/web:1
      portz: ["80:80"]
    - name: ok
      image: registry.example/ok:1
`)
	rep := e.provision(t, "ds=nocloud;s=/seed")
	errs := strings.Join(rep.Errors, "\n")
	for _, want := range []string{"bulkhead.update:", "stratgey", "bulkhead.storage:", "STORAGE_DRIVERR", "bulkhead.containers[0]:", "portz"} {
		if !strings.Contains(errs, want) {
			t.Errorf("errors %q lack %q", errs, want)
		}
	}
	for _, p := range []string{"/etc/bulkhead/update.yaml", "/etc/bulkhead/storage.yaml", "/etc/hostd/containers/web.yaml"} {
		if fileExists(e.root.Join(p)) {
			t.Errorf("%s written from a part that does not pass", p)
		}
	}
	if !fileExists(e.root.Join("/etc/hostd/containers/ok.yaml")) {
		t.Error("the valid container was not written")
	}
}

// A valid update section, with the updater's own keys (policy, interval)
// and the reboot strategy's, is written as given.
func TestBulkheadUpdateSectionWritten(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "instance-id: one\n", "#cloud-config\nbulkhead:\n  update: {url: \"https://updates.example/bulkhead\", policy: stage, interval: 6h, strategy: immediate}\n")
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if !rep.OK() {
		t.Fatalf("problems %q errors %q", rep.Problems, rep.Errors)
	}
	got := readFile(e.root.Join("/etc/bulkhead/update.yaml"))
	for _, want := range []string{"policy: stage", "interval: 6h", "url: https://updates.example/bulkhead"} {
		if !strings.Contains(got, want) {
			t.Errorf("update.yaml %q lacks %q", got, want)
		}
	}
}

// A write_files path through a symlink that points out of the root (a
// home directory linked to /etc on the host) is never followed.
func TestWriteFilesSymlinkAttack(t *testing.T) {
	e := newEnv(t)
	outside := t.TempDir()
	if err := os.MkdirAll(e.root.Join("/home"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, e.root.Join("/home/evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside+"/target", e.root.Join("/etc/linked")); err != nil {
		t.Fatal(err)
	}
	e.seed(t, "instance-id: one\n", "#cloud-config\nwrite_files:\n  - {path: /home/evil/planted, content: x}\n  - {path: /etc/linked, content: y, append: true}\n")
	e.provision(t, "ds=nocloud;s=/seed")
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Errorf("write_files wrote outside the root: %v", entries)
	}
}

// Problems in the user-data are reported once per boot, not again by the
// final stage; /etc/cloud exists for user-data that writes there.
func TestStagesReportProblemsOnce(t *testing.T) {
	e := newEnv(t)
	e.seed(t, "", readTestdata(t, "testdata/conformance/virt-install-bare/user-data")+"usres: [typo]\n")
	var rep *Report
	for _, s := range []Stage{StageInit, StageFinal} {
		var err error
		rep, err = Provision(context.Background(), Options{Root: e.root, Runner: e.rec, Console: e.console,
			Cmdline: "ds=nocloud;s=/seed", Now: fakeClock(), Stage: s})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(rep.Problems) != 1 || strings.Count(e.console.String(), "usres: unknown key") != 1 {
		t.Errorf("problems %q, console %q: want the typo reported once", rep.Problems, e.console.String())
	}
	if st, err := os.Stat(e.root.Join("/etc/cloud")); err != nil || !st.IsDir() {
		t.Errorf("no /etc/cloud for virt-install's runcmd to write %s in: %v", DisabledFile, err)
	}
}
