package datasource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-os/bulkhead/cloudinit/internal/testtree"
	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
)

func writeFile(t *testing.T, path, content string) { testtree.WriteFile(t, path, content) }

var seedFiles = seed.Files{
	UserData:      []byte("#cloud-config\nhostname: fromseed\n"),
	MetaData:      []byte("instance-id: iid-seed\nlocal-hostname: seedhost\n"),
	NetworkConfig: []byte("version: 2\n"),
}

// summary renders Data for comparison.
func summary(d *Data) string {
	return fmt.Sprintf("source=%s id=%s host=%s keys=%v ud=%q nc=%q ign=%q",
		d.Source, d.MetaData.InstanceID, d.MetaData.LocalHostname, d.MetaData.PublicKeys,
		d.UserData, d.NetworkConfig, d.Ignition)
}

func TestNoCloud(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, root fsroot.Root) string // returns cmdline
		want    string
		wantErr error
	}{
		{
			name: "by-label iso",
			setup: func(t *testing.T, root fsroot.Root) string {
				os.MkdirAll(root.Join("/dev/disk/by-label"), 0o755)
				if err := seed.Write(root.Join("/dev/sr0"), seedFiles, seed.FormatISO); err != nil {
					t.Fatal(err)
				}
				os.Symlink("../../sr0", root.Join("/dev/disk/by-label/cidata"))
				return "quiet"
			},
			want: `source=nocloud:/dev/sr0 id=iid-seed host=seedhost keys=[] ud="#cloud-config\nhostname: fromseed\n" nc="version: 2\n" ign=""`,
		},
		{
			name: "scan vfat without udev",
			setup: func(t *testing.T, root fsroot.Root) string {
				os.MkdirAll(root.Join("/sys/class/block/vda"), 0o755)
				os.MkdirAll(root.Join("/sys/class/block/vdb"), 0o755)
				os.MkdirAll(root.Join("/dev"), 0o755)
				writeFile(t, root.Join("/dev/vda"), strings.Repeat("\x00", 70000))
				if err := seed.Write(root.Join("/dev/vdb"), seedFiles, seed.FormatVFAT); err != nil {
					t.Fatal(err)
				}
				return ""
			},
			want: `source=nocloud:/dev/vdb id=iid-seed host=seedhost keys=[] ud="#cloud-config\nhostname: fromseed\n" nc="version: 2\n" ign=""`,
		},
		{
			name: "cmdline seed dir with overrides",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/var/seed/meta-data"), "instance-id: dir-1\n")
				writeFile(t, root.Join("/var/seed/user-data"), "#!/bin/sh\n")
				return "root=/dev/vda ds=nocloud;s=file:///var/seed/;h=override"
			},
			want: `source=nocloud:/var/seed/ id=dir-1 host=override keys=[] ud="#!/bin/sh\n" nc="" ign=""`,
		},
		{
			name: "smbios serial",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/sys/class/dmi/id/product_serial"), "ds=nocloud;s=/seed;i=iid-smbios\n")
				writeFile(t, root.Join("/seed/meta-data"), "local-hostname: smb\n")
				return ""
			},
			want: `source=nocloud:/seed id=iid-smbios host=smb keys=[] ud="" nc="" ign=""`,
		},
		{
			name:    "nothing",
			setup:   func(t *testing.T, root fsroot.Root) string { return "" },
			wantErr: ErrNotFound,
		},
		{
			name: "meta-data without instance-id",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/seed/meta-data"), "local-hostname: x\n")
				return "ds=nocloud;s=/seed"
			},
			want: `source=nocloud:/seed id=nocloud host=x keys=[] ud="" nc="" ign=""`,
		},
		{
			name: "empty meta-data",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/seed/meta-data"), "")
				writeFile(t, root.Join("/seed/user-data"), "#cloud-config\n")
				return "ds=nocloud;s=/seed"
			},
			want: `source=nocloud:/seed id=nocloud host= keys=[] ud="#cloud-config\n" nc="" ign=""`,
		},
		{
			name: "malformed meta-data",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/seed/meta-data"), "instance-id: [\n")
				return "ds=nocloud;s=/seed"
			},
			wantErr: errAny,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fsroot.Root(t.TempDir())
			cmdline := tc.setup(t, root)
			d, err := NoCloud(context.Background(), Options{Root: root, Cmdline: cmdline})
			checkResult(t, d, err, tc.want, tc.wantErr)
		})
	}
}

var errAny = errors.New("any error")

