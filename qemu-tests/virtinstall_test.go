package qemutests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit"
)

// conformanceSeeds are the NoCloud seeds exactly as virt-install 4.1
// writes them (the project's conformance set, copied into cloudinit's
// testdata): empty meta-data, so the instance-id is cloud-init's default.
const conformanceSeeds = "../cloudinit/testdata/conformance"

// fingerprintsRE matches the host key block provisioning prints.
var fingerprintsRE = regexp.MustCompile(`(?s)-----BEGIN SSH HOST KEY FINGERPRINTS-----\r?\n(.*?)-----END SSH HOST KEY FINGERPRINTS-----`)

// consoleFingerprints returns the fingerprints printed on the console.
func consoleFingerprints(t *testing.T, vm *VM) string {
	t.Helper()
	m := fingerprintsRE.FindStringSubmatch(vm.Console().String())
	if m == nil {
		t.Fatal("no SSH host key fingerprints on the console")
	}
	return m[1]
}

// TestCloudInitVirtInstall boots virt-install's two seeds on the SATA
// CD-ROM, as `virt-install --import --cloud-init [root-ssh-key=...]` does:
// the bare one sets a generated root password that must work at the
// console and be expired, then disables provisioning; the root-ssh-key one
// lets root in over SSH with the key, on a host key the console printed.
func TestCloudInitVirtInstall(t *testing.T) {
	image(t)
	t.Run("bare", func(t *testing.T) {
		dir := filepath.Join(conformanceSeeds, "virt-install-bare")
		pw := rootPassword(t, filepath.Join(dir, "user-data"))
		vm := bootVM(t, BootOpts{Extra: []Disk{{File: filepath.Join(dir, "seed.iso"), Bus: "sata", CDROM: true}}})
		r := waitProvisioned(t, vm)
		checkReport(t, r, "nocloud:", "nocloud", true, map[string]cloudinit.Status{
			"set_passwords": cloudinit.StatusRan, "runcmd": cloudinit.StatusRan, "ssh_host_keys": cloudinit.StatusRan,
		})
		if got := sh(t, vm, "hostctl provision status"); got != "status: done" {
			t.Errorf("hostctl provision status: %q, want status: done", got)
		}
		if got := sh(t, vm, "chage -l root | sed -n 's/^Last password change[[:space:]]*:[[:space:]]*//p'"); got != "password must be changed" {
			t.Errorf("root's last password change: %q, want \"password must be changed\" (expire: True)", got)
		}
		if got := sh(t, vm, "cat /etc/cloud/cloud-init.disabled"); got != "Disabled by virt-install" {
			t.Errorf("runcmd's disable file: %q", got)
		}
		fps := consoleFingerprints(t, vm)
		if want := sh(t, vm, "ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub"); !strings.Contains(fps, want) {
			t.Errorf("console fingerprints %q lack the host's ed25519 key %q", fps, want)
		}
		consoleLogin(t, vm, "root", pw)
		hash := sh(t, vm, "getent shadow root | cut -d: -f2")

		t.Log("rebooting: provisioning is disabled from now on")
		rebootGuest(t, vm)
		waitReady(t, vm)
		if got := sh(t, vm, "hostctl provision status --wait"); got != "status: disabled" {
			t.Errorf("after the reboot, hostctl provision status: %q, want status: disabled", got)
		}
		if got := sh(t, vm, "getent shadow root | cut -d: -f2"); got != hash {
			t.Errorf("root's password changed on the second boot")
		}
	})
	t.Run("root-ssh-key", func(t *testing.T) {
		dir := filepath.Join(conformanceSeeds, "virt-install-root-ssh-key")
		fwd := freePort(t)
		vm := bootVM(t, BootOpts{
			Extra:   []Disk{{File: filepath.Join(dir, "seed.iso"), Bus: "sata", CDROM: true}},
			NetOpts: []string{fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:22", fwd)},
		})
		r := waitProvisioned(t, vm)
		checkReport(t, r, "nocloud:", "nocloud", true, map[string]cloudinit.Status{"users_groups": cloudinit.StatusRan})
		if got := sh(t, vm, "getent passwd core || echo none"); got != "none" {
			t.Errorf("users without default still made the default user: %q", got)
		}
		key := filepath.Join(t.TempDir(), "id_ed25519")
		data, err := os.ReadFile(filepath.Join(dir, "id_ed25519"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(key, data, 0o600); err != nil {
			t.Fatal(err)
		}
		known := filepath.Join(t.TempDir(), "known_hosts")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ssh", "-p", fmt.Sprint(fwd), "-i", key, "-o", "IdentitiesOnly=yes",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile="+known,
			"-o", "HostKeyAlgorithms=ssh-ed25519", "-o", "ConnectTimeout=60",
			"root@127.0.0.1", "id -un; hostctl provision status").CombinedOutput()
		if got := string(out); err != nil || !strings.Contains(got, "root\nstatus: done") {
			t.Fatalf("ssh as root with virt-install's key: %v: %s", err, out)
		}
		// The key ssh was shown is the one the console printed: a user of
		// this machine can check it before trusting it.
		fp, err := exec.Command("ssh-keygen", "-l", "-f", known).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -l %s: %v: %s", known, err, fp)
		}
		sha := strings.Fields(string(fp))[1]
		if fps := consoleFingerprints(t, vm); !strings.Contains(fps, sha) {
			t.Errorf("ssh saw host key %s, not among the console's fingerprints %q", sha, fps)
		}
		t.Run("docker over ssh", func(t *testing.T) { dockerOverSSH(t, vm, fwd, key, known) })
	})
}

// dockerOverSSH drives the stock docker CLI on the test's host against
// the guest's hostd with DOCKER_HOST=ssh://root@...: the CLI runs
// `docker system dial-stdio` in the guest through its sshd (the image's
// /usr/bin/docker), and talks the Docker API over that pipe. ssh's
// options (the key, the known host) come from a wrapper first in PATH.
func dockerOverSSH(t *testing.T, vm *VM, port int, key, known string) {
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("needs the docker CLI: %v", err)
	}
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\nexec %s -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=%s \"$@\"\n", sshBin, key, known)
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	docker := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), fmt.Sprintf("DOCKER_HOST=ssh://root@127.0.0.1:%d", port),
			"DOCKER_CONFIG="+t.TempDir(), "DOCKER_CLI_HINTS=false")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := docker("version", "--format", "{{.Server.Os}}"); err != nil || out != "linux" {
		t.Fatalf("docker version over ssh://: %v: %q", err, out)
	}
	if out, err := docker("ps", "-a", "--format", "{{.Names}}"); err != nil {
		t.Errorf("docker ps over ssh://: %v: %q", err, out)
	}
	// In the guest, docker is only the dial-stdio end and says so.
	if out := sh(t, vm, "docker ps 2>&1; echo exit=$?"); !strings.Contains(out, "DOCKER_HOST=ssh://") || !strings.HasSuffix(out, "exit=1") {
		t.Errorf("docker ps in the guest: %q, want a refusal naming DOCKER_HOST=ssh:// and exit 1", out)
	}
}

