package datasource

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bulkhead-os/bulkhead/cloudinit/accounts"
	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// azureChassisTag is the SMBIOS chassis asset tag of every Azure VM, the
// check cloud-init's ds-identify makes.
const azureChassisTag = "7783-7084-3265-9085-8269-3286-77"

// IsAzure reports whether the hardware says Azure.
func IsAzure(root fsroot.Root) bool {
	return dmi(root, "chassis_asset_tag") == azureChassisTag
}

// Where the provisioning data is: ovf-env.xml at the top of the DVD Azure
// attaches (UDF, labelled rd_rdfe_stable.*), and the copy kept from an
// earlier boot in the directory waagent and cloud-init keep it in (the
// platform takes the DVD away once the VM reported ready).
const (
	ovfName     = "ovf-env.xml"
	ovfCopy     = "/var/lib/waagent/ovf-env.xml"
	ovfMaxBytes = 1 << 20 // CustomData is at most 64 KiB, base64
)

// ErrAzureOVF is an ovf-env.xml refused as malformed or unsafe; the error
// names the file and the problem.
var ErrAzureOVF = errors.New("ovf-env.xml refused")

// ovfEnv is the part of ovf-env.xml we read: the OVF environment with
// Azure's ProvisioningSection (LinuxProvisioningConfigurationSet) and
// PlatformSettingsSection, as Azure's "Linux provisioning" documents it.
// Elements are matched by local name, whatever their namespace prefix.
type ovfEnv struct {
	XMLName xml.Name `xml:"Environment"`
	Linux   *struct {
		ConfigurationSetType             string
		HostName                         string
		UserName                         string
		UserPassword                     *string
		DisableSshPasswordAuthentication string
		CustomData                       *string
		PublicKeys                       []struct {
			Fingerprint string
			Path        string
			Value       string
		} `xml:"SSH>PublicKeys>PublicKey"`
	} `xml:"ProvisioningSection>LinuxProvisioningConfigurationSet"`
	Platform struct {
		ProvisionGuestAgent string
		PreprovisionedVm    string
	} `xml:"PlatformSettingsSection>PlatformSettings"`
}

// userNameRE is what Bulkhead accepts as the admin user's name: useradd's
// portable names, at most 32 characters.
var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// azureOVF is what the ovf-env.xml says.
type azureOVF struct {
	user, host string
	keys       []string
	needKeys   bool // keys given by fingerprint only: their values are in IMDS
	userData   []byte
}

// parseOVF reads ovf-env.xml from src. Problems are errors naming src and
// wrapping ErrAzureOVF; a password is not applied (logged).
func parseOVF(o Options, src string, raw []byte) (azureOVF, error) {
	bad := func(format string, a ...any) (azureOVF, error) {
		return azureOVF{}, fmt.Errorf("%s from %s: %s: %w", ovfName, src, fmt.Sprintf(format, a...), ErrAzureOVF)
	}
	var env ovfEnv
	if err := xml.Unmarshal(raw, &env); err != nil {
		return bad("malformed XML: %v", err)
	}
	l := env.Linux
	if l == nil {
		return bad("no LinuxProvisioningConfigurationSet in its ProvisioningSection")
	}
	if t := strings.TrimSpace(l.ConfigurationSetType); t != "" && t != "LinuxProvisioningConfiguration" {
		return bad("ConfigurationSetType %q: want LinuxProvisioningConfiguration", t)
	}
	if strings.EqualFold(strings.TrimSpace(env.Platform.PreprovisionedVm), "true") {
		return bad("PreprovisionedVm is true: pre-provisioned VMs (reprovisioning pools) are not supported")
	}
	var out azureOVF
	out.user = strings.TrimSpace(l.UserName)
	if out.user != "" {
		if err := checkAdminUser(o.Root, out.user); err != nil {
			return bad("UserName %q: %v", out.user, err)
		}
	}
	out.host = strings.TrimSpace(l.HostName)
	if l.UserPassword != nil && strings.TrimSpace(*l.UserPassword) != "" {
		// cloud-init sets it (hashed) and, unless DisableSshPasswordAuth
		// is true, turns on SSH password logins. Bulkhead hosts are reached
		// with keys only: the password is dropped, never stored.
		o.Log.Warn("azure: UserPassword in ovf-env.xml ignored: Bulkhead sets no password from the platform; give the VM an SSH key",
			"source", src, "user", out.user)
	}
	for i, k := range l.PublicKeys {
		v := strings.TrimSpace(k.Value)
		switch {
		case v != "":
			out.keys = append(out.keys, v)
		case strings.TrimSpace(k.Fingerprint) != "":
			out.needKeys = true
		default:
			return bad("PublicKeys[%d]: neither Value nor Fingerprint", i)
		}
	}
	if l.CustomData != nil {
		b64 := strings.Join(strings.Fields(*l.CustomData), "")
		ud, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return bad("CustomData: not base64: %v", err)
		}
		if len(ud) > seed.MaxUserData {
			return bad("CustomData: %d bytes: more than %d bytes", len(ud), seed.MaxUserData)
		}
		out.userData = ud
	}
	return out, nil
}

