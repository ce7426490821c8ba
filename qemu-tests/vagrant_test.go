package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/builder/diskfmt"
)

// vagrantProject is the Vagrantfile of TestVagrantUp's project: the box,
// on the test's libvirtd (no KVM here: the qemu driver, TCG), a storage
// pool in the test's temp dir, and the serial console in a file.
const vagrantProject = `Vagrant.configure("2") do |config|
  config.vm.box = "bulkhead"
  config.vm.boot_timeout = 1500
  config.vm.provider :libvirt do |libvirt|
    libvirt.uri = %q
    libvirt.driver = "qemu"
    libvirt.memory = 1536
    libvirt.storage_pool_path = %q
    libvirt.serial :type => "file", :source => {:path => %q}
  end
end
`

// progressRE matches Vagrant's progress lines (box uploads), redrawn in
// place with carriage returns and erase-line escapes.
var progressRE = regexp.MustCompile(`(\x1b\[K)?Progress: [0-9]+%|\r|\x1b\[K`)

// vagrant runs Debian's vagrant with vagrant-libvirt in the libvirtd's
// network namespace (where the management network's bridge and the
// guest's address are), with a Vagrant home of the test's own.
type vagrant struct {
	t       *testing.T
	lv      *libvirtd
	project string // the directory holding the Vagrantfile
	home    string // VAGRANT_HOME
	logs    string // one log per command (VAGRANT_LOG=info on stderr)
	n       int
}

// run runs `vagrant ARGS...` and returns its standard output; the log
// goes to a file whose tail the test prints if it fails.
func (v *vagrant) run(timeout time.Duration, args ...string) (string, error) {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v.n++
	logPath := filepath.Join(v.logs, fmt.Sprintf("%02d-%s.log", v.n, args[0]))
	logf, err := os.Create(logPath)
	if err != nil {
		v.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + v.lv.NetNS, "vagrant"}, args...)...)
	cmd.Dir = v.project
	cmd.Env = append(os.Environ(), "VAGRANT_HOME="+v.home, "HOME="+v.home, "VAGRANT_CHECKPOINT_DISABLE=1",
		"VAGRANT_NO_COLOR=1", "VAGRANT_LOG=info", "VAGRANT_DEFAULT_PROVIDER=libvirt", "LIBVIRT_DEFAULT_URI="+v.lv.URI)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, logf
	start := time.Now()
	err = cmd.Run()
	v.t.Logf("vagrant %s: %v after %s", strings.Join(args, " "), err, time.Since(start).Round(time.Second))
	text := progressRE.ReplaceAllString(out.String(), "")
	if err != nil {
		err = fmt.Errorf("vagrant %s: %w\n%s", strings.Join(args, " "), err, text)
	}
	return text, err
}

// must is run, failing the test on an error.
func (v *vagrant) must(timeout time.Duration, args ...string) string {
	v.t.Helper()
	out, err := v.run(timeout, args...)
	if err != nil {
		v.t.Fatal(err)
	}
	return out
}

