package datasource

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// fakeAzure is a double of Azure's two guest endpoints, speaking the
// protocols as Microsoft documents them, not the real services:
//   - IMDS: GET /metadata/instance?api-version=... needs Metadata: true
//     (400 without) and no X-Forwarded-For, and answers the instance
//     document as JSON;
//   - the wireserver: every request needs x-ms-version: 2012-11-30 (400
//     without); GET /machine/?comp=goalstate answers the goal state XML;
//     POST /machine?comp=health takes a text/xml health report, which is
//     recorded for the test to check field by field.
type fakeAzure struct {
	mu         sync.Mutex
	goalFails  []int // statuses answered to the first goal state requests
	healthFail []int // statuses answered to the first health reports
	imdsHits   int
	goalHits   int
	reports    []string
}

const azureUUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

func (f *fakeAzure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/metadata/") {
		f.imdsHits++
		if r.Header.Get("Metadata") != "true" || r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, `{"error": "Bad request. Required metadata header not specified"}`, http.StatusBadRequest)
			return
		}
		if r.URL.Path != "/metadata/instance" || r.URL.Query().Get("api-version") == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"compute": {"vmId": %q, "osProfile": {"adminUsername": "imdsuser", "computerName": "imds-host"},
			"publicKeys": [{"keyData": "ssh-rsa AAAAimds imds@key", "path": "/home/imdsuser/.ssh/authorized_keys"}]},
			"network": {"interface": []}}`, strings.ToUpper(azureUUID))
		return
	}
	if r.Header.Get("x-ms-version") != wireVersion {
		http.Error(w, "missing x-ms-version", http.StatusBadRequest)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/machine/" && r.URL.Query().Get("comp") == "goalstate":
		f.goalHits++
		if len(f.goalFails) > 0 {
			st := f.goalFails[0]
			f.goalFails = f.goalFails[1:]
			http.Error(w, "not now", st)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		fmt.Fprint(w, `<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>3</Incarnation>
  <Machine><ExpectedState>Started</ExpectedState><StopRolesDeadlineHint>300000</StopRolesDeadlineHint></Machine>
  <Container>
    <ContainerId>b3b2f5d8-3b33-4c7e-a3b1-0c7a5b1e9d11</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>8f4c2f3a.bulkhead-vm</InstanceId>
        <State>Started</State>
        <Configuration><HostingEnvironmentConfig>http://168.63.129.16:80/machine/?comp=config</HostingEnvironmentConfig></Configuration>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>`)
	case r.Method == http.MethodPost && r.URL.Path == "/machine" && r.URL.Query().Get("comp") == "health":
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
			http.Error(w, "want text/xml, got "+ct, http.StatusUnsupportedMediaType)
			return
		}
		if len(f.healthFail) > 0 {
			st := f.healthFail[0]
			f.healthFail = f.healthFail[1:]
			http.Error(w, "not now", st)
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.reports = append(f.reports, string(body))
	default:
		http.NotFound(w, r)
	}
}

// azureRoot is a root on Azure hardware whose DVD drive holds a UDF disc
// with ovf (nil: an empty drive).
func azureRoot(t *testing.T, ovf []byte) fsroot.Root {
	t.Helper()
	root := fsroot.Root(t.TempDir())
	writeFile(t, root.Join("/sys/class/dmi/id/chassis_asset_tag"), azureChassisTag+"\n")
	writeFile(t, root.Join("/sys/class/dmi/id/product_uuid"), strings.ToUpper(azureUUID)+"\n")
	writeFile(t, root.Join("/sys/class/block/sr0/size"), "0\n")
	if ovf == nil {
		return root
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "ovf-env.xml"), string(ovf))
	if err := os.MkdirAll(root.Join("/dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("genisoimage", "-quiet", "-udf", "-V", "rd_rdfe_stable.230101-0000", "-o", root.Join("/dev/sr0"), src).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage -udf (apt package genisoimage): %v: %s", err, out)
	}
	return root
}

func ovfFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ovf-env.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func azureSummary(d *Data) string { return summary(d) + fmt.Sprintf(" vd=%q", d.VendorData) }

const (
	azureOvfKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAzureOvfKey azureuser@laptop"
	azureVD     = `vd="#cloud-config\n# The Azure admin user (ovf-env.xml UserName) is the default user.\nuser: azureuser\n"`
	azureFull   = `source=azure:/dev/sr0 id=` + azureUUID + ` host=bulkhead-vm keys=[` + azureOvfKey + `] ud="#cloud-config\nhostname: fromcustomdata\n" nc="" ign="" ` + azureVD
)