// checkAdminUser refuses names that would hand the platform's keys to an
// existing system account ("root", "daemon", ...) or escape a home
// directory ("../root").
func checkAdminUser(root fsroot.Root, name string) error {
	if !userNameRE.MatchString(name) {
		return errors.New("not a user name (want lowercase letters, digits, _ and -, at most 32)")
	}
	if name == "root" {
		return errors.New("is the superuser")
	}
	if e, ok := accounts.Lookup(root, name); ok && e.UID < 1000 {
		return fmt.Errorf("is a system account (uid %d)", e.UID)
	}
	return nil
}

// passwordRE finds UserPassword's content, whatever its namespace prefix.
var passwordRE = regexp.MustCompile(`(?s)(<(?:[A-Za-z0-9_]+:)?UserPassword(?:\s[^>]*)?>).*?(</(?:[A-Za-z0-9_]+:)?UserPassword\s*>)`)

// findOVF reads ovf-env.xml from the provisioning DVD (by its udev label,
// else from every CD-ROM), else from the copy an earlier boot kept. It
// returns the file and where it came from; ErrNotFound when nowhere.
func findOVF(o Options) ([]byte, string, error) {
	var devs []string
	if links, err := os.ReadDir(o.Root.Join("/dev/disk/by-label")); err == nil {
		for _, l := range links {
			if !strings.HasPrefix(l.Name(), "rd_rdfe_") {
				continue
			}
			if target, err := os.Readlink(o.Root.Join("/dev/disk/by-label", l.Name())); err == nil {
				if !filepath.IsAbs(target) {
					target = filepath.Join("/dev/disk/by-label", target)
				}
				devs = append(devs, filepath.Clean(target))
			}
		}
	}
	names, _ := os.ReadDir(o.Root.Join("/sys/class/block"))
	for _, n := range names {
		if strings.HasPrefix(n.Name(), "sr") {
			devs = append(devs, "/dev/"+n.Name())
		}
	}
	for _, dev := range devs {
		f, err := os.Open(o.Root.Join(dev))
		if err != nil {
			continue // no medium in the drive, no node yet
		}
		raw, err := seed.ReadRootFile(f, ovfName, ovfMaxBytes)
		f.Close()
		switch {
		case err == nil:
			return raw, dev, nil
		case errors.Is(err, seed.ErrTooLarge):
			return nil, "", fmt.Errorf("%s on %s: %w", ovfName, dev, err)
		}
		o.Log.Debug("azure: no ovf-env.xml", "device", dev, "err", err)
	}
	f, err := os.Open(o.Root.Join(ovfCopy))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", ovfCopy, err)
	}
	defer f.Close()
	raw, err := seed.ReadLimited(f, ovfMaxBytes)
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", ovfCopy, err)
	}
	return raw, ovfCopy, nil
}

// azureIMDS is the part of Azure IMDS's instance document we read
// (GET /metadata/instance, "Azure Instance Metadata Service").
type azureIMDS struct {
	Compute struct {
		VMID      string `json:"vmId"`
		OSProfile struct {
			AdminUsername string `json:"adminUsername"`
			ComputerName  string `json:"computerName"`
		} `json:"osProfile"`
		PublicKeys []struct {
			KeyData string `json:"keyData"`
			Path    string `json:"path"`
		} `json:"publicKeys"`
	} `json:"compute"`
}

// azureIMDSPath is the instance document at the API version cloud-init
// asks for.
const azureIMDSPath = "/metadata/instance?api-version=2021-08-01"