// TestVagrantUp is the Vagrant box against the real peer: Debian's
// vagrant and vagrant-libvirt on a libvirtd the test starts (qemu:///system
// without KVM). `builder convert --format vagrant-libvirt` makes the box;
// `vagrant box add`, `vagrant up --provider=libvirt` (first boot makes the
// vagrant user from the box's seed, Vagrant logs in with its insecure key
// and replaces it), `vagrant ssh -c 'sudo hostctl status'`, and
// `vagrant destroy -f`, which leaves no domain and no disk behind.
func TestVagrantUp(t *testing.T) {
	img := image(t)
	for _, bin := range []string{"vagrant", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("TestVagrantUp needs %s (make deps installs vagrant, vagrant-libvirt, openssh-client): %v", bin, err)
		}
	}
	var manifest struct {
		Version string `json:"version"`
	}
	if data, err := os.ReadFile(filepath.Join(img, "manifest.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(data, &manifest); err != nil {
		t.Fatalf("%s: %v", filepath.Join(img, "manifest.json"), err)
	}
	box := convertedImage(t, string(diskfmt.Vagrant), diskfmt.FileName(diskfmt.Vagrant, manifest.Version))

	lv := startLibvirtd(t)
	dir := t.TempDir()
	v := &vagrant{t: t, lv: lv, project: filepath.Join(dir, "project"), home: filepath.Join(dir, "home"), logs: filepath.Join(dir, "logs")}
	pool, console := filepath.Join(dir, "pool"), filepath.Join(dir, "console.log")
	for _, d := range []string{v.project, v.home, v.logs, pool} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vf := fmt.Sprintf(vagrantProject, lv.URI, pool, console)
	if err := os.WriteFile(filepath.Join(v.project, "Vagrantfile"), []byte(vf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		keep := filepath.Join(os.TempDir(), "bulkhead-qemu-logs")
		_ = os.MkdirAll(keep, 0o755)
		if c, err := os.ReadFile(console); err == nil {
			_ = os.WriteFile(filepath.Join(keep, "TestVagrantUp-console.log"), c, 0o644)
			t.Logf("guest console (kept in %s):\n%s", keep, tailString(string(c), 4000))
		}
		logs, _ := filepath.Glob(filepath.Join(v.logs, "*.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			_ = os.WriteFile(filepath.Join(keep, "TestVagrantUp-vagrant-"+filepath.Base(l)), data, 0o644)
		}
		if len(logs) > 0 {
			data, _ := os.ReadFile(logs[len(logs)-1])
			t.Logf("%s (all kept in %s):\n%s", filepath.Base(logs[len(logs)-1]), keep, tailString(string(data), 8000))
		}
	})

	v.must(10*time.Minute, "box", "add", "--name", "bulkhead", box)
	if out := v.must(time.Minute, "box", "list"); !strings.Contains(out, "bulkhead") || !strings.Contains(out, "libvirt") {
		t.Fatalf("vagrant box list after the add: %q", out)
	}

	up := v.must(30*time.Minute, "up", "--provider=libvirt")
	// Vagrant logged in with its insecure key and swapped it for its own.
	for _, want := range []string{"Vagrant insecure key detected", "Inserting generated public key within guest", "Removing insecure key from the guest", "Key inserted!"} {
		if !strings.Contains(up, want) {
			t.Errorf("vagrant up did not say %q:\n%s", want, up)
		}
	}
	doms := strings.Fields(lv.Virsh(t, "list", "--name"))
	if len(doms) != 1 {
		t.Fatalf("running domains after vagrant up: %q, want one", doms)
	}
	dom := doms[0]

	// The text status names the OS, its version and the booted slot; the
	// JSON one says which slot that is.
	text := v.must(5*time.Minute, "ssh", "-c", "sudo -n hostctl status")
	t.Logf("vagrant ssh -c 'sudo -n hostctl status':\n%s", text)
	var st hostStatus
	js := v.must(5*time.Minute, "ssh", "-c", "sudo -n hostctl status --json")
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("hostctl status --json over vagrant ssh: %v\n%s", err, js)
	}
	if st.Slots.Booted != "a" && st.Slots.Booted != "b" {
		t.Errorf("booted slot %q, want a or b", st.Slots.Booted)
	}
	if st.Slots.Version != manifest.Version {
		t.Errorf("booted version %q, want the image's %q", st.Slots.Version, manifest.Version)
	}
	for _, want := range []string{
		fmt.Sprintf("OS:      %s %s\n", st.Slots.OS, manifest.Version),
		fmt.Sprintf("Booted:  slot %s\n", st.Slots.Booted),
		"hostd:   running",
	} {
		if st.Slots.OS == "" || !strings.Contains(text, want) {
			t.Errorf("vagrant ssh -c 'sudo hostctl status' lacks %q:\n%s", want, text)
		}
	}

	// The vagrant user holds Vagrant's generated key and none of the
	// insecure ones: the box is not left open to the published key.
	gen, err := exec.Command("ssh-keygen", "-y", "-f", filepath.Join(v.project, ".vagrant/machines/default/libvirt/private_key")).Output()
	if err != nil {
		t.Fatalf("Vagrant's generated key: %v", err)
	}
	ak := v.must(5*time.Minute, "ssh", "-c", "id -un; cat ~/.ssh/authorized_keys")
	if !strings.HasPrefix(ak, "vagrant\n") {
		t.Errorf("vagrant ssh logs in as %q, want vagrant", strings.SplitN(ak, "\n", 2)[0])
	}
	if blob := strings.Fields(string(gen))[1]; !strings.Contains(ak, blob) {
		t.Errorf("authorized_keys lacks Vagrant's generated key %.40s...:\n%s", blob, ak)
	}
	for _, k := range diskfmt.VagrantInsecureKeys {
		if f := strings.Fields(k); strings.Contains(ak, f[1]) {
			t.Errorf("authorized_keys still holds the insecure %s key after vagrant up:\n%s", f[0], ak)
		}
	}

	v.must(10*time.Minute, "destroy", "-f")
	if out := lv.Virsh(t, "list", "--all", "--name"); strings.Contains(out, dom) {
		t.Errorf("domain %s is still defined after vagrant destroy: %q", dom, out)
	}
	if out := lv.Virsh(t, "vol-list", "default"); strings.Contains(out, dom) {
		t.Errorf("domain %s's volume is still in the pool after vagrant destroy:\n%s", dom, out)
	}
	if out := v.must(time.Minute, "status"); !strings.Contains(out, "not created") {
		t.Errorf("vagrant status after destroy: %q, want not created", out)
	}
}
