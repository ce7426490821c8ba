package cloudinit

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit/internal/testtree"
	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/golden"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// fixture is a root that looks enough like a Bulkhead host for the
// modules: account databases, zoneinfo, uptime, the root partition in sysfs.
var fixture = map[string]string{
	"/etc/passwd":                       "root:x:0:0:root:/root:/bin/sh\n",
	"/etc/group":                        "root:x:0:\nadm:x:4:\nsudo:x:27:\n",
	"/etc/fstab":                        "PARTUUID=4f68bce3 / ext4 defaults 0 1\n",
	"/usr/share/zoneinfo/UTC":           "TZif-utc",
	"/usr/share/zoneinfo/Europe/Berlin": "TZif-berlin",
	"/proc/uptime":                      "12.34 20.00\n",
	"/sys/class/block/vda9/partition":   "9\n",
	"/sys/class/dmi/id/sys_vendor":      "QEMU\n",
	"/usr/lib/os-release":               "ID=bulkhead\n",
}

// fixturePaths are left out of the golden trees.
var fixturePaths = []string{"/etc/passwd", "/etc/group", "/usr/share", "/proc", "/sys", "/seed", "/usr/lib", "/dev", StateDir + "/report.json"}

type env struct {
	root    fsroot.Root
	rec     *run.Recorder
	console *bytes.Buffer
	fail    map[string]error // command line prefix -> error to answer
	// hostKey makes SSH host keys (nil: real ones from crypto/rand);
	// newEnv sets fixedHostKey so that outputs are stable.
	hostKey func(string) (crypto.Signer, error)
}

// fixedHostKey returns the same ed25519 or ECDSA P-256 key every time, so
// fingerprints in golden files do not change.
func fixedHostKey(typ string) (crypto.Signer, error) {
	secret := bytes.Repeat([]byte{0x2a}, 32)
	switch typ {
	case "ed25519":
		return ed25519.NewKeyFromSeed(secret), nil
	case "ecdsa":
		return ecdsa.ParseRawPrivateKey(elliptic.P256(), secret)
	}
	return nil, fmt.Errorf("no fixed %s key in the tests", typ)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	for p, c := range fixture {
		writeFile(t, filepath.Join(root, p), c)
	}
	// The sysfs link of a partition points into its disk's directory.
	if err := os.Remove(filepath.Join(root, "/sys/class/block/vda9/partition")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "/sys/class/block/vda9"))
	dev := filepath.Join(root, "/sys/devices/pci0000:00/virtio2/block/vda/vda9")
	writeFile(t, filepath.Join(dev, "partition"), "9\n")
	if err := os.Symlink("../../devices/pci0000:00/virtio2/block/vda/vda9", filepath.Join(root, "/sys/class/block/vda9")); err != nil {
		t.Fatal(err)
	}
	e := &env{root: fsroot.Root(root), console: &bytes.Buffer{}, fail: map[string]error{}, hostKey: fixedHostKey}
	e.rec = &run.Recorder{Respond: func(c run.Cmd) ([]byte, error) {
		line := c.String()
		for prefix, err := range e.fail {
			if strings.HasPrefix(line, prefix) {
				return nil, err
			}
		}
		switch c.Name {
		case "findmnt":
			return []byte("/dev/vda9 ext4\n"), nil
		case "sfdisk":
			if c.Args[0] == "--json" {
				return []byte(`{"partitiontable":{"partitions":[{"node":"/dev/vda9"}]}}`), nil
			}
		}
		testtree.FakeShadow(root, c.Name, c.Args)
		return nil, nil
	}}
	return e
}

func writeFile(t *testing.T, path, content string) { testtree.WriteFile(t, path, content) }

// fakeClock advances one millisecond per reading, so durations in the
// report are stable.
func fakeClock() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Millisecond)
		return t
	}
}

