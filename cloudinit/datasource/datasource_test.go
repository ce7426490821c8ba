package datasource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
			name: "seed directory user-data over the limit",
			setup: func(t *testing.T, root fsroot.Root) string {
				writeFile(t, root.Join("/seed/meta-data"), "instance-id: big\n")
				writeFile(t, root.Join("/seed/user-data"), strings.Repeat("#", seed.MaxUserData+1))
				return "ds=nocloud;s=/seed"
			},
			wantErr: seed.ErrTooLarge,
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

// TestNoCloudHTTPLimits: a body over its limit is an error naming the item,
// not a truncated user-data that would provision half a config.
func TestNoCloudHTTPLimits(t *testing.T) {
	for _, tc := range []struct {
		item string
		size int
	}{
		{"user-data", seed.MaxUserData + 1},
		{"meta-data", seed.MaxMetaData + 1},
		{"network-config", seed.MaxNetworkConfig + 1},
		{"vendor-data", seed.MaxVendorData + 1},
	} {
		t.Run(tc.item, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/seed/" + tc.item:
					w.Write(bytes.Repeat([]byte("#"), tc.size))
				case "/seed/meta-data":
					fmt.Fprint(w, "instance-id: net-1\n")
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			_, err := NoCloud(context.Background(), Options{Root: fsroot.Root(t.TempDir()), Cmdline: "ds=nocloud;s=" + srv.URL + "/seed/"})
			if !errors.Is(err, seed.ErrTooLarge) || !strings.Contains(err.Error(), tc.item) {
				t.Fatalf("got error %v, want %s over the size limit", err, tc.item)
			}
		})
	}
}

// TestNoCloudHTTPRetries: a seed server that answers 503 while it starts
// is retried.
func TestNoCloudHTTPRetries(t *testing.T) {
	var mu sync.Mutex
	fails := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/meta-data" {
			fmt.Fprint(w, "instance-id: net-2\n")
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	d, err := NoCloud(context.Background(), Options{Root: fsroot.Root(t.TempDir()), Cmdline: "ds=nocloud;s=" + srv.URL})
	checkResult(t, d, err, `source=nocloud:`+srv.URL+` id=net-2 host= keys=[] ud="" nc="" ign=""`, nil)
}

// fakeIMDS is an IMDSv2 server as AWS documents it: PUT /latest/api/token
// with X-aws-ec2-metadata-token-ttl-seconds (1-21600, else 400) returns a
// token; every GET needs it in X-aws-ec2-metadata-token (401 without or
// with an unknown one). Failure modes are switchable.
type fakeIMDS struct {
	mu          sync.Mutex
	disabled    bool // 403 on token
	expireOnce  bool // first GET with the first token answers 401
	noUserData  bool
	tokenFails  int // this many token requests answer 503
	throttle    int // this many GETs answer 429
	serverError int // this many GETs answer 500
	userData    string
	tokens      int
	hits        []string
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits = append(f.hits, r.Method+" "+r.URL.Path)
	if r.URL.Path == "/latest/api/token" {
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if r.Method != http.MethodPut || err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		if f.disabled {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if f.tokenFails > 0 {
			f.tokenFails--
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		f.tokens++
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		fmt.Fprintf(w, "token-%d", f.tokens)
		return
	}
	tok := r.Header.Get("X-aws-ec2-metadata-token")
	if !strings.HasPrefix(tok, "token-") || (f.expireOnce && tok == "token-1") {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if f.throttle > 0 {
		f.throttle--
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}
	if f.serverError > 0 {
		f.serverError--
		http.Error(w, "oops", http.StatusInternalServerError)
		return
	}
	switch r.URL.Path {
	case "/latest/meta-data/instance-id":
		fmt.Fprint(w, "i-0123456789abcdef0")
	case "/latest/meta-data/local-hostname":
		fmt.Fprint(w, "ip-10-0-0-5.ec2.internal")
	case "/latest/meta-data/public-keys/":
		fmt.Fprint(w, "0=first-pair\n1=second-pair")
	case "/latest/meta-data/public-keys/0/openssh-key":
		fmt.Fprint(w, "ssh-ed25519 AAAAec2 key\n")
	case "/latest/meta-data/public-keys/1/openssh-key":
		fmt.Fprint(w, "ssh-rsa AAAAsecond key2\n")
	case "/latest/user-data":
		if f.noUserData {
			http.NotFound(w, r)
			return
		}
		if f.userData != "" {
			fmt.Fprint(w, f.userData)
			return
		}
		fmt.Fprint(w, "#cloud-config\nhostname: ec2host\n")
	default:
		http.NotFound(w, r)
	}
}

const ec2Full = `source=ec2 id=i-0123456789abcdef0 host=ip-10-0-0-5.ec2.internal keys=[ssh-ed25519 AAAAec2 key ssh-rsa AAAAsecond key2] ud="#cloud-config\nhostname: ec2host\n" nc="" ign=""`

func TestEC2(t *testing.T) {
	for _, tc := range []struct {
		name       string
		srv        *fakeIMDS
		want       string
		wantErr    error
		wantTokens int
	}{
		{"imdsv2", &fakeIMDS{}, ec2Full, nil, 1},
		{"401 refreshes token", &fakeIMDS{expireOnce: true}, ec2Full, nil, 2},
		{"403 disabled", &fakeIMDS{disabled: true}, "", ErrIMDSDisabled, 0},
		{"404 user-data is none", &fakeIMDS{noUserData: true}, strings.Replace(ec2Full, `ud="#cloud-config\nhostname: ec2host\n"`, `ud=""`, 1), nil, 1},
		{"token 503 retried", &fakeIMDS{tokenFails: 2}, ec2Full, nil, 1},
		{"429 retried", &fakeIMDS{throttle: 2}, ec2Full, nil, 1},
		{"500 retried", &fakeIMDS{serverError: 2}, ec2Full, nil, 1},
		{"500 for good", &fakeIMDS{serverError: 1000}, "", errAny, 1},
		{"user-data over the limit", &fakeIMDS{userData: strings.Repeat("x", seed.MaxUserData+1)}, "", seed.ErrTooLarge, 1},
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

// TestEC2Timeout: an IMDS that accepts the connection and never answers
// fails within the per-request timeouts, it does not hang provisioning.
func TestEC2Timeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	_, err := EC2(context.Background(), Options{Root: fsroot.Root(t.TempDir()), IMDSBase: srv.URL, RequestTimeout: 50 * time.Millisecond})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got error %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v, want the request timeouts (3 x 50ms plus backoff)", d)
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
			want:     ec2Full,
			wantHits: 7,
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

// TestEC2RetryAfter: a throttled IMDS (429 with Retry-After: 1) is asked
// again no sooner than it said.
func TestEC2RetryAfter(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	f := &fakeIMDS{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/meta-data/instance-id" {
			mu.Lock()
			times = append(times, time.Now())
			first := len(times) == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
		}
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	d, err := EC2(context.Background(), Options{Root: fsroot.Root(t.TempDir()), IMDSBase: srv.URL})
	checkResult(t, d, err, ec2Full, nil)
	if len(times) != 2 {
		t.Fatalf("got %d instance-id requests, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("asked again after %v, want at least the 1s of Retry-After", gap)
	}
}
