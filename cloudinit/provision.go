package cloudinit

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/cloudinit/datasource"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Stage is a part of provisioning, run by its own unit, as cloud-init's
// init and final stages are.
type Stage string

// Stages. The init stage runs early, before the network is up and before
// sshd and hostd start (bulkhead-provision.service); the final stage runs
// after network-online.target, sshd and hostd (bulkhead-provision-final
// .service), so runcmd can restart sshd or start containers, and a hung
// runcmd never keeps anyone from logging in.
const (
	StageInit  Stage = "init"
	StageFinal Stage = "final"
	StageAll   Stage = "all" // both in one run: `hostctl provision --root DIR`
)

// Options is what Provision needs. Only Root and Runner are required.
type Options struct {
	Root   fsroot.Root
	Runner run.Runner
	Log    *slog.Logger
	// Console receives what a person at the console should see: each
	// problem and error as it happens, script output, the final message.
	// Everything written there also goes to OutputLog.
	Console io.Writer
	// Cmdline is the kernel command line (the caller reads /proc/cmdline).
	Cmdline string
	// Stage is what to run; "" means StageAll.
	Stage Stage
	// HTTP, IMDSBase, WireServer, NetWait are passed to the datasources;
	// see datasource.Options. Zero values take the production defaults.
	HTTP       *http.Client
	IMDSBase   string
	WireServer string
	NetWait    time.Duration
	// Now is the clock; tests pass a fake one so reports are stable.
	Now func() time.Time
	// NewHostKey makes an SSH host key of a type (ed25519, ecdsa, rsa);
	// nil generates one from crypto/rand. Tests pass fixed keys so that
	// their output is stable.
	NewHostKey func(typ string) (crypto.Signer, error)
	// Offline says Root is an image tree, not the running system: commands
	// run chrooted into Root, and those that act on the running kernel or
	// machine (hostname, mount, growpart, resize2fs, shutdown, modprobe)
	// are skipped. `hostctl provision --root DIR` sets it.
	Offline bool
}

// Paths of what provisioning keeps, relative to the root.
const (
	// OutputLog collects the console output of every stage and script, as
	// cloud-init's /var/log/cloud-init-output.log does, under that name:
	// it is where people and tools (Packer, Terraform) look.
	OutputLog = "/var/log/cloud-init-output.log"
	// DisabledFile stops provisioning on the boots after it appears, as it
	// stops cloud-init (virt-install's bare seed writes it from runcmd).
	DisabledFile = "/etc/cloud/cloud-init.disabled"
	// RunDir holds this boot's instance data, as /run/cloud-init does.
	RunDir = "/run/bulkhead/provision"
	// InstanceDataFile is the instance data for everyone (no user-data).
	InstanceDataFile = RunDir + "/instance-data.json"
	// sensitiveDataFile is everything the datasource gave, root only; the
	// final stage reads it instead of asking the datasource again.
	sensitiveDataFile = RunDir + "/instance-data-sensitive.json"
)

// chrootRunner runs every command inside root with chroot(8), so the
// shadow tools and systemctl edit the image tree, not the host.
type chrootRunner struct {
	root  fsroot.Root
	inner run.Runner
}

