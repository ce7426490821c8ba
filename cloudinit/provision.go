package cloudinit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/cloudinit/datasource"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// Options is what Provision needs. Only Root and Runner are required.
type Options struct {
	Root   fsroot.Root
	Runner run.Runner
	Log    *slog.Logger
	// Console receives what a person at the console should see: each
	// problem and error as it happens, script output, the final message.
	Console io.Writer
	// Cmdline is the kernel command line (the caller reads /proc/cmdline).
	Cmdline string
	// HTTP, IMDSBase, NetWait are passed to the datasources; see
	// datasource.Options. Zero values take the production defaults.
	HTTP     *http.Client
	IMDSBase string
	NetWait  time.Duration
	// Now is the clock; tests pass a fake one so reports are stable.
	Now func() time.Time
	// Offline says Root is an image tree, not the running system: commands
	// run chrooted into Root, and those that act on the running kernel or
	// machine (hostname, mount, growpart, resize2fs, shutdown, modprobe)
	// are skipped. `hostctl provision --root DIR` sets it.
	Offline bool
}

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
	if o.Offline {
		o.Runner = chrootRunner{root: o.Root, inner: o.Runner}
	}
}

// Provision finds the datasource and applies it. Input problems and
// module failures are recorded in the report and printed to the console,
// and the other modules still run; the returned error is only for state
// that could not be saved. With no datasource it records that and returns.
func Provision(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	start := o.Now()
	rep := &Report{Started: start}
	p := &provisioner{o: o, rep: rep}
	dsRunner := o.Runner
	if o.Offline {
		dsRunner = nil // no modprobe for a tree that is not running
	}
	d, err := datasource.Detect(ctx, datasource.Options{
		Root: o.Root, Cmdline: o.Cmdline, Log: o.Log, Runner: dsRunner,
		HTTP: o.HTTP, IMDSBase: o.IMDSBase, NetWait: o.NetWait,
	})
	switch {
	case errors.Is(err, datasource.ErrNotFound):
		o.Log.Info("no datasource found; nothing to provision")
	case err != nil:
		p.fail(fmt.Errorf("datasource: %w", err))
	default:
		p.data = d
		rep.Source = d.Source
		rep.InstanceID = d.MetaData.InstanceID
		p.prepare()
		prev := readState(o.Root, "instance-id")
		rep.NewInstance = prev != d.MetaData.InstanceID
		o.Log.Info("provisioning", "source", d.Source, "instance", d.MetaData.InstanceID, "new", rep.NewInstance)
		p.runModules(ctx)
		if err := fsroot.WriteFile(o.Root.Join(StateDir, "instance-id"), []byte(d.MetaData.InstanceID+"\n"), 0o644); err != nil {
			p.fail(fmt.Errorf("saving state: %w", err))
		}
	}
	rep.DurMS = ms(o.Now().Sub(start))
	if err := saveReport(o.Root, rep); err != nil {
		return rep, fmt.Errorf("saving provisioning report: %w", err)
	}
	return rep, nil
}

// provisioner carries one run's input and report.
type provisioner struct {
	o    Options
	rep  *Report
	data *datasource.Data

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
	name string
	freq Frequency
	run  func(ctx context.Context) error
}

// runModules runs the modules in cloud-init's stage order: boot commands,
// then the init stage (files, disk, hostname, users, ssh), the config
// stage, and the final stage (scripts, messages, power state).
func (p *provisioner) runModules(ctx context.Context) {
	for _, m := range p.modules() {
		res := ModuleResult{Name: m.name, Frequency: m.freq}
		sem := "sem/" + m.name
		if m.freq == PerInstance && readState(p.o.Root, sem) == p.data.MetaData.InstanceID {
			res.Status = StatusSkipped
			p.rep.Modules = append(p.rep.Modules, res)
			continue
		}
		t0 := p.o.Now()
		err := m.run(ctx)
		res.DurMS = ms(p.o.Now().Sub(t0))
		switch {
		case errors.Is(err, errNothing):
			res.Status = StatusNothing
			res.DurMS = 0
		case err != nil:
			res.Status = StatusFailed
			res.Error = strings.ReplaceAll(err.Error(), "\n", "; ")
			p.fail(err)
		default:
			res.Status = StatusRan
		}
		// A failed module is marked done too, as cloud-init does: re-running
		// half-applied side effects on every boot would be worse.
		if m.freq == PerInstance && res.Status != StatusNothing {
			if err := fsroot.WriteFile(p.o.Root.Join(StateDir, sem), []byte(p.data.MetaData.InstanceID+"\n"), 0o644); err != nil {
				p.fail(fmt.Errorf("saving state: %w", err))
			}
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