func (e *env) provision(t *testing.T, cmdline string) *Report {
	t.Helper()
	rep, err := Provision(context.Background(), Options{
		Root: e.root, Runner: e.rec, Console: e.console, Cmdline: cmdline, Now: fakeClock(), NewHostKey: e.hostKey,
		IMDSBase: "http://127.0.0.1:1", NetWait: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// copySeed copies a testdata seed directory to /seed in the root.
func (e *env) copySeed(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		data, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, e.root.Join("/seed", en.Name()), string(data))
	}
}

func (e *env) transcript() string {
	return strings.ReplaceAll(e.rec.Transcript(), string(e.root), "ROOT")
}

// TestProvisionCorpus provisions from each seed under testdata/provision
// and compares console, report, commands and resulting files with golden
// files.
func TestProvisionCorpus(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/provision/*")
	if len(dirs) == 0 {
		t.Fatal("no corpus")
	}
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.copySeed(t, dir)
			if name == "bad" {
				e.fail["useradd --create-home --user-group broken"] = errors.New("useradd: simulated failure")
			}
			rep := e.provision(t, "console=ttyS0 ds=nocloud;s=/seed")
			var b strings.Builder
			fmt.Fprintf(&b, "## console\n%s## report\n%s## commands\n%s## files\n%s",
				e.console.String(), rep.String(), e.transcript(), testtree.Dump(string(e.root), fixturePaths...))
			golden.Assert(t, "golden/"+name+".txt", []byte(b.String()))
		})
	}
}

// TestPerInstance reboots with the same instance-id (only per-boot
// modules run) and then with a new one (everything runs again).
func TestPerInstance(t *testing.T) {
	e := newEnv(t)
	writeFile(t, e.root.Join("/seed/meta-data"), "instance-id: one\n")
	writeFile(t, e.root.Join("/seed/user-data"), "#cloud-config\nbootcmd: [echo boot]\nruncmd: [echo once]\nhostname: h1\ngrowpart: {}\nresize_rootfs: true\n")
	status := func(rep *Report) string {
		var s []string
		for _, m := range rep.Modules {
			if m.Status != StatusNothing {
				s = append(s, m.Name+"="+string(m.Status))
			}
		}
		return strings.Join(s, " ")
	}
	first := e.provision(t, "ds=nocloud;s=/seed")
	second := e.provision(t, "ds=nocloud;s=/seed")
	writeFile(t, e.root.Join("/seed/meta-data"), "instance-id: two\n")
	third := e.provision(t, "ds=nocloud;s=/seed")
	for _, tc := range []struct {
		name    string
		rep     *Report
		wantNew bool
		want    string
	}{
		{"first boot", first, true, "bootcmd=ran growpart=ran resize_rootfs=ran hostname=ran users_groups=ran ssh_host_keys=ran keys_to_console=ran runcmd=ran final_message=ran"},
		{"reboot", second, false, "bootcmd=ran growpart=ran resize_rootfs=ran hostname=skipped users_groups=skipped ssh_host_keys=skipped keys_to_console=skipped runcmd=skipped final_message=ran"},
		{"new instance", third, true, "bootcmd=ran growpart=ran resize_rootfs=ran hostname=ran users_groups=ran ssh_host_keys=ran keys_to_console=ran runcmd=ran final_message=ran"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status(tc.rep); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if tc.rep.NewInstance != tc.wantNew {
				t.Errorf("got new instance %v, want %v", tc.rep.NewInstance, tc.wantNew)
			}
		})
	}
	if got := strings.Count(e.transcript(), "scripts/runcmd"); got != 2 {
		t.Errorf("got runcmd run %d times, want 2", got)
	}
	if got := readState(e.root, "instance-id"); got != "two" {
		t.Errorf("got instance-id %q, want %q", got, "two")
	}
}

func TestNoDatasource(t *testing.T) {
	e := newEnv(t)
	rep := e.provision(t, "")
	if rep.Source != "" || len(rep.Modules) != 0 || !rep.OK() {
		t.Errorf("got %+v, want an empty report", rep)
	}
	// The fixture is a QEMU guest without fw_cfg shown: the driver is loaded.
	if got := e.transcript(); got != "modprobe qemu_fw_cfg\n" {
		t.Errorf("got commands %q, want only modprobe qemu_fw_cfg", got)
	}
	loaded, err := LoadReport(e.root)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.String() != rep.String() {
		t.Errorf("got loaded report %q, want %q", loaded.String(), rep.String())
	}
}

func TestLoadReportMissing(t *testing.T) {
	if _, err := LoadReport(fsroot.Root(t.TempDir())); !errors.Is(err, ErrNoReport) {
		t.Errorf("got %v, want ErrNoReport", err)
	}
}

// TestSeedISO builds a seed ISO the way `builder seed` does, puts it where
// the kernel would show a CD-ROM, and provisions from it without udev.
func TestSeedISO(t *testing.T) {
	for _, format := range []seed.Format{seed.FormatISO, seed.FormatVFAT} {
		t.Run(string(format), func(t *testing.T) {
			e := newEnv(t)
			if err := os.MkdirAll(e.root.Join("/dev"), 0o755); err != nil {
				t.Fatal(err)
			}
			files := seed.Files{UserData: []byte("#cloud-config\nhostname: from-iso\nwrite_files:\n- {path: /etc/seeded, content: yes}\n")}
			if err := seed.Write(e.root.Join("/dev/sr0"), files, format); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(e.root.Join("/sys/class/block/sr0"), 0o755); err != nil {
				t.Fatal(err)
			}
			rep := e.provision(t, "")
			if rep.Source != "nocloud:/dev/sr0" || rep.InstanceID != "iid-local01" {
				t.Errorf("got source %q instance %q, want nocloud:/dev/sr0 iid-local01", rep.Source, rep.InstanceID)
			}
			if got := readFile(e.root.Join("/etc/hostname")); got != "from-iso\n" {
				t.Errorf("got hostname %q, want %q", got, "from-iso\n")
			}
			if got := readFile(e.root.Join("/etc/seeded")); got != "yes" {
				t.Errorf("got /etc/seeded %q, want %q", got, "yes")
			}
		})
	}
}

// TestScriptsRunForReal runs bootcmd, runcmd and a MIME #! part with the
// real runner and /bin/sh: output reaches the console, INSTANCE_ID is set,
// runcmd lines share one shell.
func TestScriptsRunForReal(t *testing.T) {
	root := fsroot.Root(t.TempDir())
	out := t.TempDir()
	ud := "Content-Type: multipart/mixed; boundary=XX\nMIME-Version: 1.0\n\n" +
		"--XX\nContent-Type: text/cloud-config\n\n#cloud-config\nusers: []\n" +
		"bootcmd:\n  - echo boot-$INSTANCE_ID > " + out + "/boot\n" +
		"runcmd:\n  - cd " + out + "\n  - [sh, -c, 'echo ran > runcmd']\n  - echo console-line\n" +
		"--XX\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho script > " + out + "/script\n" +
		"--XX--\n"
	writeFile(t, root.Join("/seed/meta-data"), "instance-id: real-1\n")
	writeFile(t, root.Join("/seed/user-data"), ud)
	var console bytes.Buffer
	rep, err := Provision(context.Background(), Options{Root: root, Runner: run.Exec{}, Console: &console, Cmdline: "ds=nocloud;s=/seed"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("got problems %v errors %v", rep.Problems, rep.Errors)
	}
	for name, want := range map[string]string{"boot": "boot-real-1\n", "runcmd": "ran\n", "script": "script\n"} {
		if got := readFile(filepath.Join(out, name)); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(console.String(), "console-line\n") {
		t.Errorf("got console %q, want it to contain the runcmd output", console.String())
	}
}

// TestIgnitionFwCfg provisions from an Ignition config passed through
// QEMU's fw_cfg, with no NoCloud seed.
func TestIgnitionFwCfg(t *testing.T) {
	e := newEnv(t)
	cfg, err := os.ReadFile("ignition/testdata/configs/butane-fcos-3.4.json")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.root.Join("/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw"), string(cfg))
	rep := e.provision(t, "")
	if rep.Source != "ignition:fw_cfg" || !strings.HasPrefix(rep.InstanceID, "ign-") {
		t.Errorf("got source %q instance %q, want ignition:fw_cfg ign-...", rep.Source, rep.InstanceID)
	}
	if got := readFile(e.root.Join("/etc/hostname")); got != "butane-node" {
		t.Errorf("got /etc/hostname %q, want %q", got, "butane-node")
	}
	if !strings.Contains(e.transcript(), "systemctl enable hello.service\n") {
		t.Errorf("got commands %q, want hello.service enabled", e.transcript())
	}
	// The same config on the next boot is the same instance: not re-applied.
	again := e.provision(t, "")
	for _, m := range again.Modules {
		if m.Name == "ignition" && m.Status != StatusSkipped {
			t.Errorf("got ignition %s on the second boot, want skipped", m.Status)
		}
	}
}

// BenchmarkProvision measures one first boot with the typical user-data of
// testdata/provision/full (commands recorded, not run): the part of boot
// time that is ours rather than useradd's or systemctl's.
func BenchmarkProvision(b *testing.B) {
	ud, err := os.ReadFile("testdata/provision/full/user-data")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := fsroot.Root(b.TempDir())
		for p, c := range fixture {
			testtree.WriteFile(b, root.Join(p), c)
		}
		testtree.WriteFile(b, root.Join("/seed/meta-data"), "instance-id: bench\n")
		testtree.WriteFile(b, root.Join("/seed/user-data"), string(ud))
		rec := &run.Recorder{Respond: func(c run.Cmd) ([]byte, error) {
			testtree.FakeShadow(string(root), c.Name, c.Args)
			if c.Name == "findmnt" {
				return []byte("/dev/vda9 ext4\n"), nil
			}
			return nil, nil
		}}
		b.StartTimer()
		if _, err := Provision(context.Background(), Options{Root: root, Runner: rec, Cmdline: "ds=nocloud;s=/seed"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNetworkConfigPerInstance: the first instance's network-config is
// rendered and networkd reloaded; a reboot leaves it alone; a new instance
// without network-config removes our file (the image's DHCP default applies
// again) but never an administrator's.
func TestNetworkConfigPerInstance(t *testing.T) {
	e := newEnv(t)
	writeFile(t, e.root.Join("/seed/meta-data"), "instance-id: one\n")
	writeFile(t, e.root.Join("/seed/user-data"), "#cloud-config\n{}\n")
	writeFile(t, e.root.Join("/seed/network-config"), "version: 2\nethernets:\n  ens3:\n    addresses: [192.0.2.10/24]\n")
	writeFile(t, e.root.Join("/etc/systemd/network/20-admin.network"), "[Match]\nName=ens9\n")
	ours := e.root.Join("/etc/systemd/network/10-cloud-init-ens3.network")

	e.provision(t, "ds=nocloud;s=/seed")
	if got := readFile(ours); !strings.Contains(got, "Address=192.0.2.10/24\n") {
		t.Fatalf("got %q, want a .network file with the address", got)
	}
	e.provision(t, "ds=nocloud;s=/seed")
	if err := os.Remove(e.root.Join("/seed/network-config")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.root.Join("/seed/meta-data"), "instance-id: two\n")
	rep := e.provision(t, "ds=nocloud;s=/seed")
	if _, err := os.Stat(ours); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want our file removed for the new instance", err)
	}
	if readFile(e.root.Join("/etc/systemd/network/20-admin.network")) == "" {
		t.Error("got the administrator's file removed, want it kept")
	}
	if got, want := strings.Count(e.transcript(), "networkctl reload\n"), 2; got != want {
		t.Errorf("got networkctl reload %d times, want %d (first instance, removal)", got, want)
	}
	for _, m := range rep.Modules {
		if m.Name == "network_config" && m.Status != StatusRan {
			t.Errorf("got network_config %s for the new instance, want ran", m.Status)
		}
	}
}