func (c chrootRunner) Run(ctx context.Context, cmd run.Cmd) ([]byte, error) {
	cmd.Args = append([]string{string(c.root), cmd.Name}, cmd.Args...)
	cmd.Name = "chroot"
	return c.inner.Run(ctx, cmd)
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Console == nil {
		o.Console = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NetWait == 0 {
		o.NetWait = 60 * time.Second
	}
	if o.Stage == "" {
		o.Stage = StageAll
	}
	if o.Offline {
		o.Runner = chrootRunner{root: o.Root, inner: o.Runner}
	}
}

// disabled says why provisioning must not run, or "": cloud-init's
// disable file, or cloud-init=disabled on the kernel command line.
func disabled(o Options) string {
	if _, err := os.Lstat(o.Root.Join(DisabledFile)); err == nil {
		return DisabledFile + " exists"
	}
	for _, f := range strings.Fields(o.Cmdline) {
		if f == "cloud-init=disabled" {
			return "cloud-init=disabled on the kernel command line"
		}
	}
	return ""
}

// Provision runs a stage: finds the datasource (or, for the final stage,
// reads what the init stage found) and applies its modules. Input problems
// and module failures are recorded in the report and printed to the
// console, and the other modules still run; the returned error is only for
// state that could not be saved. With no datasource it records that.
func Provision(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if o.Stage != StageInit && o.Stage != StageFinal && o.Stage != StageAll {
		return nil, fmt.Errorf("provisioning stage %q: want init, final or all", o.Stage)
	}
	if f, err := openOutputLog(o.Root); err != nil {
		o.Log.Warn("no provisioning output log", "err", err)
	} else {
		defer f.Close()
		o.Console = io.MultiWriter(o.Console, f)
	}
	start := o.Now()
	bootID := readFile(o.Root.Join("/proc/sys/kernel/random/boot_id"))
	rep := &Report{Started: start, BootID: strings.TrimSpace(bootID)}
	if o.Stage == StageFinal {
		// The final stage adds to this boot's report of the init stage.
		if prev, err := LoadReport(o.Root); err == nil && prev.BootID == rep.BootID && prev.Stage == StageInit {
			rep = prev
		}
	}
	rep.Stage = o.Stage
	p := &provisioner{o: o, rep: rep}
	if why := disabled(o); why != "" {
		o.Log.Info("provisioning disabled", "why", why)
		fmt.Fprintf(o.Console, "bulkhead-provision: disabled: %s\n", why)
		*rep = Report{Started: start, BootID: rep.BootID, Stage: o.Stage, Disabled: why}
	} else {
		p.run(ctx)
	}
	rep.DurMS += ms(o.Now().Sub(start))
	if err := saveReport(o.Root, rep); err != nil {
		return rep, fmt.Errorf("saving provisioning report: %w", err)
	}
	// power_state acts last, once the state and report are on disk.
	if p.power != nil {
		if err := p.power(ctx); err != nil {
			p.fail(err)
			if err := saveReport(o.Root, rep); err != nil {
				return rep, fmt.Errorf("saving provisioning report: %w", err)
			}
		}
	}
	return rep, nil
}

// run finds the data and runs the stage's modules.
func (p *provisioner) run(ctx context.Context) {
	o, rep := p.o, p.rep
	if o.Stage == StageFinal {
		p.data = loadData(o.Root)
	}
	if p.data == nil {
		dsRunner := o.Runner
		if o.Offline {
			dsRunner = nil // no modprobe for a tree that is not running
		}
		d, err := datasource.Detect(ctx, datasource.Options{
			Root: o.Root, Cmdline: o.Cmdline, Log: o.Log, Runner: dsRunner,
			HTTP: o.HTTP, IMDSBase: o.IMDSBase, WireServer: o.WireServer, NetWait: o.NetWait,
			DefaultUser: defaultUser.Name,
		})
		switch {
		case errors.Is(err, datasource.ErrNotFound):
			o.Log.Info("no datasource found; nothing to provision")
			return
		case err != nil:
			p.fail(fmt.Errorf("datasource: %w", err))
			return
		}
		p.data = d
		if err := saveData(o.Root, d); err != nil {
			p.fail(fmt.Errorf("saving instance data: %w", err))
		}
		// Azure waits for "ready" once the data is taken, and may then
		// take its DVD away: report once the data is saved, before the
		// modules run (a slow runcmd must not make the VM look failed),
		// as cloud-init reports from its datasource. The final stage
		// reads the saved data and does not report again.
		if err := d.ReportReady(ctx); err != nil {
			p.fail(fmt.Errorf("datasource: %w", err))
		}
	}
	rep.Source = p.data.Source
	rep.InstanceID = p.data.MetaData.InstanceID
	// cloud-init's package ships /etc/cloud, and user-data takes it for
	// granted (virt-install's runcmd writes cloud-init.disabled there).
	if d, err := o.Root.MkdirAll("/etc/cloud", 0o755); err != nil {
		p.fail(fmt.Errorf("making /etc/cloud: %w", err))
	} else {
		d.Close()
	}
	p.prepare()
	if o.Stage != StageFinal {
		prev := readState(o.Root, "instance-id")
		rep.NewInstance = prev != p.data.MetaData.InstanceID
	}
	o.Log.Info("provisioning", "stage", o.Stage, "source", p.data.Source, "instance", p.data.MetaData.InstanceID, "new", rep.NewInstance)
	p.runModules(ctx)
	if o.Stage != StageFinal {
		if err := fsroot.WriteFile(o.Root.Join(StateDir, "instance-id"), []byte(p.data.MetaData.InstanceID+"\n"), 0o644); err != nil {
			p.fail(fmt.Errorf("saving state: %w", err))
		}
	}
}

// openOutputLog opens the output log for appending, root-only readable:
// script output may carry secrets, as cloud-init's does.
func openOutputLog(root fsroot.Root) (*os.File, error) {
	path := root.Join(OutputLog)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
}

// instanceData is the instance data everyone may read: what
// `hostctl provision query` prints, without user-data or vendor-data.
type instanceData struct {
	Source        string   `json:"source"`
	InstanceID    string   `json:"instance_id"`
	LocalHostname string   `json:"local_hostname,omitempty"`
	PublicKeys    []string `json:"public_keys,omitempty"`
	HasUserData   bool     `json:"has_user_data"`
	HasIgnition   bool     `json:"has_ignition"`
}

func saveData(root fsroot.Root, d *datasource.Data) error {
	pub, err := json.MarshalIndent(instanceData{
		Source: d.Source, InstanceID: d.MetaData.InstanceID, LocalHostname: d.MetaData.LocalHostname,
		PublicKeys: d.MetaData.PublicKeys, HasUserData: len(d.UserData) > 0, HasIgnition: d.Ignition != nil,
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := fsroot.WriteFile(root.Join(InstanceDataFile), append(pub, '\n'), 0o644); err != nil {
		return err
	}
	all, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return fsroot.WriteFile(root.Join(sensitiveDataFile), all, 0o600)
}

// loadData reads what the init stage of this boot found; nil when it did
// not run (the final stage then asks the datasource itself).
func loadData(root fsroot.Root) *datasource.Data {
	b, err := os.ReadFile(root.Join(sensitiveDataFile))
	if err != nil {
		return nil
	}
	var d datasource.Data
	if json.Unmarshal(b, &d) != nil {
		return nil
	}
	return &d
}

// provisioner carries one run's input and report.
type provisioner struct {
	o    Options
	rep  *Report
	data *datasource.Data

	// power is power_state's action, run after the report is saved.
	power func(ctx context.Context) error

	cfg       cloudconfig.Config
	scripts   []cloudconfig.Part
	boothooks []cloudconfig.Part
	ignition  []byte
}

// prepare splits and parses vendor-data and user-data. Vendor-data comes
// first so user-data keys replace it, as in cloud-init.
func (p *provisioner) prepare() {
	var docs [][]byte
	for _, src := range []struct {
		name string
		data []byte
	}{{"vendor-data", p.data.VendorData}, {"user-data", p.data.UserData}} {
		parts, probs := cloudconfig.Split(src.data)
		for _, pr := range probs {
			p.problem(strings.Replace(pr.Error(), "user-data", src.name, 1))
		}
		for _, part := range parts {
			switch part.Kind {
			case cloudconfig.KindCloudConfig:
				docs = append(docs, part.Content)
			case cloudconfig.KindScript:
				p.scripts = append(p.scripts, part)
			case cloudconfig.KindBoothook:
				p.boothooks = append(p.boothooks, part)
			case cloudconfig.KindIgnition:
				if p.ignition != nil {
					p.problem(src.name + ": more than one Ignition config; using the first")
					continue
				}
				p.ignition = part.Content
			}
		}
	}
	if p.data.Ignition != nil {
		p.ignition = p.data.Ignition
	}
	cfg, probs := cloudconfig.ParseDocs(docs)
	for _, pr := range probs {
		p.problem(pr.Error())
	}
	p.cfg = cfg
}

func (p *provisioner) problem(msg string) {
	// The final stage parses the same user-data as the init stage, whose
	// report it continues: a problem is reported once per boot.
	if slices.Contains(p.rep.Problems, msg) {
		return
	}
	p.rep.Problems = append(p.rep.Problems, msg)
	p.o.Log.Warn("user-data problem", "problem", msg)
	fmt.Fprintf(p.o.Console, "bulkhead-provision: problem: %s\n", msg)
}

// fail records an error. Module errors already start with the key they
// are about; joined errors (one per item) become one line each.
func (p *provisioner) fail(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		p.rep.Errors = append(p.rep.Errors, line)
		p.o.Log.Error("provisioning error", "err", line)
		fmt.Fprintf(p.o.Console, "bulkhead-provision: error: %s\n", line)
	}
}

// errNothing is returned by a module with no input: it is recorded as
// "nothing" and does not mark the instance's semaphore.
var errNothing = errors.New("nothing to do")

type module struct {
	name  string
	stage Stage
	freq  Frequency
	run   func(ctx context.Context) error
}

// runModules runs the stage's modules in cloud-init's order: boot
// commands, then the init stage (files, disk, hostname, users, ssh), and
// in the final stage deferred files, runcmd, scripts, the final message
// and the power state.
func (p *provisioner) runModules(ctx context.Context) {
	for _, m := range p.modules() {
		if p.o.Stage != StageAll && m.stage != p.o.Stage {
			continue
		}
		res := ModuleResult{Name: m.name, Frequency: m.freq, Stage: m.stage}
		sem := "sem/" + m.name
		if m.freq == PerInstance && readState(p.o.Root, sem) == p.data.MetaData.InstanceID {
			res.Status = StatusSkipped
			p.rep.Modules = append(p.rep.Modules, res)
			continue
		}
		// A per-instance module is marked done before it runs, and so also
		// when it fails or hangs until a reboot: re-running half-applied
		// side effects (or a runcmd that hangs) on every boot would be
		// worse. cloud-init marks failures the same way.
		if m.freq == PerInstance {
			if err := fsroot.WriteFile(p.o.Root.Join(StateDir, sem), []byte(p.data.MetaData.InstanceID+"\n"), 0o644); err != nil {
				p.fail(fmt.Errorf("saving state: %w", err))
			}
		}
		t0 := p.o.Now()
		err := m.run(ctx)
		res.DurMS = ms(p.o.Now().Sub(t0))
		switch {
		case errors.Is(err, errNothing):
			res.Status = StatusNothing
			res.DurMS = 0
			if m.freq == PerInstance {
				// Nothing to do is not done: new input for the same
				// instance (a seed edited in place) still applies.
				_ = os.Remove(p.o.Root.Join(StateDir, sem))
			}
		case err != nil:
			res.Status = StatusFailed
			res.Error = strings.ReplaceAll(err.Error(), "\n", "; ")
			p.fail(err)
		default:
			res.Status = StatusRan
		}
		p.rep.Modules = append(p.rep.Modules, res)
	}
}

func readState(root fsroot.Root, name string) string {
	data, err := os.ReadFile(root.Join(StateDir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
