package qemutests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Firmware is what the VM boots with.
type Firmware string

const (
	BIOS       Firmware = "bios"        // SeaBIOS: what a plain virt-install --import uses
	UEFI       Firmware = "uefi"        // OVMF without Secure Boot
	SecureBoot Firmware = "secure-boot" // OVMF with Microsoft keys enrolled, Secure Boot on
)

// OVMF files from Debian's ovmf package.
const (
	ovmfCode       = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars       = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	ovmfSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfMSVars     = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// Disk is an extra disk.
type Disk struct {
	File   string // image file
	Format string // qcow2 or raw
	Bus    string // virtio, sata, nvme, scsi
	Serial string
	CDROM  bool
}

// Config describes one VM.
type Config struct {
	Firmware Firmware
	Accel    string // kvm or tcg
	MemoryMB int
	CPUs     int
	Disk     string // the boot disk (an overlay), qcow2
	DiskBus  string // virtio (default), sata, nvme
	Extra    []Disk
	// FwCfg maps fw_cfg names (opt/...) to files.
	FwCfg map[string]string
	// NetOpts are appended to -netdev user (hostfwd=..., guestfwd=...).
	NetOpts []string
	// SMBIOS are -smbios arguments (e.g. type=1,serial=ds=nocloud;...).
	SMBIOS   []string
	VarsFile string // a writable copy of the OVMF variables (UEFI only)
	QGASock  string // the guest agent's socket
	QMPSock  string
}

// QemuArgs builds the qemu-system-x86_64 argument list: a pure function,
// golden-tested, turned into a process only by Start.
func QemuArgs(c Config) []string {
	machine := "q35"
	if c.Firmware == SecureBoot {
		machine += ",smm=on" // OVMF's Secure Boot build needs SMM to protect its variables
	}
	args := []string{
		"-machine", machine, "-accel", c.Accel, "-cpu", cpuFor(c.Accel),
		"-m", fmt.Sprint(c.MemoryMB), "-smp", fmt.Sprint(c.CPUs),
		"-display", "none", "-vga", "std", "-serial", "stdio", "-monitor", "none",
		"-qmp", "unix:" + c.QMPSock + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
		// The hardware watchdog systemd feeds; a hung boot resets.
		"-device", "i6300esb", "-action", "watchdog=reset",
		"-chardev", "socket,path=" + c.QGASock + ",server=on,wait=off,id=qga0",
		"-device", "virtio-serial-pci",
		"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
	}
	switch c.Firmware {
	case UEFI:
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+c.VarsFile)
	case SecureBoot:
		args = append(args,
			"-global", "driver=cfi.pflash01,property=secure,value=on",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfSecureCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+c.VarsFile)
	}
	args = append(args, diskArgs("d0", Disk{File: c.Disk, Format: "qcow2", Bus: c.DiskBus}, true)...)
	for i, d := range c.Extra {
		args = append(args, diskArgs(fmt.Sprintf("d%d", i+1), d, false)...)
	}
	netdev := "user,id=n0"
	for _, o := range c.NetOpts {
		netdev += "," + o
	}
	args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0")
	for name, file := range c.FwCfg {
		args = append(args, "-fw_cfg", "name="+name+",file="+file)
	}
	for _, s := range c.SMBIOS {
		args = append(args, "-smbios", s)
	}
	return args
}

func cpuFor(accel string) string {
	if accel == "kvm" {
		return "host"
	}
	return "max"
}

func diskArgs(id string, d Disk, boot bool) []string {
	format := d.Format
	if format == "" {
		format = "qcow2"
	}
	media := ""
	if d.CDROM {
		media = ",media=cdrom,readonly=on"
		format = "raw"
	}
	drive := fmt.Sprintf("file=%s,if=none,id=%s,format=%s,cache=writeback%s", d.File, id, format, media)
	dev := ""
	switch {
	case d.Bus == "sata" && d.CDROM:
		dev = "ide-cd,bus=ide.1,drive=" + id
	case d.Bus == "sata":
		dev = "ide-hd,bus=ide.2,drive=" + id
	case d.Bus == "nvme":
		dev = "nvme,drive=" + id + ",serial=" + orDefault(d.Serial, id)
	case d.Bus == "scsi" && d.CDROM:
		dev = "scsi-cd,drive=" + id
	default:
		if d.CDROM {
			dev = "ide-cd,bus=ide.1,drive=" + id
		} else {
			dev = "virtio-blk-pci,drive=" + id
			if d.Serial != "" {
				dev += ",serial=" + d.Serial
			}
		}
	}
	if boot {
		dev += ",bootindex=0"
	}
	return []string{"-drive", drive, "-device", dev}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

var (
	accelOnce sync.Once
	accel     string
)

// Accel picks KVM when it really runs a guest here, else TCG. The probe
// boots the image's own kernel under KVM and waits for its first line; the
// BULKHEAD_ACCEL environment variable overrides it.
func Accel(kernel string) string {
	accelOnce.Do(func() {
		if v := os.Getenv("BULKHEAD_ACCEL"); v != "" {
			accel = v
			return
		}
		accel = "tcg"
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
			f.Close()
		} else {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-machine", "q35", "-cpu", "host",
			"-m", "256", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
			"-kernel", kernel, "-append", "console=ttyS0 panic=-1")
		out, _ := cmd.Output()
		if bytes.Contains(out, []byte("Linux version")) {
			accel = "kvm"
		}
	})
	return accel
}

// VM is a running QEMU.
type VM struct {
	Cfg     Config
	dir     string
	cmd     *exec.Cmd
	console *Console
	stdin   io.WriteCloser // the serial console's input
	done    chan struct{}
	exitErr error
	qga     *QGA
}

