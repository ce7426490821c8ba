package qemutests

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit"
)

var (
	imageDir = flag.String("image", "", "built image directory (out/<name>); the boot tests run only when it is given")
)

// bootTimeout bounds one boot. TCG boots take 25-60 s and this machine
// stalls now and then, so it is generous; tests never assert on time.
const bootTimeout = 8 * time.Minute

// image returns the built image directory or fails, naming why.
func image(t testing.TB) string {
	t.Helper()
	if *imageDir == "" {
		t.Fatal("QEMU boot test: runs with -image DIR (make test-qemu passes out/default)")
	}
	dir, _ := filepath.Abs(*imageDir)
	if _, err := os.Stat(filepath.Join(dir, "disk.qcow2")); err != nil {
		t.Fatalf("no built image at %s (run `make image`; `make test` builds it first): %v", dir, err)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 missing: apt-get install qemu-system-x86 (make deps does)")
	}
	return dir
}

// BootOpts are the knobs of bootVM.
type BootOpts struct {
	Firmware Firmware
	DiskSize string // virtual size of the overlay; "" keeps the image's size
	Base     string // base image; "" for the image under test's qcow2
	// BaseFormat is Base's format for qemu (qcow2 when empty; vmdk, vpc
	// for a VHD, raw): the overlay reads it through qemu's own driver.
	BaseFormat string
	Extra      []Disk
	MemoryMB   int
	NetOpts    []string
	FwCfg      map[string]string
	SMBIOS     []string
	DiskBus    string
	// Overlay boots an existing overlay (vm.Cfg.Disk of an earlier VM of
	// this test, shut down) instead of a fresh one: the same machine
	// booted again, e.g. with other extra disks.
	Overlay string
}

// bootVM starts a VM on a fresh overlay over the built qcow2 (which is never
// modified) and stops it when the test ends. On failure the console log is
// kept under $TMPDIR/bulkhead-qemu-logs.
func bootVM(t testing.TB, o BootOpts) *VM {
	t.Helper()
	img := image(t)
	dir := t.TempDir()
	base := o.Base
	if base == "" {
		base = filepath.Join(img, "disk.qcow2")
	}
	overlay := o.Overlay
	if overlay == "" {
		overlay = filepath.Join(dir, "disk.qcow2")
		args := []string{"create", "-q", "-f", "qcow2", "-F", orDefault(o.BaseFormat, "qcow2"), "-b", base, overlay}
		if o.DiskSize != "" {
			args = append(args, o.DiskSize)
		}
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("creating overlay: %v: %s", err, out)
		}
	}
	c := Config{
		Firmware: o.Firmware, Accel: Accel(filepath.Join(img, "payload/vmlinuz")),
		MemoryMB: orInt(o.MemoryMB, 1536), CPUs: 2, Disk: overlay, DiskBus: o.DiskBus,
		Extra: o.Extra, FwCfg: o.FwCfg, NetOpts: o.NetOpts, SMBIOS: o.SMBIOS,
		QGASock: filepath.Join(dir, "qga.sock"), QMPSock: filepath.Join(dir, "qmp.sock"),
	}
	if c.Firmware == "" {
		c.Firmware = BIOS
	}
	if c.Firmware != BIOS {
		src := ovmfVars
		if c.Firmware == SecureBoot {
			src = ovmfMSVars
		}
		c.VarsFile = filepath.Join(dir, "vars.fd")
		if out, err := exec.Command("cp", src, c.VarsFile).CombinedOutput(); err != nil {
			t.Fatalf("copying OVMF variables: %v: %s", err, out)
		}
	}
	vm, err := Start(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("booting %s with %s (%s)", base, c.Firmware, c.Accel)
	t.Cleanup(func() {
		vm.Shutdown(60 * time.Second)
		if t.Failed() {
			logs := filepath.Join(os.TempDir(), "bulkhead-qemu-logs")
			_ = os.MkdirAll(logs, 0o755)
			p := filepath.Join(logs, strings.ReplaceAll(t.Name(), "/", "_")+".log")
			_ = os.WriteFile(p, []byte(vm.Console().String()), 0o644)
			t.Logf("console log kept at %s", p)
		}
	})
	return vm
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// waitReady waits for the guest agent, then for systemd to finish booting,
// and returns the state systemd reports (running or degraded).
func waitReady(t testing.TB, vm *VM) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := vm.WaitAgent(ctx); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, vm.Console().tail(4000))
	}
	r, err := vm.Exec(ctx, "systemctl", "is-system-running", "--wait")
	if err != nil {
		t.Fatal(err)
	}
	state := strings.TrimSpace(r.Stdout)
	if state != "running" {
		failed, _ := vm.Sh(ctx, "systemctl --failed --no-legend; journalctl -b -p warning --no-pager | tail -40")
		t.Logf("system state %q; failed units and warnings:\n%s", state, failed)
	}
	return state
}

// waitUnit waits until a unit is active (or failed) and returns its state.
func waitUnit(t testing.TB, vm *VM, unit string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	for {
		r, err := vm.Exec(ctx, "systemctl", "is-active", unit)
		if err != nil {
			t.Fatalf("asking for %s: %v", unit, err)
		}
		switch s := strings.TrimSpace(r.Stdout); s {
		case "active", "failed", "inactive":
			if s != "inactive" {
				return s
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", unit, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// hostStatus is the part of `hostctl status --json` the tests read.
type hostStatus struct {
	Slots struct {
		OS      string `json:"os"`
		Version string `json:"version"`
		Booted  string `json:"booted"`
		Default string `json:"default"`
		// The boot disk (issue 14, part 4).
		Disk         string `json:"disk"`
		DiskGUID     string `json:"diskGUID"`
		DiskPristine bool   `json:"diskPristine"`
		Slots        []struct {
			Slot      string `json:"slot"`
			State     string `json:"state"`
			Version   string `json:"version"`
			TriesLeft int    `json:"triesLeft"`
		} `json:"slots"`
	} `json:"slots"`
	Hostd *struct {
		Version string `json:"version"`
		PID     int    `json:"pid"`
	} `json:"hostd"`
	HostdError string `json:"hostdError"`
	// Provision is the first-boot provisioning report (cloudinit).
	Provision      *cloudinit.Report `json:"provision"`
	ProvisionError string            `json:"provisionError"`
}

func status(t testing.TB, vm *VM) hostStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := vm.Sh(ctx, "hostctl status --json")
	if err != nil {
		t.Fatal(err)
	}
	var s hostStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("decoding hostctl status: %v: %s", err, out)
	}
	return s
}

func sh(t testing.TB, vm *VM, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := vm.Sh(ctx, script)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func fmtSlots(s hostStatus) string {
	var b strings.Builder
	for _, sl := range s.Slots.Slots {
		fmt.Fprintf(&b, "%s=%s(%s) ", sl.Slot, sl.State, sl.Version)
	}
	return b.String()
}