// readAzureIMDS fetches the instance document. IMDS demands Metadata: true
// (400 without) and answers 410 and 429 while it is not ready: both are
// retried.
func readAzureIMDS(ctx context.Context, o Options) (azureIMDS, error) {
	o.retryGone = true
	resp, err := fetch(ctx, o, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.IMDSBase+azureIMDSPath, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Metadata", "true")
		return req, nil
	}, maxMetaItem)
	var doc azureIMDS
	switch {
	case err != nil:
		return doc, fmt.Errorf("imds: %w", err)
	case resp.status != http.StatusOK:
		return doc, fmt.Errorf("imds: GET %s: HTTP %d", azureIMDSPath, resp.status)
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		return doc, fmt.Errorf("imds: %s: malformed JSON: %w", azureIMDSPath, err)
	}
	return doc, nil
}

// Azure reads the provisioning data as cloud-init's Azure datasource does:
//   - ovf-env.xml (see findOVF): HostName is the local hostname; UserName
//     becomes the default user (vendor-data `user: NAME`, so user-data's
//     own `user:` still wins), and the SSH public keys (Value) its keys,
//     whatever their Path, as in cloud-init; CustomData (base64) is
//     user-data. UserPassword is ignored with a warning. An ovf-env.xml
//     that is malformed, over 1 MiB or names an unsafe user is an error:
//     nothing is applied;
//   - the instance-id is the SMBIOS system UUID, as in cloud-init; IMDS
//     (Metadata: true) is asked for it only when SMBIOS has none, and for
//     the keys, user and hostname when ovf-env.xml lacks them (keys given
//     by fingerprint only, or no ovf-env.xml at all).
//
// A copy of ovf-env.xml without the password is kept in
// /var/lib/waagent for the next boots (the DVD goes away). The returned
// Data's ReportReady tells the wireserver the VM is ready.
func Azure(ctx context.Context, o Options) (*Data, error) {
	o.defaults()
	var ovf azureOVF
	src := "imds"
	raw, where, err := findOVF(o)
	switch {
	case err == nil:
		if ovf, err = parseOVF(o, where, raw); err != nil {
			return nil, fmt.Errorf("azure: %w", err)
		}
		src = where
		if where != ovfCopy {
			kept := passwordRE.ReplaceAll(raw, []byte("${1}REDACTED${2}"))
			if err := fsroot.WriteFile(o.Root.Join(ovfCopy), kept, 0o600); err != nil {
				return nil, fmt.Errorf("azure: keeping %s: %w", ovfCopy, err)
			}
		}
	case errors.Is(err, ErrNotFound):
		o.Log.Info("azure: no ovf-env.xml; provisioning from IMDS only")
	default:
		return nil, fmt.Errorf("azure: %w", err)
	}
	d := &Data{Source: "azure:" + src, UserData: ovf.userData}
	d.MetaData.InstanceID = strings.ToLower(dmi(o.Root, "product_uuid"))
	d.MetaData.LocalHostname = ovf.host
	d.MetaData.PublicKeys = ovf.keys
	user := ovf.user
	if d.MetaData.InstanceID == "" || src == "imds" || ovf.needKeys || user == "" || ovf.host == "" {
		doc, err := readAzureIMDS(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("azure: %w", err)
		}
		c := doc.Compute
		if d.MetaData.InstanceID == "" {
			d.MetaData.InstanceID = strings.ToLower(c.VMID)
		}
		if d.MetaData.LocalHostname == "" {
			d.MetaData.LocalHostname = c.OSProfile.ComputerName
		}
		if user == "" && c.OSProfile.AdminUsername != "" {
			user = c.OSProfile.AdminUsername
			if err := checkAdminUser(o.Root, user); err != nil {
				return nil, fmt.Errorf("azure: imds: adminUsername %q: %w", user, err)
			}
		}
		if src == "imds" || ovf.needKeys {
			d.MetaData.PublicKeys = nil
			for _, k := range c.PublicKeys {
				if v := strings.TrimSpace(k.KeyData); v != "" {
					d.MetaData.PublicKeys = append(d.MetaData.PublicKeys, v)
				}
			}
		}
	}
	if d.MetaData.InstanceID == "" {
		return nil, errors.New("azure: no instance id: SMBIOS has no system UUID and IMDS no vmId")
	}
	if user != "" {
		d.VendorData = []byte("#cloud-config\n# The Azure admin user (ovf-env.xml UserName) is the default user.\nuser: " + user + "\n")
	}
	d.ready = func(ctx context.Context) error { return reportReady(ctx, o) }
	return d, nil
}

