package datasource

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/fsroot"
)

// fakeGCE is a double of Compute Engine's metadata server, speaking the
// protocol as Google's "About VM metadata" documents it, not the real
// server: every request must carry Metadata-Flavor: Google and no
// X-Forwarded-For (403 otherwise), every answer carries Metadata-Flavor:
// Google, and a directory read with ?recursive=true is a JSON object.
type fakeGCE struct {
	mu       sync.Mutex
	instance map[string]string // instance attributes
	project  map[string]string // project attributes
	noFlavor bool              // answers without Metadata-Flavor: something else on the path
	fails    int               // this many requests answer 503
	hits     []string
}

func (f *fakeGCE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits = append(f.hits, r.URL.RequestURI())
	if !f.noFlavor {
		w.Header().Set("Metadata-Flavor", "Google")
	}
	if r.Header.Get("Metadata-Flavor") != "Google" || r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
		return
	}
	if f.fails > 0 {
		f.fails--
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	attrs := func(m map[string]string) {
		if r.URL.Query().Get("recursive") != "true" {
			http.Error(w, "want recursive", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m)
	}
	switch r.URL.Path {
	case "/computeMetadata/v1/instance/id":
		fmt.Fprint(w, "4520031799277581759")
	case "/computeMetadata/v1/instance/hostname":
		fmt.Fprint(w, "bulkhead-1.us-central1-a.c.my-project.internal")
	case "/computeMetadata/v1/instance/attributes/":
		attrs(f.instance)
	case "/computeMetadata/v1/project/attributes/":
		attrs(f.project)
	default:
		http.NotFound(w, r)
	}
}

const (
	gceCoreKey    = "ssh-ed25519 AAAAcore core@laptop"
	gceCIKey      = "ssh-rsa AAAAcloudinit ci"
	gceProjectKey = "ssh-ed25519 AAAAproject core@project"
	gceExpired    = `ecdsa-sha2-nistp256 AAAAold google-ssh {"userName":"core@example.com","expireOn":"2018-01-01T00:00:00+0000"}`
	gceFresh      = `ecdsa-sha2-nistp256 AAAAnew google-ssh {"userName":"core@example.com","expireOn":"2999-01-01T00:00:00+0000"}`
)

func gceInstance() map[string]string {
	return map[string]string{
		"ssh-keys": strings.Join([]string{
			"core:" + gceCoreKey, "alice:ssh-rsa AAAAalice alice", "cloudinit:" + gceCIKey,
			"core:" + gceExpired, "core:" + gceFresh, "not a key line",
		}, "\n"),
		"user-data": "#cloud-config\nhostname: fromgce\n",
	}
}

func gceProject() map[string]string {
	return map[string]string{"ssh-keys": "core:" + gceProjectKey + "\nbob:ssh-rsa AAAAbob bob"}
}

const gceFull = `source=gce id=4520031799277581759 host=bulkhead-1 keys=[` + gceCoreKey + ` ` + gceCIKey + ` ` + gceFresh + ` ` + gceProjectKey + `] ud="#cloud-config\nhostname: fromgce\n" nc="" ign=""`

func TestGCE(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       *fakeGCE
		edit    func(inst, proj map[string]string)
		want    string
		wantErr error
	}{
		{name: "instance and project keys for core and cloudinit", f: &fakeGCE{}, want: gceFull},
		{
			name: "block-project-ssh-keys",
			f:    &fakeGCE{},
			edit: func(inst, proj map[string]string) { inst["block-project-ssh-keys"] = "TRUE" },
			want: strings.Replace(gceFull, " "+gceProjectKey, "", 1),
		},
		{
			name: "legacy instance sshKeys also blocks project keys",
			f:    &fakeGCE{},
			edit: func(inst, proj map[string]string) { inst["sshKeys"] = "core:ssh-rsa AAAAlegacy l" },
			want: strings.Replace(strings.Replace(gceFull, " "+gceProjectKey, "", 1),
				"keys=["+gceCoreKey+" ", "keys=[ssh-rsa AAAAlegacy l "+gceCoreKey+" ", 1),
		},
		{
			name: "base64 user-data",
			f:    &fakeGCE{},
			edit: func(inst, proj map[string]string) {
				inst["user-data"] = base64.StdEncoding.EncodeToString([]byte("#cloud-config\nhostname: fromgce\n"))
				inst["user-data-encoding"] = "base64"
			},
			want: gceFull,
		},
		{
			name: "bad base64 user-data",
			f:    &fakeGCE{},
			edit: func(inst, proj map[string]string) {
				inst["user-data"] = "%%%"
				inst["user-data-encoding"] = "base64"
			},
			wantErr: errAny,
		},
		{
			name: "no user-data",
			f:    &fakeGCE{},
			edit: func(inst, proj map[string]string) { delete(inst, "user-data") },
			want: strings.Replace(gceFull, `ud="#cloud-config\nhostname: fromgce\n"`, `ud=""`, 1),
		},
		{name: "503 retried", f: &fakeGCE{fails: 2}, want: gceFull},
		{name: "answer without Metadata-Flavor refused", f: &fakeGCE{noFlavor: true}, wantErr: ErrNotGCEMetadata},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.instance, tc.f.project = gceInstance(), gceProject()
			if tc.edit != nil {
				tc.edit(tc.f.instance, tc.f.project)
			}
			srv := httptest.NewServer(tc.f)
			defer srv.Close()
			d, err := GCE(context.Background(), Options{Root: fsroot.Root(t.TempDir()), IMDSBase: srv.URL, DefaultUser: "core"})
			checkResult(t, d, err, tc.want, tc.wantErr)
		})
	}
}