// rootPassword reads root's password from virt-install's chpasswd list.
func rootPassword(t *testing.T, userData string) string {
	t.Helper()
	data, err := os.ReadFile(userData)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+root:(\S+)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatalf("no root:PASSWORD line in %s", userData)
	}
	return m[1]
}

// consoleLogin logs in at the serial console with the password and expects
// to be told to change it at once: the password works and is expired.
func consoleLogin(t *testing.T, vm *VM, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	step := func(typed string, want *regexp.Regexp) string {
		t.Helper()
		mark := vm.Console().Len()
		if err := vm.Type(typed); err != nil {
			t.Fatal(err)
		}
		got, _, err := vm.Console().Wait(ctx, want, mark)
		if err != nil {
			t.Fatalf("after typing at the console, waiting for %s: %v\n%s", want, err, vm.Console().tail(2000))
		}
		return got
	}
	step("\n", regexp.MustCompile(`login: `))
	step(user+"\n", regexp.MustCompile(`Password: `))
	got := step(password+"\n", regexp.MustCompile(`You are required to change your password immediately|Login incorrect`))
	if strings.Contains(got, "Login incorrect") {
		t.Fatalf("console login as %s with the seed's password: Login incorrect", user)
	}
	_ = vm.Type("\x03") // leave the password change prompt
}