// The wireserver protocol (Azure's fabric endpoint, as WALinuxAgent and
// cloud-init speak it): GET /machine/?comp=goalstate gives the goal state,
// whose incarnation, container id and role instance id name this VM in
// the health report POSTed to /machine?comp=health.
const (
	wireVersion   = "2012-11-30"
	maxGoalState  = 1 << 20
	wireAgentName = "WALinuxAgent" // the agent name the fabric knows; cloud-init sends it too
)

// goalState is the part of the goal state document a health report needs.
type goalState struct {
	XMLName     xml.Name `xml:"GoalState"`
	Incarnation string   `xml:"Incarnation"`
	ContainerID string   `xml:"Container>ContainerId"`
	InstanceID  string   `xml:"Container>RoleInstanceList>RoleInstance>InstanceId"`
}

// healthReport is the document POSTed to /machine?comp=health.
type healthReport struct {
	XMLName     xml.Name     `xml:"Health"`
	XSI         string       `xml:"xmlns:xsi,attr"`
	XSD         string       `xml:"xmlns:xsd,attr"`
	Incarnation string       `xml:"GoalStateIncarnation"`
	ContainerID string       `xml:"Container>ContainerId"`
	Roles       []healthRole `xml:"Container>RoleInstanceList>Role"`
}

type healthRole struct {
	InstanceID string `xml:"InstanceId"`
	State      string `xml:"Health>State"`
}

// wireRequest builds a wireserver request with the protocol's headers.
func wireRequest(o Options, method, path string, body []byte) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		var r io.Reader = http.NoBody
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, o.WireServer+path, r)
		if err != nil {
			return nil, err
		}
		req.Header.Set("x-ms-version", wireVersion)
		req.Header.Set("x-ms-agent-name", wireAgentName)
		if body != nil {
			req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		}
		return req, nil
	}
}

// reportReady reads the goal state and reports the role instance Ready.
// 5xx, 429 and 410 are retried (fetch), for Options.NetWait.
func reportReady(ctx context.Context, o Options) error {
	o.retryGone = true
	o.RequestTimeout = o.FetchTimeout
	resp, err := fetch(ctx, o, wireRequest(o, http.MethodGet, "/machine/?comp=goalstate", nil), maxGoalState)
	switch {
	case err != nil:
		return fmt.Errorf("azure wireserver: goal state: %w", err)
	case resp.status != http.StatusOK:
		return fmt.Errorf("azure wireserver: goal state: HTTP %d", resp.status)
	}
	var gs goalState
	if err := xml.Unmarshal(resp.body, &gs); err != nil {
		return fmt.Errorf("azure wireserver: goal state: malformed XML: %w", err)
	}
	for name, v := range map[string]string{"Incarnation": gs.Incarnation, "ContainerId": gs.ContainerID, "InstanceId": gs.InstanceID} {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("azure wireserver: goal state: no %s", name)
		}
	}
	doc, err := xml.MarshalIndent(healthReport{
		XSI:         "http://www.w3.org/2001/XMLSchema-instance",
		XSD:         "http://www.w3.org/2001/XMLSchema",
		Incarnation: strings.TrimSpace(gs.Incarnation),
		ContainerID: strings.TrimSpace(gs.ContainerID),
		Roles:       []healthRole{{InstanceID: strings.TrimSpace(gs.InstanceID), State: "Ready"}},
	}, "", "  ")
	if err != nil {
		return err
	}
	doc = append([]byte(xml.Header), doc...)
	resp, err = fetch(ctx, o, wireRequest(o, http.MethodPost, "/machine?comp=health", doc), maxMetaItem)
	switch {
	case err != nil:
		return fmt.Errorf("azure wireserver: reporting ready: %w", err)
	case resp.status != http.StatusOK:
		return fmt.Errorf("azure wireserver: reporting ready: HTTP %d", resp.status)
	}
	o.Log.Info("azure: reported ready", "incarnation", gs.Incarnation, "container", gs.ContainerID, "instance", gs.InstanceID)
	return nil
}