func checkResult(t *testing.T, d *Data, err error, want string, wantErr error) {
	t.Helper()
	if wantErr != nil {
		if err == nil {
			t.Fatalf("got %s, want error %v", summary(d), wantErr)
		}
		if wantErr != errAny && !errors.Is(err, wantErr) {
			t.Fatalf("got error %v, want %v", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(d); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestNoCloudHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/seed/meta-data":
			fmt.Fprint(w, "instance-id: net-1\n")
		case "/seed/user-data":
			fmt.Fprint(w, "#cloud-config\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d, err := NoCloud(context.Background(), Options{Root: fsroot.Root(t.TempDir()), Cmdline: "ds=nocloud-net;s=" + srv.URL + "/seed"})
	checkResult(t, d, err, `source=nocloud:`+srv.URL+`/seed id=net-1 host= keys=[] ud="#cloud-config\n" nc="" ign=""`, nil)
}

// fakeIMDS is an IMDSv2 server with switchable failure modes.
type fakeIMDS struct {
	mu         sync.Mutex
	disabled   bool // 403 on token
	expireOnce bool // first GET with the first token answers 401
	noUserData bool
	tokens     int
	hits       []string
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits = append(f.hits, r.Method+" "+r.URL.Path)
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		if f.disabled {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		f.tokens++
		fmt.Fprintf(w, "token-%d", f.tokens)
		return
	}
	tok := r.Header.Get("X-aws-ec2-metadata-token")
	if tok == "" || (f.expireOnce && tok == "token-1") {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/latest/meta-data/instance-id":
		fmt.Fprint(w, "i-0123456789abcdef0")
	case "/latest/meta-data/local-hostname":
		fmt.Fprint(w, "ip-10-0-0-5.ec2.internal")
	case "/latest/meta-data/public-keys/0/openssh-key":
		fmt.Fprint(w, "ssh-ed25519 AAAAec2 key\n")
	case "/latest/user-data":
		if f.noUserData {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "#cloud-config\nhostname: ec2host\n")
	default:
		http.NotFound(w, r)
	}
}

func TestEC2(t *testing.T) {
	const full = `source=ec2 id=i-0123456789abcdef0 host=ip-10-0-0-5.ec2.internal keys=[ssh-ed25519 AAAAec2 key] ud="#cloud-config\nhostname: ec2host\n" nc="" ign=""`
	for _, tc := range []struct {
		name       string
		srv        *fakeIMDS
		want       string
		wantErr    error
		wantTokens int
	}{
		{"imdsv2", &fakeIMDS{}, full, nil, 1},
		{"401 refreshes token", &fakeIMDS{expireOnce: true}, full, nil, 2},
		{"403 disabled", &fakeIMDS{disabled: true}, "", ErrIMDSDisabled, 0},
		{"404 user-data is none", &fakeIMDS{noUserData: true}, strings.Replace(full, `ud="#cloud-config\nhostname: ec2host\n"`, `ud=""`, 1), nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.srv)
			defer srv.Close()
			d, err := EC2(context.Background(), Options{Root: fsroot.Root(t.TempDir()), IMDSBase: srv.URL})
			checkResult(t, d, err, tc.want, tc.wantErr)
			if tc.srv.tokens != tc.wantTokens {
				t.Errorf("got %d tokens, want %d", tc.srv.tokens, tc.wantTokens)
			}
		})
	}
}

func TestEC2Unreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := EC2(context.Background(), Options{Root: fsroot.Root(t.TempDir()), IMDSBase: url})
	if err == nil {
		t.Fatal("got no error from a closed IMDS, want one")
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, root fsroot.Root) string
		want     string
		wantErr  error
		wantHits int
	}{
		{
			name: "nocloud wins over fw_cfg",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/seed/meta-data"), "instance-id: a\n")
				writeFile(t, root.Join(fwCfgPath), `{"ignition":{"version":"3.4.0"}}`)
				return "ds=nocloud;s=/seed"
			},
			want: `source=nocloud:/seed id=a host= keys=[] ud="" nc="" ign=""`,
		},
		{
			name: "ec2 only when the hardware says so",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/sys/class/dmi/id/sys_vendor"), "QEMU\n")
				return ""
			},
			wantErr:  ErrNotFound,
			wantHits: 0,
		},
		{
			name: "ec2 by dmi",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/sys/class/dmi/id/sys_vendor"), "Amazon EC2\n")
				return ""
			},
			want:     `source=ec2 id=i-0123456789abcdef0 host=ip-10-0-0-5.ec2.internal keys=[ssh-ed25519 AAAAec2 key] ud="#cloud-config\nhostname: ec2host\n" nc="" ign=""`,
			wantHits: 5,
		},
		{
			name: "ignition from fw_cfg",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join(fwCfgPath), `{"ignition":{"version":"3.4.0"}}`)
				return ""
			},
			want: `source=ignition:fw_cfg id=ign-720a49720f0ddd4a host= keys=[] ud="" nc="" ign="{\"ignition\":{\"version\":\"3.4.0\"}}"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeIMDS{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			root := fsroot.Root(t.TempDir())
			cmdline := tc.setup(t, root)
			rec := &run.Recorder{}
			d, err := Detect(context.Background(), Options{Root: root, Cmdline: cmdline, IMDSBase: srv.URL, Runner: rec})
			checkResult(t, d, err, tc.want, tc.wantErr)
			if len(f.hits) != tc.wantHits {
				t.Errorf("got %d IMDS requests %v, want %d", len(f.hits), f.hits, tc.wantHits)
			}
		})
	}
}