func TestAzure(t *testing.T) {
	fixture := ovfFixture(t)
	for _, tc := range []struct {
		name     string
		ovf      *string // nil: no DVD
		kept     string  // a copy from an earlier boot
		want     string
		wantIMDS int
	}{
		{name: "ovf-env.xml on the DVD", ovf: &fixture, want: azureFull},
		{
			name:     "key by fingerprint only: values from IMDS",
			ovf:      ptr(strings.Replace(fixture, "<Value>"+azureOvfKey+"</Value>", "", 1)),
			want:     strings.Replace(azureFull, azureOvfKey, "ssh-rsa AAAAimds imds@key", 1),
			wantIMDS: 1,
		},
		{
			name:     "no DVD, no copy: IMDS only",
			want:     `source=azure:imds id=` + azureUUID + ` host=imds-host keys=[ssh-rsa AAAAimds imds@key] ud="" nc="" ign="" vd="#cloud-config\n# The Azure admin user (ovf-env.xml UserName) is the default user.\nuser: imdsuser\n"`,
			wantIMDS: 1,
		},
		{
			name: "no DVD: the copy an earlier boot kept",
			kept: fixture,
			want: strings.Replace(azureFull, "azure:/dev/sr0", "azure:"+ovfCopy, 1),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ovf []byte
			if tc.ovf != nil {
				ovf = []byte(*tc.ovf)
			}
			root := azureRoot(t, ovf)
			if tc.kept != "" {
				writeFile(t, root.Join(ovfCopy), tc.kept)
			}
			f := &fakeAzure{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			d, err := Azure(context.Background(), Options{Root: root, IMDSBase: srv.URL, WireServer: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			if got := azureSummary(d); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if f.imdsHits != tc.wantIMDS {
				t.Errorf("got %d IMDS requests, want %d", f.imdsHits, tc.wantIMDS)
			}
			if f.goalHits != 0 {
				t.Errorf("reading the data asked the wireserver %d times: it reports ready only when asked", f.goalHits)
			}
			if ovf != nil {
				kept, err := os.ReadFile(root.Join(ovfCopy))
				if err != nil {
					t.Fatalf("no copy of ovf-env.xml kept: %v", err)
				}
				if strings.Contains(string(kept), "NotApplied-1234") || !strings.Contains(string(kept), "<UserPassword>REDACTED</UserPassword>") {
					t.Errorf("kept copy still has the password or lost the element:\n%s", kept)
				}
				if st, err := os.Stat(root.Join(ovfCopy)); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("kept copy: got mode %v (%v), want 0600", st.Mode().Perm(), err)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestAzureHostileOVF: a hostile or broken ovf-env.xml is an error naming
// the file and the problem, and nothing is applied or kept.
func TestAzureHostileOVF(t *testing.T) {
	fixture := ovfFixture(t)
	for _, tc := range []struct {
		name, ovf string
		passwd    string // /etc/passwd of the root
		want      string
		is        error
	}{
		{"huge", strings.Replace(fixture, "<HostName>", "<!--"+strings.Repeat("x", ovfMaxBytes)+"--><HostName>", 1), "", "ovf-env.xml on /dev/sr0", seed.ErrTooLarge},
		{"malformed XML", strings.Replace(fixture, "</SSH>", "", 1), "", "ovf-env.xml from /dev/sr0: malformed XML", ErrAzureOVF},
		{"not an environment", "<html><body>hi</body></html>", "", "malformed XML", ErrAzureOVF},
		{"no provisioning section", strings.Replace(strings.Replace(fixture, "<LinuxProvisioningConfigurationSet", "<Other", 1), "</LinuxProvisioningConfigurationSet>", "</Other>", 1), "", "no LinuxProvisioningConfigurationSet", ErrAzureOVF},
		{"user ../root", strings.Replace(fixture, "<UserName>azureuser<", "<UserName>../root<", 1), "", `UserName "../root": not a user name`, ErrAzureOVF},
		{"user root", strings.Replace(fixture, "<UserName>azureuser<", "<UserName>root<", 1), "", `UserName "root": is the superuser`, ErrAzureOVF},
		{"system user", strings.Replace(fixture, "<UserName>azureuser<", "<UserName>daemon<", 1), "root:x:0:0::/root:/bin/sh\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n", `UserName "daemon": is a system account (uid 1)`, ErrAzureOVF},
		{"CustomData not base64", strings.Replace(fixture, "I2Nsb3Vk", "!!!!", 1), "", "CustomData: not base64", ErrAzureOVF},
		{"pre-provisioned VM", strings.Replace(fixture, "<PreprovisionedVm>false<", "<PreprovisionedVm>true<", 1), "", "PreprovisionedVm is true", ErrAzureOVF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := azureRoot(t, []byte(tc.ovf))
			if tc.passwd != "" {
				writeFile(t, root.Join("/etc/passwd"), tc.passwd)
			}
			f := &fakeAzure{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			d, err := Azure(context.Background(), Options{Root: root, IMDSBase: srv.URL, WireServer: srv.URL})
			if err == nil {
				t.Fatalf("got %s, want an error", azureSummary(d))
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want %v saying %q", err, tc.is, tc.want)
			}
			if _, err := os.Stat(root.Join(ovfCopy)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused ovf-env.xml was kept (%v)", err)
			}
			if f.imdsHits+f.goalHits != 0 {
				t.Errorf("got %d IMDS and %d wireserver requests, want none", f.imdsHits, f.goalHits)
			}
		})
	}
}

// health is the health report as the double received it.
type health struct {
	XMLName     xml.Name `xml:"Health"`
	Incarnation string   `xml:"GoalStateIncarnation"`
	ContainerID string   `xml:"Container>ContainerId"`
	Roles       []struct {
		InstanceID string `xml:"InstanceId"`
		State      string `xml:"Health>State"`
	} `xml:"Container>RoleInstanceList>Role"`
}

// TestAzureReportReady: ReportReady reads the goal state and posts a
// health report naming its incarnation, container and role instance with
// the state Ready, retrying 410 and 5xx; errors that are not retried fail.
func TestAzureReportReady(t *testing.T) {
	for _, tc := range []struct {
		name       string
		f          *fakeAzure
		wantErr    string
		wantGoal   int
		wantReport int
	}{
		{"ready", &fakeAzure{}, "", 1, 1},
		{"goal state 410 and 500 retried", &fakeAzure{goalFails: []int{410, 500}}, "", 3, 1},
		{"health 503 retried", &fakeAzure{healthFail: []int{503, 503}}, "", 1, 1},
		{"health 400 fails", &fakeAzure{healthFail: []int{400}}, "reporting ready: HTTP 400", 1, 0},
		{"goal state 404 fails", &fakeAzure{goalFails: []int{404}}, "goal state: HTTP 404", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.f)
			defer srv.Close()
			root := azureRoot(t, []byte(ovfFixture(t)))
			d, err := Azure(context.Background(), Options{Root: root, IMDSBase: srv.URL, WireServer: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			err = d.ReportReady(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one saying %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.f.goalHits != tc.wantGoal || len(tc.f.reports) != tc.wantReport {
				t.Fatalf("got %d goal state requests and %d reports, want %d and %d", tc.f.goalHits, len(tc.f.reports), tc.wantGoal, tc.wantReport)
			}
			if tc.wantReport == 0 {
				return
			}
			doc := tc.f.reports[0]
			if !strings.HasPrefix(doc, `<?xml version="1.0" encoding="UTF-8"?>`) {
				t.Errorf("report does not start with an XML declaration:\n%s", doc)
			}
			var h health
			if err := xml.Unmarshal([]byte(doc), &h); err != nil {
				t.Fatalf("report is not XML: %v\n%s", err, doc)
			}
			for _, c := range []struct{ field, got, want string }{
				{"GoalStateIncarnation", h.Incarnation, "3"},
				{"ContainerId", h.ContainerID, "b3b2f5d8-3b33-4c7e-a3b1-0c7a5b1e9d11"},
				{"Role count", fmt.Sprint(len(h.Roles)), "1"},
			} {
				if c.got != c.want {
					t.Errorf("%s: got %q, want %q", c.field, c.got, c.want)
				}
			}
			if len(h.Roles) == 1 {
				if h.Roles[0].InstanceID != "8f4c2f3a.bulkhead-vm" || h.Roles[0].State != "Ready" {
					t.Errorf("role: got %+v, want InstanceId 8f4c2f3a.bulkhead-vm, State Ready", h.Roles[0])
				}
			}
		})
	}
}

// TestAzureDoubleRefusesMissingHeaders: the double refuses IMDS requests
// without Metadata: true and wireserver requests without x-ms-version, as
// the real services do, so the passing tests prove our client sends them.
func TestAzureDoubleRefusesMissingHeaders(t *testing.T) {
	srv := httptest.NewServer(&fakeAzure{})
	defer srv.Close()
	for _, path := range []string{azureIMDSPath, "/machine/?comp=goalstate"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s without its header: got HTTP %d, want 400", path, resp.StatusCode)
		}
	}
}

// TestReportReadyOthers: ReportReady does nothing for other datasources
// and for Data read back from the saved JSON.
func TestReportReadyOthers(t *testing.T) {
	if err := (&Data{Source: "ec2"}).ReportReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	var d Data
	b, _ := json.Marshal(&Data{Source: "azure:/dev/sr0", ready: func(context.Context) error { return errors.New("called") }})
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if err := d.ReportReady(context.Background()); err != nil {
		t.Fatalf("Data from JSON reported: %v", err)
	}
}

// FuzzParseOVF: no ovf-env.xml makes the parser panic; what it accepts
// names a safe user.
func FuzzParseOVF(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "ovf-env.xml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("<Environment/>"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		o := Options{Root: fsroot.Root(t.TempDir())}
		o.defaults()
		ovf, err := parseOVF(o, "fuzz", raw)
		if err == nil && ovf.user != "" && !userNameRE.MatchString(ovf.user) {
			t.Fatalf("accepted user %q", ovf.user)
		}
	})
}