// TestGCEDoubleRefusesMissingHeader: the double answers 403 to a request
// without Metadata-Flavor: Google, as the real server does, so TestGCE's
// passing cases prove our client sends it.
func TestGCEDoubleRefusesMissingHeader(t *testing.T) {
	srv := httptest.NewServer(&fakeGCE{})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/computeMetadata/v1/instance/id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got HTTP %d, want 403", resp.StatusCode)
	}
}

// TestGCEKeys: key lines are kept for cloudinit and the default user
// only, unexpired, each once; other users are named once.
func TestGCEKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keys, others := gceKeys([]string{
		"core:k1", "alice:k2", "cloudinit:k3", "core:k1", "alice:k4", "nocolon", "", "core:   ",
		"core:" + gceExpired, "core:k\u00e9", "core:" + gceFresh,
	}, "core", now)
	if got, want := fmt.Sprint(keys), fmt.Sprint([]string{"k1", "k3", gceFresh}); got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(others), "[alice]"; got != want {
		t.Errorf("other users: got %s, want %s", got, want)
	}
	if keys, _ := gceKeys([]string{"core:k1", "cloudinit:k3"}, "", now); fmt.Sprint(keys) != "[k3]" {
		t.Errorf("no default user: got %v, want [k3]", keys)
	}
}

func TestIsGCE(t *testing.T) {
	for _, tc := range []struct {
		file, content string
		want          bool
	}{
		{"product_name", "Google Compute Engine\n", true},
		{"product_name", "Google\n", true},
		{"bios_vendor", "Google\n", true},
		{"product_serial", "GoogleCloud-1234\n", true},
		{"product_name", "Standard PC (Q35 + ICH9, 2009)\n", false},
		{"bios_vendor", "SeaBIOS\n", false},
	} {
		root := fsroot.Root(t.TempDir())
		writeFile(t, root.Join("/sys/class/dmi/id", tc.file), tc.content)
		if got := IsGCE(root); got != tc.want {
			t.Errorf("%s=%q: got %v, want %v", tc.file, tc.content, got, tc.want)
		}
	}
}

// TestDetectClouds: GCE and Azure are asked only on their hardware (or
// when ds= names them), after NoCloud and EC2.
func TestDetectClouds(t *testing.T) {
	for _, tc := range []struct {
		name, dmiFile, dmi, cmdline, want string
		wantGCE, wantAzure                bool
	}{
		{"gce by product name", "product_name", "Google Compute Engine", "", "gce", true, false},
		{"azure by chassis tag", "chassis_asset_tag", azureChassisTag, "", "azure:imds", false, true},
		{"gce named on the command line", "product_name", "Other", "ds=gce", "gce", true, false},
		{"neither on other hardware", "product_name", "Standard PC (Q35 + ICH9, 2009)", "", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGCE{instance: gceInstance(), project: gceProject()}
			gsrv := httptest.NewServer(g)
			defer gsrv.Close()
			a := &fakeAzure{}
			asrv := httptest.NewServer(a)
			defer asrv.Close()
			root := fsroot.Root(t.TempDir())
			writeFile(t, root.Join("/sys/class/dmi/id", tc.dmiFile), tc.dmi+"\n")
			writeFile(t, root.Join("/sys/class/dmi/id/product_uuid"), azureUUID+"\n")
			imds := gsrv.URL
			if tc.wantAzure {
				imds = asrv.URL
			}
			d, err := Detect(context.Background(), Options{Root: root, Cmdline: tc.cmdline, IMDSBase: imds, WireServer: asrv.URL})
			switch {
			case tc.want == "" && !errors.Is(err, ErrNotFound):
				t.Fatalf("got %v, want ErrNotFound", err)
			case tc.want != "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && d.Source != tc.want:
				t.Errorf("got source %q, want %q", d.Source, tc.want)
			}
			if (len(g.hits) > 0) != tc.wantGCE || (a.imdsHits > 0) != tc.wantAzure {
				t.Errorf("got %d GCE and %d Azure IMDS requests, want GCE %v, Azure %v", len(g.hits), a.imdsHits, tc.wantGCE, tc.wantAzure)
			}
		})
	}
}
