package datasource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

// ErrNotFound means no datasource has data for this host.
var ErrNotFound = errors.New("no datasource found")

// Data is what a datasource provides.
type Data struct {
	// Source names where the data came from (nocloud:/dev/sr0, ec2, ...).
	Source        string
	MetaData      cloudconfig.MetaData
	UserData      []byte
	VendorData    []byte
	NetworkConfig []byte
	// Ignition is a config handed over out of band (QEMU fw_cfg).
	Ignition []byte

	metaRaw []byte // NoCloud meta-data until parsed
	// ready tells the platform the data was received (Azure); nil for
	// datasources that need no such report, and after a JSON round trip.
	ready func(ctx context.Context) error
}

// ReportReady tells the platform that provisioning data was received, as
// Azure requires: a VM that never reports ready is marked failed. The
// caller calls it once it has saved the data, before applying it (the
// platform may take the provisioning media away after the report), as
// cloud-init does. It does nothing for other datasources, or for Data
// read back from a file.
func (d *Data) ReportReady(ctx context.Context) error {
	if d.ready == nil {
		return nil
	}
	return d.ready(ctx)
}

// Options are what the datasources read. Nothing is read from absolute
// paths: the caller passes the root and the kernel command line.
type Options struct {
	Root    fsroot.Root
	Cmdline string // contents of /proc/cmdline
	Log     *slog.Logger
	Runner  run.Runner // for modprobe qemu_fw_cfg; nil skips it
	HTTP    *http.Client
	// IMDSBase is the link-local metadata service ("http://169.254.169.254"):
	// EC2's IMDS, Compute Engine's metadata server and Azure's IMDS all
	// answer there.
	IMDSBase string
	// WireServer is Azure's fabric endpoint ("http://168.63.129.16"), told
	// that provisioning data was received (Data.ReportReady).
	WireServer string
	// DefaultUser names the default user: Compute Engine's ssh-keys lines
	// for that user (and for "cloudinit") become MetaData.PublicKeys.
	DefaultUser string
	// NetWait bounds how long network sources (IMDS, ds=nocloud;s=http,
	// ignition.config.url=) are retried while the network comes up or the
	// server answers 5xx/429; each is tried at least 3 times. Only spent
	// on hosts that identify as EC2, GCE or Azure or ask for a network
	// source.
	NetWait time.Duration
	// RequestTimeout bounds each HTTP request, its body included (short: a
	// link-local IMDS answers in milliseconds). Default 2s.
	RequestTimeout time.Duration
	// retryGone makes fetch retry 410 Gone too: Azure's IMDS and
	// wireserver answer it while the VM's provisioning state moves.
	retryGone bool
	// FetchTimeout is RequestTimeout for servers elsewhere on the network
	// (ds=nocloud;s=http, ignition.config.url=), which may be slow to
	// answer and send up to 16 MiB. Default 30s.
	FetchTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	if o.IMDSBase == "" {
		o.IMDSBase = "http://169.254.169.254"
	}
	if o.WireServer == "" {
		o.WireServer = "http://168.63.129.16"
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 2 * time.Second
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = 30 * time.Second
	}
}

// Detect tries the datasources in order and returns the first that has
// data. A datasource that is present but broken (an unreadable seed, IMDS
// answering errors) is an error, not a fall-through: provisioning from the
// wrong source would be worse than stopping.
func Detect(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	ds := kernelDS(o)
	if ds.name == "" || ds.name == "nocloud" || ds.name == "nocloud-net" {
		d, err := NoCloud(ctx, o)
		if !errors.Is(err, ErrNotFound) {
			return d, err
		}
	}
	// The clouds, each asked only on its own hardware (or by ds=NAME):
	// other hosts never wait for a metadata service that is not there.
	for _, c := range []struct {
		name string
		on   func(fsroot.Root) bool
		read func(context.Context, Options) (*Data, error)
	}{{"ec2", IsEC2, EC2}, {"gce", IsGCE, GCE}, {"azure", IsAzure, Azure}} {
		if ds.name == c.name || (ds.name == "" && c.on(o.Root)) {
			d, err := c.read(ctx, o)
			if !errors.Is(err, ErrNotFound) {
				return d, err
			}
		}
	}
	if ds.name == "" || ds.name == "ignition" {
		d, err := IgnitionURL(ctx, o)
		if !errors.Is(err, ErrNotFound) {
			return d, err
		}
		d, err = FwCfg(ctx, o)
		if !errors.Is(err, ErrNotFound) {
			return d, err
		}
	}
	return nil, ErrNotFound
}