// Start starts QEMU for c in dir. The console goes to dir/console.log too.
func Start(c Config, dir string) (*VM, error) {
	logf, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		return nil, err
	}
	vm := &VM{Cfg: c, dir: dir, console: NewConsole(logf), qga: &QGA{Path: c.QGASock}}
	if err := vm.launch(logf); err != nil {
		logf.Close()
		return nil, err
	}
	return vm, nil
}

// Restart powers the machine on again after QEMU exited (a Kill is a power
// cut): the same disks, firmware variables and sockets, the console
// appending to the same buffer, so marks taken before stay valid.
func (vm *VM) Restart() error {
	if !vm.Exited() {
		return errors.New("restarting qemu: it is still running")
	}
	logf, err := os.OpenFile(filepath.Join(vm.dir, "console.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	vm.console.mu.Lock()
	vm.console.w = logf
	vm.console.mu.Unlock()
	if err := vm.launch(logf); err != nil {
		logf.Close()
		return err
	}
	return nil
}

// launch starts the QEMU process, its console going to vm.console.
func (vm *VM) launch(logf *os.File) error {
	cmd := exec.Command("qemu-system-x86_64", QemuArgs(vm.Cfg)...)
	cmd.Stdout = vm.console
	// -serial stdio: what is written here is typed at the serial console.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("starting qemu: %w", err)
	}
	vm.stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(vm.console, &stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting qemu: %w", err)
	}
	done := make(chan struct{})
	vm.cmd, vm.done, vm.exitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		vm.exitErr = err
		close(done)
	}()
	return nil
}

// Console returns the serial console.
func (vm *VM) Console() *Console { return vm.console }

// Type types s at the serial console, as a person at `virsh console` would.
// QEMU takes input only as fast as the guest's UART accepts it.
func (vm *VM) Type(s string) error {
	if _, err := io.WriteString(vm.stdin, s); err != nil {
		return fmt.Errorf("typing at the serial console: %w", err)
	}
	return nil
}

// Exited reports whether QEMU has exited.
func (vm *VM) Exited() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

// Kill stops QEMU at once: a power cut for the guest.
func (vm *VM) Kill() {
	if vm.cmd.Process != nil {
		_ = vm.cmd.Process.Kill()
	}
	<-vm.done
}

// Shutdown powers the guest off (guest agent, then ACPI), waiting up to
// timeout before killing QEMU.
func (vm *VM) Shutdown(timeout time.Duration) {
	if vm.Exited() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = vm.qga.Call(ctx, "guest-shutdown", map[string]any{"mode": "powerdown"}, nil)
	cancel()
	select {
	case <-vm.done:
	case <-time.After(timeout):
		vm.Kill()
	}
}

// WaitExit waits for QEMU to exit.
func (vm *VM) WaitExit(ctx context.Context) error {
	select {
	case <-vm.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ExecResult is a finished guest command.
type ExecResult struct {
	Code           int
	Stdout, Stderr string
}

// Exec runs argv in the guest through the guest agent and waits for it.
func (vm *VM) Exec(ctx context.Context, argv ...string) (ExecResult, error) {
	return vm.qga.Exec(ctx, argv)
}

// Sh runs a shell command in the guest and returns its stdout; a non-zero
// exit is an error carrying stderr.
func (vm *VM) Sh(ctx context.Context, script string) (string, error) {
	r, err := vm.Exec(ctx, "/bin/sh", "-c", script)
	if err != nil {
		return "", err
	}
	if r.Code != 0 {
		return r.Stdout, fmt.Errorf("guest command %q exited %d: %s%s", script, r.Code, r.Stderr, r.Stdout)
	}
	return r.Stdout, nil
}

// WaitAgent waits until the guest agent answers (the guest has booted far
// enough) or ctx ends; it fails early if QEMU exits.
func (vm *VM) WaitAgent(ctx context.Context) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := vm.qga.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if vm.Exited() {
			return fmt.Errorf("qemu exited before the guest agent answered: %v", vm.exitErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the guest agent: %w (last: %v)", ctx.Err(), err)
		case <-time.After(2 * time.Second):
		}
	}
}

// Console collects the serial console and lets tests wait for text in it.
type Console struct {
	mu   sync.Mutex
	buf  []byte
	w    io.Writer
	cond chan struct{}
}

// NewConsole copies everything written to w as well.
func NewConsole(w io.Writer) *Console {
	return &Console{w: w, cond: make(chan struct{})}
}

func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf = append(c.buf, p...)
	close(c.cond)
	c.cond = make(chan struct{})
	c.mu.Unlock()
	if c.w != nil {
		_, _ = c.w.Write(p)
	}
	return len(p), nil
}

// String is everything so far.
func (c *Console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// Len is the number of bytes so far (a mark to wait from).
func (c *Console) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

// Count is how many times re matches the output after mark.
func (c *Console) Count(re *regexp.Regexp, mark int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(re.FindAllIndex(c.buf[mark:], -1))
}

// Wait waits until re matches the console output after byte offset mark,
// and returns the match and the offset after it.
func (c *Console) Wait(ctx context.Context, re *regexp.Regexp, mark int) (string, int, error) {
	for {
		c.mu.Lock()
		if mark > len(c.buf) {
			mark = len(c.buf)
		}
		loc := re.FindIndex(c.buf[mark:])
		if loc != nil {
			m := string(c.buf[mark+loc[0] : mark+loc[1]])
			c.mu.Unlock()
			return m, mark + loc[1], nil
		}
		ch := c.cond
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", mark, fmt.Errorf("waiting for %q on the console: %w; last output:\n%s", re, ctx.Err(), c.tail(3000))
		}
	}
}

func (c *Console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.ToValidUTF8(string(b), "?")
}