// dsSpec is a parsed ds= value: "nocloud;s=http://x/;h=host;i=iid".
type dsSpec struct {
	name string
	kv   map[string]string
}

// parseDS parses a ds= value (cloud-init's syntax: name, then ;key=value).
func parseDS(v string) dsSpec {
	fields := strings.Split(v, ";")
	spec := dsSpec{name: strings.ToLower(strings.TrimSpace(fields[0])), kv: map[string]string{}}
	for _, f := range fields[1:] {
		k, val, _ := strings.Cut(f, "=")
		switch k {
		case "seedfrom":
			k = "s"
		case "local-hostname":
			k = "h"
		case "instance-id":
			k = "i"
		}
		spec.kv[k] = val
	}
	return spec
}

// kernelDS finds ds= on the kernel command line, else in the SMBIOS system
// serial number (QEMU: -smbios type=1,serial=ds=nocloud;s=...).
func kernelDS(o Options) dsSpec {
	for _, f := range strings.Fields(o.Cmdline) {
		if v, ok := strings.CutPrefix(f, "ds="); ok {
			return parseDS(v)
		}
	}
	serial := dmi(o.Root, "product_serial")
	if v, ok := strings.CutPrefix(serial, "ds="); ok {
		return parseDS(v)
	}
	return dsSpec{kv: map[string]string{}}
}

// IsEC2 reports whether the hardware says EC2 (Xen and Nitro instances
// alike), the check cloud-init's ds-identify makes before touching the
// network: other hosts never wait for an IMDS that is not there.
func IsEC2(root fsroot.Root) bool {
	return dmi(root, "sys_vendor") == "Amazon EC2" ||
		strings.HasPrefix(strings.ToLower(dmi(root, "product_uuid")), "ec2") ||
		strings.HasPrefix(dmi(root, "board_asset_tag"), "i-") ||
		strings.HasPrefix(strings.ToLower(readSmall(root.Join("/sys/hypervisor/uuid"))), "ec2")
}

// dmi reads an SMBIOS field the kernel shows in /sys/class/dmi/id.
func dmi(root fsroot.Root, name string) string {
	return readSmall(root.Join("/sys/class/dmi/id", name))
}

// readSmall reads a small sysfs-like file, trimmed; "" when absent.
func readSmall(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := f.Read(buf)
	return strings.TrimSpace(string(buf[:n]))
}

// fwCfgPath is where the qemu_fw_cfg driver shows -fw_cfg name=opt/com.coreos/config.
const fwCfgPath = "/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw"

// FwCfg reads an Ignition config passed with QEMU's
// -fw_cfg name=opt/com.coreos/config,file=... (the path Fedora CoreOS uses).
func FwCfg(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	path := o.Root.Join(fwCfgPath)
	if _, err := os.Stat(o.Root.Join("/sys/firmware/qemu_fw_cfg")); err != nil && o.Runner != nil &&
		dmi(o.Root, "sys_vendor") == "QEMU" {
		// The driver is a module; udev loads it from the ACPI alias, but
		// we may run before udev got there.
		if _, err := o.Runner.Run(ctx, run.Cmd{Name: "modprobe", Args: []string{"qemu_fw_cfg"}}); err != nil {
			o.Log.Debug("modprobe qemu_fw_cfg", "err", err)
		}
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading ignition config from fw_cfg %s: %w", path, err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, ErrNotFound
	}
	return ignitionData("ignition:fw_cfg", data), nil
}

// ignitionData is an Ignition config as Data. Ignition has no instance-id:
// the config's digest stands in, so a new config is a new instance and the
// same config runs once.
func ignitionData(source string, data []byte) *Data {
	sum := sha256.Sum256(data)
	return &Data{
		Source:   source,
		MetaData: cloudconfig.MetaData{InstanceID: "ign-" + hex.EncodeToString(sum[:8])},
		Ignition: data,
	}
}
